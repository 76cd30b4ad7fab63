"""Per-sample normalisation over the trailing axes: LayerNorm and RMSNorm.

Unlike BatchNorm (eval statistics: an affine map), these normalise every sample by its own
statistics, so they are non-linear functions of the whole normalised vector. Their rules:
:mod:`sknn_explain.propagation.layer_norm`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Layer

__all__ = ["LayerNorm", "RMSNorm"]


class LayerNorm(Layer):
    """``(x - mean) / sqrt(var + eps) * weight + bias`` over the last ``len(normalized_shape)``
    axes (``F.layer_norm``).

    Parameters
    ----------
    normalized_shape : tuple of int
    weight, bias : Tensor of shape ``normalized_shape``, optional
    eps : float
    """

    def __init__(self, normalized_shape: tuple[int, ...], weight: torch.Tensor | None = None,
                 bias: torch.Tensor | None = None, eps: float = 1e-5) -> None:
        super().__init__()
        self.normalized_shape = tuple(int(s) for s in normalized_shape)
        self.register_buffer("weight", self._buffer(weight))
        self.register_buffer("bias", self._buffer(bias))
        self.eps = float(eps)

    #: whether the mean is subtracted first
    centered = True

    def variance_eps(self, dtype: torch.dtype) -> float:
        """The ``eps`` added to the variance."""
        return self.eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"normalized_shape={self.normalized_shape}, eps={self.eps}, "
                f"affine={self.weight is not None}, bias={self.bias is not None}")


class RMSNorm(Layer):
    """``x / sqrt(mean(x^2) + eps) * weight`` over the last ``len(normalized_shape)`` axes
    (``F.rms_norm``; ``eps=None``: the machine epsilon of the input's dtype, as torch)."""

    centered = False
    bias = None

    def __init__(self, normalized_shape: tuple[int, ...], weight: torch.Tensor | None = None,
                 eps: float | None = None) -> None:
        super().__init__()
        self.normalized_shape = tuple(int(s) for s in normalized_shape)
        self.register_buffer("weight", self._buffer(weight))
        self.eps = None if eps is None else float(eps)

    def variance_eps(self, dtype: torch.dtype) -> float:
        """The ``eps`` added to the mean square."""
        return torch.finfo(dtype).eps if self.eps is None else self.eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self) -> str:
        return (f"normalized_shape={self.normalized_shape}, eps={self.eps}, "
                f"affine={self.weight is not None}")
