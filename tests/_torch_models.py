"""Small seeded torch models shared by the tests."""

from __future__ import annotations

import torch
from torch import nn


def mlp(n_in: int = 5, n_out: int = 10, act: type[nn.Module] = nn.ReLU, seed: int = 0,
        softmax: bool = False) -> nn.Sequential:
    torch.manual_seed(seed)
    layers = [nn.Linear(n_in, 16), act(), nn.Linear(16, 12), act(), nn.Linear(12, n_out)]
    if softmax:
        layers.append(nn.Softmax(dim=-1))
    return nn.Sequential(*layers)


def cnn(n_out: int = 10, seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3), nn.Tanh(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(6, n_out),
    )


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
    after = snapshot(model)
    assert after["training"] == before["training"]
    assert after["requires_grad"] == before["requires_grad"]
    assert after["hooks"] == before["hooks"]
    assert after["dtype"] == before["dtype"]
    for k, v in before["params"].items():
        assert torch.equal(after["params"][k], v), k
    for a, b in zip(after["grads"], before["grads"]):
        assert (a is None and b is None) or torch.equal(a, b)
