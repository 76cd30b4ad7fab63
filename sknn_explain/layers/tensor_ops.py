"""Structural tensor operations: indexing / slicing, axis permutations and sums / means.

All three are linear maps of their input that keep the batch axis (axis 0) untouched, so
every propagation method routes relevances / multipliers through them exactly (indexing
scatters back into zeros, a permutation permutes back, a reduction is the proportional
split for LRP and its transpose for DeepLift and Connection Weights).
"""

from __future__ import annotations

import torch

from .base import Layer

__all__ = ["Index", "Permute", "Reduce"]


class Index(Layer):
    """``x[key]`` for a basic-indexing ``key`` whose first entry keeps the whole batch axis.

    Parameters
    ----------
    key : tuple
        Entries are ``slice`` s, ints, ``None`` (a new axis), ``Ellipsis`` or lists of ints;
        ``key[0]`` must be ``slice(None)`` (all samples).

    Examples
    --------
    >>> import torch
    >>> Index((slice(None), 0))(torch.arange(6.0).reshape(2, 3))
    tensor([0., 3.])
    """

    def __init__(self, key: tuple) -> None:
        super().__init__()
        key = tuple(key)
        if not key or key[0] != slice(None):
            raise ValueError(f"Index keys must keep the batch axis (key[0] = slice(None)), "
                             f"got {key!r}")
        for k in key:
            ok = (k is None or k is Ellipsis or isinstance(k, (int, slice))
                  or (isinstance(k, list) and all(isinstance(i, int) for i in k)))
            if not ok or isinstance(k, bool):
                raise ValueError(f"unsupported index entry {k!r} (ints, slices, None, "
                                 "Ellipsis and lists of ints are supported)")
        self.key = key

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[self.key]

    def extra_repr(self) -> str:
        return f"key={self.key!r}"


class Permute(Layer):
    """``x.permute(dims)`` with ``dims[0] == 0`` (the batch axis stays first)."""

    def __init__(self, dims: tuple[int, ...]) -> None:
        super().__init__()
        dims = tuple(int(d) for d in dims)
        if sorted(dims) != list(range(len(dims))) or dims[0] != 0:
            raise ValueError(f"Permute needs a permutation of the axes that keeps axis 0 "
                             f"first, got {dims}")
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(self.dims)

    def extra_repr(self) -> str:
        return f"dims={self.dims}"


class Reduce(Layer):
    """Sum or mean over non-batch axes ``dims`` (full-tensor axes, all >= 1).

    Examples
    --------
    >>> import torch
    >>> Reduce("mean", (1,))(torch.tensor([[1.0, 3.0]]))
    tensor([2.])
    """

    def __init__(self, kind: str, dims: tuple[int, ...], keepdim: bool = False) -> None:
        super().__init__()
        if kind not in ("sum", "mean"):
            raise ValueError(f"Reduce kind must be 'sum' or 'mean', got {kind!r}")
        dims = tuple(sorted({int(d) for d in dims}))
        if not dims or dims[0] < 1:
            raise ValueError(f"Reduce needs non-batch axes (>= 1), got {dims}")
        self.kind, self.dims, self.keepdim = kind, dims, bool(keepdim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "sum":
            return x.sum(self.dims, keepdim=self.keepdim)
        return x.mean(self.dims, keepdim=self.keepdim)

    def extra_repr(self) -> str:
        return f"{self.kind}, dims={self.dims}, keepdim={self.keepdim}"
