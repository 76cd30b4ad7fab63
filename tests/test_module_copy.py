"""deepcopy_module gives copy.deepcopy's result: same object graph, independent tensors."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from sknn_explain._module_copy import _standard_module_class, deepcopy_module


class Custom(nn.Module):
    """A user module with extra attributes of every kind and a tied weight."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(4, 6, bias=False)
        self.body = nn.Sequential(nn.Conv1d(1, 2, 3, padding=1), nn.BatchNorm1d(2), nn.ReLU())
        self.head = nn.Linear(6, 4, bias=False)
        self.head.weight = nn.Parameter(self.embed.weight.T.clone())
        self.tied = nn.Linear(4, 6, bias=False)
        self.tied.weight = self.embed.weight  # shared Parameter
        self.scale = 2.5
        self.names = ["a", "b"]
        self.table = {"k": np.arange(3), 1: "int key"}
        self.plain_tensor = torch.arange(3.0)  # not registered
        self.alias = self.plain_tensor
        self.register_buffer("mask", torch.tensor([1.0, 0.0, 1.0, 1.0]))
        self.frozen = nn.Linear(2, 2)
        self.frozen.requires_grad_(False)

    def forward(self, x):
        h = self.embed(x * self.mask)
        h = self.body(h[:, None, :]).mean(1)
        return self.head(h) + self.tied(x).sum(1, keepdim=True)


class OwnCopy(nn.Module):
    """A module with its own __deepcopy__: handed to copy.deepcopy."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 3)
        self.copies = 0

    def __deepcopy__(self, memo):
        new = OwnCopy()
        new.lin.load_state_dict(self.lin.state_dict())
        new.copies = self.copies + 1
        return new

    def forward(self, x):
        return self.lin(x)


def _hook(module, args, out):
    return out * 2


def zoo() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    hooked = nn.Sequential(nn.Linear(3, 3), nn.Tanh())
    hooked[0].register_forward_hook(_hook)
    lstm = nn.Sequential()
    lstm.add_module("rnn", nn.LSTM(3, 4, batch_first=True))  # own __setstate__
    mixed = nn.Sequential(nn.Linear(3, 3), OwnCopy())
    mixed[1].copies = 5
    train = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.1), nn.BatchNorm1d(3))
    train[2].eval()
    return {
        "mlp": nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2)),
        "custom": Custom(),
        "hooked": hooked,
        "lstm": lstm,
        "own_copy": mixed,
        "modes": train,
        "encoder": nn.TransformerEncoder(
            nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True), 2,
            enable_nested_tensor=False),
    }


def _objects(root: object) -> list[object]:
    """Every object reachable through module dicts, containers and tensors, in order."""
    seen, out, stack = set(), [], [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (int, float, str, bool, type(None))):
            continue
        seen.add(id(obj))
        out.append(obj)
        if isinstance(obj, nn.Module):
            stack.extend(reversed(list(obj.__getstate__().values())))
        elif isinstance(obj, dict):
            stack.extend(reversed(list(obj.values())))
        elif isinstance(obj, (list, tuple, set)) and not isinstance(obj, torch.Size):
            stack.extend(reversed(list(obj)))
    return out


def _describe(root: object) -> list[tuple]:
    """The graph as comparable facts: types, sharing pattern, values, flags."""
    objs = _objects(root)
    index = {id(o): i for i, o in enumerate(objs)}
    facts = []
    for o in objs:
        fact = [type(o).__name__]
        if isinstance(o, torch.Tensor):
            fact += [o.dtype, tuple(o.shape), o.requires_grad, o.detach().numpy().tobytes(),
                     o.data_ptr() == 0]
        elif isinstance(o, nn.Module):
            fact += [o.training, sorted(o.__dict__)]
        elif isinstance(o, dict):
            fact += [[(k, index.get(id(v), v if isinstance(v, (int, float, str)) else None))
                      for k, v in o.items()]]
        elif isinstance(o, np.ndarray):
            fact += [o.tobytes()]
        facts.append(tuple(map(str, fact)))
    return facts


@pytest.mark.parametrize("name", list(zoo()))
def test_same_graph_as_deepcopy(name):
    model = zoo()[name]
    before = _describe(model)
    fast, slow = deepcopy_module(model), copy.deepcopy(model)
    assert _describe(fast) == _describe(slow)
    assert _describe(model) == before  # the original is untouched
    x = torch.randn(5, 3) if name != "encoder" else torch.randn(2, 4, 8)
    if name in ("lstm",):
        x = torch.randn(2, 5, 3)
    if name == "custom":
        x = torch.randn(5, 4)
    if name == "modes":  # dropout in training mode: compare the copies in eval mode
        fast.eval(), slow.eval()
    with torch.no_grad():
        a, b, c = fast(x), slow(x), model(x)
    a, b, c = (t[0] if isinstance(t, tuple) else t for t in (a, b, c))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    if name != "modes":
        torch.testing.assert_close(a, c, rtol=0, atol=0)


@pytest.mark.parametrize("name", list(zoo()))
def test_copy_is_independent(name):
    model = zoo()[name]
    fast = deepcopy_module(model)
    originals = {id(t) for t in _objects(model) if isinstance(t, torch.Tensor)}
    storages = {t.untyped_storage().data_ptr() for t in _objects(model)
                if isinstance(t, torch.Tensor) and t.numel()}
    for t in _objects(fast):
        if isinstance(t, torch.Tensor):
            assert id(t) not in originals
            if t.numel():
                assert t.untyped_storage().data_ptr() not in storages
    with torch.no_grad():
        for p in fast.parameters():
            p.add_(1.0)
    for p, q in zip(model.parameters(), fast.parameters()):
        assert not torch.equal(p, q)


def test_sharing_and_flags_kept():
    model = Custom()
    fast = deepcopy_module(model)
    assert fast.tied.weight is fast.embed.weight
    assert fast.alias is fast.plain_tensor
    assert not fast.frozen.weight.requires_grad and fast.embed.weight.requires_grad
    assert fast.table["k"] is not model.table["k"] and fast.names == model.names
    assert fast.names is not model.names


def test_own_copy_protocol_is_used():
    mixed = zoo()["own_copy"]
    assert deepcopy_module(mixed)[1].copies == 6  # its __deepcopy__ ran
    assert not _standard_module_class(OwnCopy)
    assert not _standard_module_class(nn.LSTM)
    assert _standard_module_class(nn.Linear) and _standard_module_class(Custom)


def test_hooks_are_copied_like_deepcopy():
    model = zoo()["hooked"]
    fast = deepcopy_module(model)
    assert list(fast[0]._forward_hooks.values()) == [_hook]
    assert fast[0]._forward_hooks is not model[0]._forward_hooks
    x = torch.randn(2, 3)
    torch.testing.assert_close(fast(x), model(x))


def test_uncopyable_module_is_a_type_error():
    from sknn_explain._model import copy_model

    class Holder(nn.Module):
        def __init__(self):
            super().__init__()
            self.gen = (i for i in range(3))  # generators cannot be deep-copied

    with pytest.raises(TypeError, match="could not copy the model"):
        copy_model(Holder())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_private_copy_casts_only_what_differs(dtype):
    """The no-op ``.to()`` is skipped only when every tensor already has the dtype: a
    float64 buffer or a float32 parameter is still cast, integer buffers stay integers."""
    from sknn_explain._model import _already_on, private_copy

    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    net.register_buffer("extra", torch.zeros(2, dtype=torch.float64))
    assert not _already_on(net, torch.float32, torch.device("cpu"))
    private = private_copy(net, dtype, torch.device("cpu"))
    assert all(p.dtype == dtype and not p.requires_grad for p in private.parameters())
    assert private.extra.dtype == dtype and private[1].running_mean.dtype == dtype
    assert private[1].num_batches_tracked.dtype == torch.int64
    assert not private.training and net.training  # the user's module is untouched
    assert net.extra.dtype == torch.float64 and net[0].weight.dtype == torch.float32
    assert _already_on(private, dtype, torch.device("cpu"))
