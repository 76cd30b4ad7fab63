"""Base class of graph layers."""

from __future__ import annotations

import torch
from torch import nn


class Layer(nn.Module):
    """A graph layer: ``forward(*inputs) -> Tensor`` on batched tensors ``(n, ...)``.

    Subclasses store everything that defines them as attributes (tensors as buffers, so the
    graph moves with ``.to(device, dtype)`` and pickles), which the propagation rules read.
    ``n_inputs`` is the number of tensors ``forward`` takes (None: any number >= 1).
    """

    n_inputs: int | None = 1

    def extra_repr(self) -> str:  # pragma: no cover - cosmetic
        return ""

    @staticmethod
    def _buffer(value: torch.Tensor | None) -> torch.Tensor | None:
        return None if value is None else value.detach().clone()
