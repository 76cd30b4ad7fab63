"""``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` in the torch converter, and the index views that read
their states.

An LSTM / GRU / RNN call becomes one :class:`~sknn_explain.layers.Recurrent` node (the state
trajectory). The values the module returns are not graph nodes yet: ``output`` of a
``batch_first=False`` module and ``h_n`` / ``c_n`` carry the batch on axis 1, which no graph
value may. They are *views*: for every element, its sample (``batch``) and its flat position
in the per-sample source value (``pos``). Pure re-indexing operations on a view (tuple
unpacking, ``x[...]`` with constant indices, ``transpose``, ``permute``, ``squeeze``,
``flatten``, ...) are applied to ``pos`` and ``batch`` alike; so are re-indexings of an
ordinary value that move its batch axis (``x.transpose(0, 1)`` before a time-major LSTM).
When anything else reads a view, it becomes a :class:`~sknn_explain.layers.Gather` node,
provided the batch ends up on axis 0 and every sample reads the same positions.

Sequence-first attention (``nn.MultiheadAttention``, ``nn.TransformerEncoderLayer`` and
``nn.TransformerEncoder`` built with ``batch_first=False``) reads ``(L, N, E)`` views the same
way: its inputs are materialised with the batch moved back to axis 0 (the ``x.transpose(0, 1)``
before it undone exactly), the module is converted as its batch-first equivalent, and its
result is again a view with the batch on axis 1, which the transpose after it (or ``out[0]``,
``out.mean(0)`` after a re-indexing) turns back into a graph value. A sequence-first module
reading the model input itself is refused: the graph's axis 0 is the sample axis.

:func:`intercept` is the walker's hook; :data:`RECURRENT_MODULES` the handled module classes.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
from torch import fx, nn

from ...layers.recurrent import Gather, Recurrent
from .attention import batch_first_attention

__all__ = ["RECURRENT_MODULES", "REINDEXING", "SEQUENCE_FIRST_MODULES", "View", "intercept",
           "scan_accepts"]

RECURRENT_MODULES = (nn.LSTM, nn.GRU, nn.RNN)
#: attention modules that read ``(L, N, E)`` when built with ``batch_first=False``
SEQUENCE_FIRST_MODULES = (nn.MultiheadAttention, nn.TransformerEncoderLayer,
                          nn.TransformerEncoder)


def sequence_first(mod: nn.Module) -> bool:
    """Whether ``mod`` is an attention module built with ``batch_first=False``."""
    if isinstance(mod, nn.TransformerEncoder):
        mod = mod.layers[0] if len(mod.layers) else None
    if isinstance(mod, nn.TransformerEncoderLayer):
        mod = mod.self_attn
    return isinstance(mod, nn.MultiheadAttention) and not mod.batch_first


def _time_major_module(node: fx.Node, gm: fx.GraphModule) -> bool:
    """A recurrent module or a sequence-first attention module."""
    if node.op != "call_module":
        return False
    mod = gm.get_submodule(node.target)
    return isinstance(mod, RECURRENT_MODULES) or sequence_first(mod)

#: tensor methods / functions that only re-index their first argument
_REINDEX_METHODS = {
    "transpose", "permute", "squeeze", "unsqueeze", "flatten", "contiguous", "select",
    "narrow", "view", "reshape", "movedim", "swapaxes", "swapdims", "t", "unbind", "chunk",
    "split", "__getitem__",
}
_REINDEX_FUNCTIONS = {
    operator.getitem, torch.transpose, torch.permute, torch.squeeze, torch.unsqueeze,
    torch.flatten, torch.select, torch.narrow, torch.reshape, torch.movedim, torch.swapaxes,
    torch.swapdims, torch.t, torch.unbind, torch.chunk, torch.split,
}
REINDEXING = (_REINDEX_METHODS, _REINDEX_FUNCTIONS)


@dataclass
class View:
    """Elements of graph value ``source``: per element its sample and per-sample position."""

    source: str
    pos: torch.Tensor
    batch: torch.Tensor
    #: per-sample shape of ``source``
    shape: tuple[int, ...]


def _is_reindexing(node: fx.Node) -> bool:
    if node.op == "call_method":
        return node.target in _REINDEX_METHODS
    if node.op == "call_function":
        try:
            return node.target in _REINDEX_FUNCTIONS
        except TypeError:
            return False
    return False


_AXIS_MOVES = {"transpose", "permute", "movedim", "swapaxes", "swapdims", "t"}


def scan_accepts(node: fx.Node, gm: fx.GraphModule, derived: set[str]) -> bool:
    """Whether the shape-free scan may leave ``node`` to :func:`intercept` (decided there,
    with shapes): recurrent modules, re-indexings of their results (tracked in ``derived``)
    and axis moves (which may move the batch axis)."""
    if _time_major_module(node, gm):
        derived.add(node.name)
        return True
    if not _is_reindexing(node):
        return False
    name = node.target if node.op == "call_method" else getattr(node.target, "__name__", "")
    if any(a.name in derived for a in node.all_input_nodes) or name in _AXIS_MOVES:
        derived.add(node.name)
        return True
    return False


def _plain_view(cv, name: str, value: torch.Tensor) -> View:
    n, shape = value.shape[0], tuple(value.shape[1:])
    pos = torch.arange(int(torch.Size(shape).numel())).reshape(shape)
    rows = torch.arange(n).reshape(n, *[1] * len(shape))
    return View(name, pos.expand(n, *shape).contiguous(), rows.expand(n, *shape).contiguous(),
                shape)


def _map(structure: object, fn) -> object:
    if isinstance(structure, View):
        return fn(structure)
    if isinstance(structure, (tuple, list)):
        return type(structure)(_map(s, fn) for s in structure)
    return structure


def _apply(node: fx.Node, args: tuple, kwargs: dict) -> object:
    if node.op == "call_method":  # views of index tensors may not be contiguous: reshape
        method = "reshape" if node.target == "view" else node.target
        return getattr(args[0], method)(*args[1:], **kwargs)
    return node.target(*args, **kwargs)


def _reindex(cv, node: fx.Node, views: dict) -> object:
    """Apply a re-indexing node to the ``pos`` / ``batch`` tensors of its data argument."""
    def substitute(field: str):
        def sub(a: fx.Node):
            if a.name in views:
                return _map(views[a.name], lambda v: getattr(v, field))
            if cv.is_data(a):
                return getattr(_plain_view(cv, cv.alias[a.name], cv.values[a.name]), field)
            return cv.values[a.name]
        return sub

    parts = {}
    for field in ("pos", "batch"):
        args = fx.node.map_arg(node.args, substitute(field))
        kwargs = fx.node.map_arg(node.kwargs, substitute(field))
        parts[field] = _apply(node, args, kwargs)
    sources = {(v.source, v.shape) for a in node.all_input_nodes if a.name in views
               for v in _leaves(views[a.name])}
    sources |= {(cv.alias[a.name], tuple(cv.values[a.name].shape[1:]))
                for a in node.all_input_nodes if a.name not in views and cv.is_data(a)}
    if len(sources) != 1:
        raise cv.unsupported(node, "it re-indexes several input-dependent values at once")
    source, shape = sources.pop()

    def build(p: object, b: object) -> object:
        if p is None:  # an item that is not a graph value (averaged attention weights)
            return None
        if isinstance(p, torch.Tensor):
            return View(source, p, b, shape)
        return type(p)(build(pp, bb) for pp, bb in zip(p, b))
    return build(parts["pos"], parts["batch"])


def _leaves(structure: object) -> list[View]:
    if isinstance(structure, View):
        return [structure]
    if isinstance(structure, (tuple, list)):
        return [v for s in structure for v in _leaves(s)]
    return []


def _moves_batch(cv, node: fx.Node) -> bool:
    """Whether a re-indexing of an ordinary value leaves the batch off axis 0."""
    value = cv.values.get(node.name)
    data = [a for a in node.all_input_nodes if cv.is_data(a)]
    if len(data) != 1 or not isinstance(value, torch.Tensor):
        return False
    try:
        view = _reindex(cv, node, {})
    except Exception:  # noqa: BLE001 - not a re-indexing we can follow: the normal handlers
        return False
    if isinstance(view, View):  # moved (not merged away: the normal handlers refuse that)
        return _batch_axis(view) not in (0, None)
    return all(_batch_axis(v) is not None for v in _leaves(view))  # chunk / split / unbind


def _feeds_recurrent(cv, node: fx.Node) -> bool:
    """Whether ``node`` reaches a recurrent module through re-indexings only (a time-major
    input built by ``x.transpose(0, 1)``); other batch-moving re-indexings stay with the
    normal handlers, which refuse them with their own reason."""
    todo, seen = list(node.users), set()
    while todo:
        user = todo.pop()
        if user.name in seen:
            continue
        seen.add(user.name)
        if _time_major_module(user, cv.gm):
            return True
        if _is_reindexing(user):
            todo.extend(user.users)
    return False


def _batch_axis(view: View) -> int | None:
    n_rows = int(view.batch.max()) + 1 if view.batch.numel() else 0
    for axis in range(view.batch.ndim):
        if view.batch.shape[axis] != n_rows:
            continue
        moved = view.batch.movedim(axis, 0)
        expect = torch.arange(n_rows).reshape(n_rows, *[1] * (moved.ndim - 1))
        if torch.equal(moved, expect.expand_as(moved)):
            return axis
    return None


def materialize(cv, node: fx.Node, view: View) -> str:
    """A Gather node reading ``view`` (or the source itself when it reads all of it)."""
    axis = _batch_axis(view)
    if axis != 0:
        where = "nowhere" if axis is None else f"on axis {axis}"
        raise cv.unsupported(
            node, f"it reads a recurrent state or time-major (sequence-first) view whose "
            f"samples are {where}; graph values keep the samples on axis 0: index it first "
            "(h_n[-1], out[:, -1], out[-1] for batch_first=False), transpose it back "
            "(out.transpose(0, 1)) or use batch_first=True")
    pos = view.pos
    if not torch.equal(pos, pos[:1].expand_as(pos)):
        raise cv.unsupported(node, "its samples read different positions")
    index = pos[0]
    if tuple(index.shape) == tuple(view.shape) and torch.equal(
            index.reshape(-1), torch.arange(index.numel())):
        return view.source
    key = (view.source, tuple(index.shape), tuple(index.reshape(-1).tolist()))
    cache = cv.__dict__.setdefault("_gathers", {})
    if key not in cache:
        cache[key] = cv.builder.add(f"{view.source}_gather", Gather(index), [view.source])
    return cache[key]


def _recurrent(cv, node: fx.Node, views: dict) -> object:
    mod = cv.gm.get_submodule(node.target)
    kind = ("lstm" if isinstance(mod, nn.LSTM) else "gru" if isinstance(mod, nn.GRU)
            else f"rnn_{mod.nonlinearity}")
    if len(node.args) + len(node.kwargs) != 1:
        raise cv.unsupported(node, "an initial state (h_0 / c_0) is not supported; start "
                             "from zeros")
    if getattr(mod, "proj_size", 0):
        raise cv.unsupported(node, "proj_size > 0 is not supported")
    if mod.training and mod.dropout:  # pragma: no cover - the private copy is in eval mode
        raise cv.unsupported(node, "dropout between layers in training mode")
    x = node.args[0] if node.args else next(iter(node.kwargs.values()))
    value = cv.values[x.name]
    if value.ndim != 3:
        raise cv.unsupported(node, "only batched 3-d input (n, T, F) / (T, n, F) is supported")
    view = views[x.name] if x.name in views else _plain_view(cv, cv.alias[x.name], value)
    if not mod.batch_first:  # (T, n, F) -> (n, T, F)
        view = View(view.source, view.pos.transpose(0, 1), view.batch.transpose(0, 1),
                    view.shape)
    inp = materialize(cv, node, view)
    weights = {name: cv.buf(p) for name, p in mod.named_parameters()}
    layer = Recurrent(kind, weights, mod.num_layers, mod.bidirectional)
    traj = cv.add(node, layer, [inp])
    n, steps = value.shape[1 - int(mod.batch_first)], value.shape[int(mod.batch_first)]
    n_l, n_d, n_s, hsz = mod.num_layers, layer.directions, layer.n_states, layer.hidden_size
    idx = torch.arange(n_l * n_d * steps * n_s * hsz).reshape(n_l, n_d, steps, n_s, hsz)
    out = idx[n_l - 1, :, :, 0].permute(1, 0, 2).reshape(steps, n_d * hsz)  # (T, D*H)
    rows = torch.arange(n)

    def batched(pos: torch.Tensor, axis: int) -> View:
        shape = list(pos.shape)
        shape.insert(axis, n)
        p = pos.unsqueeze(axis).expand(shape)
        b = rows.reshape([n if i == axis else 1 for i in range(len(shape))]).expand(shape)
        return View(traj, p.contiguous(), b.contiguous(), (n_l, n_d, steps, n_s, hsz))

    last = [steps - 1 if d == 0 else 0 for d in range(n_d)]
    final = [torch.stack([idx[li, d, last[d], s] for li in range(n_l) for d in range(n_d)])
             for s in range(n_s)]  # (L*D, H) each
    output = batched(out, 0 if mod.batch_first else 1)
    states = [batched(f, 1) for f in final]
    return (output, tuple(states)) if kind == "lstm" else (output, states[0])


def _sequence_first_attention(cv, node: fx.Node, views: dict) -> object:
    """A ``batch_first=False`` attention module as its batch-first equivalent on the
    un-transposed inputs; its ``(L, N, E)`` result as a view."""
    mod = cv.gm.get_submodule(node.target)
    batch_first: dict[str, tuple[str, tuple[int, ...]]] = {}
    for a in node.all_input_nodes:
        if (not cv.is_data(a) and a.name not in views) or a.name in cv.__dict__.get(
                "id_masks", ()):
            continue  # a constant mask, or a key padding mask computed from ids
        value = cv.values[a.name]
        if a.name in views and not isinstance(views[a.name], View):
            raise cv.unsupported(node, f"it reads the tuple '{a.name}' as a whole")
        view = views[a.name] if a.name in views else _plain_view(cv, cv.alias[a.name], value)
        if value.ndim != 3:
            raise cv.unsupported(node, f"batch_first=False with an input of shape "
                                 f"{tuple(value.shape)}: a batched (L, N, E) input is needed")
        view = View(view.source, view.pos.transpose(0, 1), view.batch.transpose(0, 1),
                    view.shape)
        if _batch_axis(view) != 0:
            raise cv.unsupported(
                node, "batch_first=False reads (L, N, E), but its input does not have the "
                "samples on axis 1: the graph's axis 0 is the sample axis, so a model whose "
                "input is sequence-first cannot be converted; take (N, L, E) input and call "
                "the module on x.transpose(0, 1) inside forward, or build it with "
                "batch_first=True")
        shape = (value.shape[1], value.shape[0], value.shape[2])
        batch_first[a.name] = (materialize(cv, node, view), shape)
    out = batch_first_attention(cv, node, mod, batch_first)
    value = cv.values[node.name]
    first = value[0] if isinstance(value, tuple) else value
    steps, n = first.shape[0], first.shape[1]
    per_sample = (steps, first.shape[2])
    pos = torch.arange(steps * first.shape[2]).reshape(per_sample)
    result = View(out, pos.unsqueeze(1).expand(steps, n, -1).contiguous(),
                  torch.arange(n).reshape(1, n, 1).expand(steps, n, per_sample[1]).contiguous(),
                  per_sample)
    return (result, None) if isinstance(value, tuple) else result


def intercept(cv, node: fx.Node) -> bool:
    """The walker's hook, before a node's handler: recurrent modules, re-indexings of views
    (or ones that move the batch axis), and views read by anything else (materialised).
    Returns True when ``node`` was handled here."""
    views: dict = cv.__dict__.setdefault("_views", {})
    if node.op == "output":
        _materialize_inputs(cv, node, views)
        return False
    if node.op == "call_module" and isinstance(cv.gm.get_submodule(node.target),
                                               RECURRENT_MODULES):
        views[node.name] = _recurrent(cv, node, views)
        cv.dynamic.add(node.name)
        cv.alias[node.name] = None
        return True
    if node.op == "call_module" and sequence_first(cv.gm.get_submodule(node.target)):
        views[node.name] = _sequence_first_attention(cv, node, views)
        cv.dynamic.add(node.name)
        cv.alias[node.name] = None
        return True
    uses_view = any(a.name in views for a in node.all_input_nodes)
    for a in node.all_input_nodes:
        if a.name in views and views[a.name] is None:
            raise cv.unsupported(node, f"'{a.name}' (e.g. averaged attention weights) is not "
                                 "a layer of the graph")
    if _is_reindexing(node) and (uses_view or (_feeds_recurrent(cv, node)
                                                and _moves_batch(cv, node))):
        result = _reindex(cv, node, views)
        cv.dynamic.add(node.name)
        views[node.name] = result
        cv.alias[node.name] = None
        return True
    if uses_view:
        _materialize_inputs(cv, node, views)
    return False


def _materialize_inputs(cv, node: fx.Node, views: dict) -> None:
    for a in node.all_input_nodes:
        if a.name in views:
            structure = views[a.name]
            if structure is None:
                raise cv.unsupported(node, f"'{a.name}' (e.g. averaged attention weights) is "
                                     "not a layer of the graph")
            if not isinstance(structure, View):
                raise cv.unsupported(node, f"it uses the tuple of states '{a.name}' as a "
                                     "whole; unpack or index it first")
            cv.alias[a.name] = materialize(cv, node, structure)
