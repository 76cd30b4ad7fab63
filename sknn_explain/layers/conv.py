"""Convolution (1d / 2d / 3d) with zero padding; other padding modes become a Pad layer first."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Layer, is_channels_last_1d


class Conv(Layer):
    """Convolution over 1, 2 or 3 spatial axes (``weight.ndim - 2``).

    Parameters
    ----------
    weight : Tensor, shape (out_channels, in_channels / groups, *kernel)
    bias : Tensor, shape (out_channels,), optional
    stride, padding, dilation : tuple of int
        Per spatial axis; ``padding`` is symmetric zero padding.
    groups : int
    """

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor | None = None,
        stride: tuple[int, ...] = (1,),
        padding: tuple[int, ...] = (0,),
        dilation: tuple[int, ...] = (1,),
        groups: int = 1,
    ) -> None:
        super().__init__()
        self.register_buffer("weight", self._buffer(weight))
        self.register_buffer("bias", self._buffer(bias))
        nd = weight.ndim - 2
        if nd not in (1, 2, 3):
            raise ValueError(f"Conv supports 1d, 2d and 3d kernels, got a {nd}d kernel")
        self.spatial_dims = nd
        self.stride = tuple(stride) if len(stride) == nd else tuple(stride) * nd
        self.padding = tuple(padding) if len(padding) == nd else tuple(padding) * nd
        self.dilation = tuple(dilation) if len(dilation) == nd else tuple(dilation) * nd
        self.groups = int(groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.spatial_dims == 1 and is_channels_last_1d(x):  # as a channels-last image row
            return F.conv2d(x.unsqueeze(2), self.weight.unsqueeze(2), self.bias,
                            (1, *self.stride), (0, *self.padding), (1, *self.dilation),
                            self.groups).squeeze(2)
        fn = (F.conv1d, F.conv2d, F.conv3d)[self.spatial_dims - 1]
        return fn(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        c_in, c_out = self.weight.shape[1] * self.groups, self.weight.shape[0]
        return (f"{self.spatial_dims}d, {c_in}->{c_out}"
                f", kernel={tuple(self.weight.shape[2:])}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, groups={self.groups}")
