"""Element-wise affine layers: folded BatchNorm (eval statistics) and scikit-learn scalers."""

from __future__ import annotations

import torch

from .base import Layer


class ElementwiseAffine(Layer):
    """``y = x * scale + shift`` with ``scale``/``shift`` broadcast along axis 1.

    Used for scikit-learn scalers folded into the graph (``StandardScaler``: scale =
    1/scale_, shift = -mean_/scale_), so attributions live in the original feature space.

    Parameters
    ----------
    scale, shift : Tensor, shape (n_channels_or_features,)
    """

    def __init__(self, scale: torch.Tensor, shift: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("scale", self._buffer(scale))
        self.register_buffer("shift", self._buffer(shift))

    def _view(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return t.reshape(1, -1, *([1] * (x.ndim - 2)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self._view(self.scale, x) + self._view(self.shift, x)

    def extra_repr(self) -> str:
        return f"features={self.scale.numel()}"


class BatchNorm(ElementwiseAffine):
    """Eval-mode BatchNorm folded to ``x * scale + shift`` per channel (axis 1).

    ``scale = gamma / sqrt(running_var + eps)``, ``shift = beta - running_mean * scale``.
    A separate class so LRP can give it its own rule ("pass" by default, as innsight).
    """
