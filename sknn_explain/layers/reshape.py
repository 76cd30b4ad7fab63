"""Shape-only layers: Flatten, Reshape and Pad (constant, reflect, replicate, circular)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Layer


class Flatten(Layer):
    """``torch.flatten(x, start_dim, end_dim)`` (full-tensor axes, batch axis 0)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        if start_dim == 0:
            raise ValueError("Flatten over the batch axis (start_dim=0) cannot be explained")
        self.start_dim = int(start_dim)
        self.end_dim = int(end_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Reshape(Layer):
    """Reshape every sample to ``shape`` (batch axis kept)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.shape = tuple(int(s) for s in shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.shape)

    def extra_repr(self) -> str:
        return f"shape={self.shape}"


class Pad(Layer):
    """``F.pad(x, pad, mode, value)``; ``pad`` in torch's last-axis-first order."""

    def __init__(self, pad: tuple[int, ...], mode: str = "constant", value: float = 0.0) -> None:
        super().__init__()
        if mode not in ("constant", "reflect", "replicate", "circular"):
            raise ValueError(f"unsupported padding mode {mode!r}")
        self.pad = tuple(int(p) for p in pad)
        self.mode = mode
        self.value = float(value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "constant":
            return F.pad(x, self.pad, mode="constant", value=self.value)
        return F.pad(x, self.pad, mode=self.mode)

    def extra_repr(self) -> str:
        return f"pad={self.pad}, mode={self.mode}"
