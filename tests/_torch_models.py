"""Small seeded torch models shared by the tests, and a check that a model was left untouched.

One factory per architecture: :func:`mlp`, :func:`cnn` (optionally with BatchNorm),
:func:`cnn1d`, :class:`TwoInput` (two inputs, two outputs). Every factory seeds torch itself and
returns the model in eval mode, so the same arguments give the same weights. Models that come
with a hand-built :class:`~sknn_explain.convert.Graph` (residual, concatenating) live in
``_graphs.py``.
"""

from __future__ import annotations

import torch
from torch import nn


def _randomise_batchnorm(bn: nn.Module) -> nn.Module:
    """Non-trivial running statistics and affine parameters (eval-mode BatchNorm)."""
    bn.running_mean.uniform_(-0.5, 0.5)
    bn.running_var.uniform_(0.5, 2.0)
    bn.weight.data.uniform_(0.5, 1.5)
    bn.bias.data.uniform_(-0.3, 0.3)
    return bn


def mlp(n_in: int = 5, n_out: int = 10, act: type[nn.Module] = nn.ReLU, seed: int = 0,
        softmax: bool = False, *, hidden: tuple[int, ...] = (16, 12), bias: bool = True,
        batchnorm: bool = False) -> nn.Sequential:
    """``n_in -> hidden... -> n_out`` with ``act`` after each hidden layer (eval mode)."""
    torch.manual_seed(seed)
    layers, width = [], n_in
    for h in hidden:
        layers.append(nn.Linear(width, h, bias=bias))
        if batchnorm:
            layers.append(_randomise_batchnorm(nn.BatchNorm1d(h)))
        layers.append(act())
        width = h
    layers.append(nn.Linear(width, n_out, bias=bias))
    if softmax:
        layers.append(nn.Softmax(dim=-1))
    return nn.Sequential(*layers).eval()


def cnn(n_out: int = 10, seed: int = 0, *, pool: str = "max", bias: bool = True,
        batchnorm: bool = False, in_ch: int = 3) -> nn.Sequential:
    """A 2d CNN on ``(in_ch, 8, 8)`` images: conv, [BatchNorm], ReLU, pool, conv, tanh, pool,
    dense. ``pool="max"`` puts max pooling first and average pooling second, ``"avg"`` the
    other way round (eval mode)."""
    torch.manual_seed(seed)
    pool1 = nn.MaxPool2d(2) if pool == "max" else nn.AvgPool2d(2)
    layers = [nn.Conv2d(in_ch, 4, 3, padding=1, bias=bias)]
    if batchnorm:
        bn = nn.BatchNorm2d(4)
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        layers.append(bn)
    layers += [nn.ReLU(), pool1, nn.Conv2d(4, 6, 3, bias=bias), nn.Tanh(),
               nn.AvgPool2d(2) if pool == "max" else nn.MaxPool2d(2),
               nn.Flatten(), nn.Linear(6, n_out, bias=bias)]
    return nn.Sequential(*layers).eval()


def cnn1d(n_out: int = 4, seed: int = 0) -> nn.Sequential:
    """A 1d CNN on ``(2, L)`` signals with stride, dilation and adaptive pooling (eval mode)."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv1d(2, 3, 3, stride=2, padding=1), nn.ReLU(), nn.MaxPool1d(3, stride=2),
        nn.Conv1d(3, 4, 2, dilation=2), nn.ReLU(), nn.AdaptiveAvgPool1d(2),
        nn.Flatten(), nn.Linear(8, n_out),
    ).eval()


class TwoInput(nn.Module):
    """Image + tabular input, two outputs (a tuple)."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Sequential(nn.Conv2d(2, 3, 3), nn.Tanh(), nn.Flatten())
        self.tab = nn.Sequential(nn.Linear(4, 6), nn.Tanh())
        self.head1 = nn.Linear(3 * 4 * 4 + 6, 3)
        self.head2 = nn.Linear(3 * 4 * 4 + 6, 2)

    def forward(self, img: torch.Tensor, tab: torch.Tensor):
        h = torch.cat([self.conv(img), self.tab(tab)], dim=1)
        return self.head1(h), self.head2(h)


class TokenModel(nn.Module):
    """FT-Transformer style around ``make_blocks(dim)``: bias-free feature tokenizer
    ``x.unsqueeze(-1) * W``, the blocks in turn, mean over tokens, bias-free linear head
    (parameters drawn in that order)."""

    def __init__(self, make_blocks, n_features: int = 4, dim: int = 6) -> None:
        super().__init__()
        self.tok = nn.Parameter(torch.randn(n_features, dim))
        self.blocks = make_blocks(dim)
        self.head = nn.Linear(dim, 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.unsqueeze(-1) * self.tok
        for b in self.blocks:
            t = b(t)
        return self.head(t.mean(1))


def perturbation_mlp() -> nn.Sequential:
    """The double 5-8-3 Tanh MLP of the perturbation-method tests (seed 0)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double()


def perturbation_cnn() -> nn.Sequential:
    """The double CNN on ``(2, 6, 6)`` images with 4 outputs of the perturbation tests (seed 1)."""
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Flatten(),
                         nn.Linear(3 * 4 * 4, 4)).double()


def seeded_randn(*shape: int, seed: int = 0) -> torch.Tensor:
    """Standard normal float64 tensor from its own seeded generator."""
    return torch.randn(*shape, dtype=torch.float64,
                       generator=torch.Generator().manual_seed(seed))


def snapshot(model: nn.Module) -> dict:
    """Everything the explainers must leave untouched."""
    return {
        "params": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "training": [m.training for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "hooks": [
            (len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks))
            for m in model.modules()
        ],
        "dtype": [p.dtype for p in model.parameters()],
    }


def assert_unchanged(model: nn.Module, before: dict) -> None:
    """``model`` is exactly as :func:`snapshot` saw it."""
    after = snapshot(model)
    assert after["training"] == before["training"]
    assert after["requires_grad"] == before["requires_grad"]
    assert after["hooks"] == before["hooks"]
    assert after["dtype"] == before["dtype"]
    for k, v in before["params"].items():
        assert torch.equal(after["params"][k], v), k
    for a, b in zip(after["grads"], before["grads"]):
        assert (a is None and b is None) or torch.equal(a, b)
