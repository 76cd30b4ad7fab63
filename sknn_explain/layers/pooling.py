"""Pooling layers: average and max, fixed-window and adaptive (global = output size 1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Layer, is_channels_last_1d


def _tuple(v, nd: int) -> tuple[int, ...]:
    return tuple(v) if isinstance(v, (tuple, list)) else (int(v),) * nd


class AvgPool(Layer):
    """Average pooling over ``spatial_dims`` (1, 2 or 3) axes."""

    def __init__(self, spatial_dims: int, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None) -> None:
        super().__init__()
        self.spatial_dims = int(spatial_dims)
        self.kernel_size = _tuple(kernel_size, spatial_dims)
        self.stride = _tuple(stride if stride is not None else kernel_size, spatial_dims)
        self.padding = _tuple(padding, spatial_dims)
        self.ceil_mode = bool(ceil_mode)
        self.count_include_pad = bool(count_include_pad)
        self.divisor_override = divisor_override

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.spatial_dims == 1 and is_channels_last_1d(x):  # as a channels-last image row
            return F.avg_pool2d(x.unsqueeze(2), (1, *self.kernel_size), (1, *self.stride),
                                (0, *self.padding), self.ceil_mode,
                                self.count_include_pad).squeeze(2)
        if self.spatial_dims == 1:
            return F.avg_pool1d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                                self.count_include_pad)
        fn = F.avg_pool2d if self.spatial_dims == 2 else F.avg_pool3d
        return fn(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                  self.count_include_pad, self.divisor_override)

    def extra_repr(self) -> str:
        return f"{self.spatial_dims}d, kernel={self.kernel_size}, stride={self.stride}"


class MaxPool(Layer):
    """Max pooling over ``spatial_dims`` (1, 2 or 3) axes."""

    def __init__(self, spatial_dims: int, kernel_size, stride=None, padding=0, dilation=1,
                 ceil_mode=False) -> None:
        super().__init__()
        self.spatial_dims = int(spatial_dims)
        self.kernel_size = _tuple(kernel_size, spatial_dims)
        self.stride = _tuple(stride if stride is not None else kernel_size, spatial_dims)
        self.padding = _tuple(padding, spatial_dims)
        self.dilation = _tuple(dilation, spatial_dims)
        self.ceil_mode = bool(ceil_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.spatial_dims == 1 and is_channels_last_1d(x):  # as a channels-last image row
            return F.max_pool2d(x.unsqueeze(2), (1, *self.kernel_size), (1, *self.stride),
                                (0, *self.padding), (1, *self.dilation),
                                self.ceil_mode).squeeze(2)
        fn = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[self.spatial_dims - 1]
        return fn(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)

    def extra_repr(self) -> str:
        return f"{self.spatial_dims}d, kernel={self.kernel_size}, stride={self.stride}"


class AdaptiveAvgPool(Layer):
    """Adaptive average pooling to ``output_size`` (global average pooling: all ones)."""

    def __init__(self, spatial_dims: int, output_size) -> None:
        super().__init__()
        self.spatial_dims = int(spatial_dims)
        self.output_size = _tuple(output_size, spatial_dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fn = (F.adaptive_avg_pool1d, F.adaptive_avg_pool2d,
              F.adaptive_avg_pool3d)[self.spatial_dims - 1]
        return fn(x, self.output_size)

    def extra_repr(self) -> str:
        return f"{self.spatial_dims}d, output_size={self.output_size}"


class AdaptiveMaxPool(Layer):
    """Adaptive max pooling to ``output_size`` (global max pooling: all ones)."""

    def __init__(self, spatial_dims: int, output_size) -> None:
        super().__init__()
        self.spatial_dims = int(spatial_dims)
        self.output_size = _tuple(output_size, spatial_dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fn = (F.adaptive_max_pool1d, F.adaptive_max_pool2d,
              F.adaptive_max_pool3d)[self.spatial_dims - 1]
        return fn(x, self.output_size)

    def extra_repr(self) -> str:
        return f"{self.spatial_dims}d, output_size={self.output_size}"
