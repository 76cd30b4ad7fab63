"""Fully connected layer."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Layer


class Dense(Layer):
    """``y = x @ weight.T + bias`` on the last axis.

    Parameters
    ----------
    weight : Tensor, shape (out_features, in_features)
    bias : Tensor, shape (out_features,), optional
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
        super().__init__()
        self.register_buffer("weight", self._buffer(weight))
        self.register_buffer("bias", self._buffer(bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        out_f, in_f = self.weight.shape
        return f"in={in_f}, out={out_f}, bias={self.bias is not None}"
