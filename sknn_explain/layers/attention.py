"""Softmax over the last axis of attention scores, with constant masks."""

from __future__ import annotations

import torch

from .base import Layer

__all__ = ["MaskedSoftmax"]


class MaskedSoftmax(Layer):
    """``softmax(x + add)`` over the last axis where ``keep``, probability 0 elsewhere.

    Attention masks of ``nn.MultiheadAttention`` / ``F.scaled_dot_product_attention``:
    boolean masks, ``-inf`` entries of float masks and causal masks become ``keep = False``;
    finite float entries become ``add``. Both broadcast against one sample's scores (no
    batch axis), so a mask never differs between samples. The masked scores themselves stay
    finite in the graph (``-inf`` never enters a difference or a product of the
    propagation rules).

    Parameters
    ----------
    add : Tensor
        Additive constant, broadcast against the per-sample scores.
    keep : Tensor of bool
        Which scores take part, broadcast against the per-sample scores.
    """

    def __init__(self, add: torch.Tensor, keep: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("add", self._buffer(add))
        self.register_buffer("keep", self._buffer(keep.to(torch.bool)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.where(self.keep, x + self.add, torch.full_like(x, float("-inf")))
        return torch.softmax(z, dim=-1)

    def extra_repr(self) -> str:
        return f"mask={tuple(self.keep.shape)}"
