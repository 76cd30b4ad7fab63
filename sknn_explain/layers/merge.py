"""Layers with several inputs: element-wise addition and concatenation."""

from __future__ import annotations

import torch

from .base import Layer


class Add(Layer):
    """Element-wise sum of any number of same-shaped inputs (residual connections)."""

    n_inputs = None

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


class Concat(Layer):
    """Concatenation along ``dim`` (a full-tensor axis, 1 = first feature/channel axis)."""

    n_inputs = None

    def __init__(self, dim: int = 1) -> None:
        super().__init__()
        self.dim = int(dim)

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, dim=self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
