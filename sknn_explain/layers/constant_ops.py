"""Layers that combine an activation with a constant tensor of another shape.

* :class:`ConstantConcat`: ``torch.cat`` of activations with constant blocks (a CLS token,
  ``torch.cat([cls.expand(n, -1, -1), tokens], 1)``).
* :class:`BroadcastAffine`: ``x * scale + shift`` where the constants broadcast ``x`` to a
  new per-sample shape (a feature tokenizer, ``x.unsqueeze(-1) * W + b``) or vary along
  more than the channel axis (a positional embedding added to tokens).

Both are exact linear (affine) maps of their input; see :mod:`sknn_explain.propagation.
constant_ops` for their rules.
"""

from __future__ import annotations

import torch

from .base import Layer

__all__ = ["BroadcastAffine", "ConstantConcat"]


class ConstantConcat(Layer):
    """Concatenation of activations and constant blocks along ``dim``.

    Parameters
    ----------
    dim : int
        The full-tensor axis of the concatenation (1 = the first axis after the batch).
    parts : sequence of torch.Tensor or None
        One entry per concatenated piece, in order: a per-sample constant (without the batch
        axis; it is repeated over the batch) or None for the next activation input.

    Examples
    --------
    >>> import torch
    >>> layer = ConstantConcat(1, [torch.zeros(1, 2), None])
    >>> layer(torch.ones(3, 2, 2)).shape
    torch.Size([3, 3, 2])
    """

    n_inputs = None

    def __init__(self, dim: int, parts: list[torch.Tensor | None]) -> None:
        super().__init__()
        self.dim = int(dim)
        if self.dim < 1:
            raise ValueError(f"ConstantConcat needs a non-batch axis, got dim={dim}")
        self.slots: list[int | None] = []
        n_const = 0
        for p in parts:
            if p is None:
                self.slots.append(None)
            else:
                self.register_buffer(f"const_{n_const}", p.detach().clone())
                self.slots.append(n_const)
                n_const += 1
        self.n_data = sum(s is None for s in self.slots)
        if self.n_data == 0:
            raise ValueError("ConstantConcat needs at least one activation input")

    def constants(self) -> list[torch.Tensor]:
        """The constant blocks, in order (per-sample shapes)."""
        return [getattr(self, f"const_{s}") for s in self.slots if s is not None]

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        if len(xs) != self.n_data:
            raise ValueError(f"ConstantConcat expects {self.n_data} inputs, got {len(xs)}")
        n = xs[0].shape[0]
        data = iter(xs)
        pieces = []
        for s in self.slots:
            if s is None:
                pieces.append(next(data))
            else:
                c = getattr(self, f"const_{s}")
                pieces.append(c.unsqueeze(0).expand(n, *c.shape))
        return torch.cat(pieces, dim=self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, slots={self.slots}"


class BroadcastAffine(Layer):
    """``x * scale + shift`` with per-sample constants that broadcast ``x`` to ``shape``.

    Parameters
    ----------
    scale, shift : torch.Tensor
        Constants broadcastable to ``shape`` (per sample, without the batch axis).
    in_shape : tuple of int
        The per-sample shape of the input (broadcastable to ``shape``).
    shape : tuple of int
        The per-sample shape of the output.

    Examples
    --------
    >>> import torch
    >>> w, b = torch.ones(3, 4), torch.zeros(3, 4)
    >>> BroadcastAffine(w, b, (3, 1), (3, 4))(torch.ones(2, 3, 1)).shape
    torch.Size([2, 3, 4])
    """

    def __init__(self, scale: torch.Tensor, shift: torch.Tensor, in_shape: tuple[int, ...],
                 shape: tuple[int, ...]) -> None:
        super().__init__()
        self.in_shape = tuple(int(s) for s in in_shape)
        self.shape = tuple(int(s) for s in shape)
        if torch.broadcast_shapes(self.in_shape, tuple(scale.shape),
                                  tuple(shift.shape)) != self.shape:
            raise ValueError(f"input {self.in_shape}, scale {tuple(scale.shape)} and shift "
                             f"{tuple(shift.shape)} do not broadcast to {self.shape}")
        self.register_buffer("scale", scale.detach().expand(self.shape).clone())
        self.register_buffer("shift", shift.detach().expand(self.shape).clone())

    def expand(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(n, *in_shape)`` broadcast to ``(n, *shape)``."""
        lead = len(self.shape) - len(self.in_shape)
        x = x.reshape(x.shape[0], *([1] * lead), *x.shape[1:])
        return x.expand(x.shape[0], *self.shape)

    def reduce(self, g: torch.Tensor, lead_axes: int = 1) -> torch.Tensor:
        """The transpose of :meth:`expand`: sum ``g`` ``(*lead, *shape)`` onto ``in_shape``."""
        full = (1,) * (len(self.shape) - len(self.in_shape)) + self.in_shape
        dims = [lead_axes + i for i, (a, b) in enumerate(zip(full, self.shape)) if a != b]
        out = g.sum(dim=dims, keepdim=True) if dims else g
        return out.reshape(*g.shape[:lead_axes], *self.in_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.expand(x) * self.scale + self.shift

    def extra_repr(self) -> str:
        return f"in_shape={self.in_shape}, shape={self.shape}"
