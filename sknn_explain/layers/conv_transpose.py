"""Transposed convolution (1d / 2d / 3d), the upsampling layer of decoders and U-Nets."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Layer

__all__ = ["ConvTranspose"]

_FUNCTIONS = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def _per_axis(v: tuple[int, ...], nd: int) -> tuple[int, ...]:
    v = tuple(int(i) for i in v)
    return v if len(v) == nd else v * nd


class ConvTranspose(Layer):
    """``F.conv_transpose{1,2,3}d`` with a fixed ``output_padding``.

    Parameters
    ----------
    weight : Tensor, shape (in_channels, out_channels / groups, *kernel)
    bias : Tensor, shape (out_channels,), optional
    stride, padding, output_padding, dilation : tuple of int
        Per spatial axis.
    groups : int
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None,
                 stride: tuple[int, ...] = (1,), padding: tuple[int, ...] = (0,),
                 output_padding: tuple[int, ...] = (0,), groups: int = 1,
                 dilation: tuple[int, ...] = (1,)) -> None:
        super().__init__()
        nd = weight.ndim - 2
        if nd not in _FUNCTIONS:
            raise ValueError(f"ConvTranspose supports 1d, 2d and 3d kernels, got {nd}d")
        self.register_buffer("weight", self._buffer(weight))
        self.register_buffer("bias", self._buffer(bias))
        self.spatial_dims = nd
        self.stride = _per_axis(stride, nd)
        self.padding = _per_axis(padding, nd)
        self.output_padding = _per_axis(output_padding, nd)
        self.dilation = _per_axis(dilation, nd)
        self.groups = int(groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _FUNCTIONS[self.spatial_dims](x, self.weight, self.bias, self.stride, self.padding,
                                             self.output_padding, self.groups, self.dilation)

    def extra_repr(self) -> str:
        c_in, c_out = self.weight.shape[0], self.weight.shape[1] * self.groups
        return (f"{self.spatial_dims}d, {c_in}->{c_out}, kernel={tuple(self.weight.shape[2:])}, "
                f"stride={self.stride}, padding={self.padding}, "
                f"output_padding={self.output_padding}, dilation={self.dilation}, "
                f"groups={self.groups}")
