"""Handlers for operations that combine an activation with a constant of another shape.

==============================================================  ===============================
torch                                                           graph layer
==============================================================  ===============================
``torch.cat([cls.expand(n, -1, -1), tokens], 1)`` (constant     :class:`~sknn_explain.layers.
blocks, identical for every sample)                             ConstantConcat`
``x.unsqueeze(-1) * W + b`` (a constant broadcasts the          :class:`~sknn_explain.layers.
activation to a new shape), ``tokens + pos_embedding``          BroadcastAffine`
(a constant varying along more than the channel axis)
==============================================================  ===============================

A constant that differs between the samples of the batch is refused.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import fx

from ...layers import BroadcastAffine, ConstantConcat
from .walker import Converter

__all__ = ["broadcast_affine", "constant_concat", "is_per_channel"]


def _per_sample_constant(cv: Converter, c: object, rank: int, node: fx.Node) -> torch.Tensor:
    """The constant ``c`` without its batch axis (refused when it differs between samples)."""
    t = cv.buf(cv.val(c))
    if t.ndim < rank:
        return t
    if t.ndim > rank:
        raise cv.unsupported(node, f"a constant of shape {tuple(t.shape)} has more axes than "
                             "the result")
    if t.shape[0] > 1 and not bool((t == t[:1]).all()):
        raise cv.unsupported(node, "the constant operand differs between the samples of the "
                             "batch (only per-sample constants can be part of the graph)")
    return t[0]


def is_per_channel(cv: Converter, c: object, x_shape: tuple[int, ...],
                   out_shape: tuple[int, ...]) -> bool:
    """Whether a constant operand is a scalar or varies along axis 1 only, and keeps the
    activation's shape (the case of :class:`~sknn_explain.layers.ElementwiseAffine`)."""
    if tuple(x_shape) != tuple(out_shape):
        return False
    t = cv.val(c)
    t = torch.as_tensor(t)
    if t.numel() == 1:
        return True
    rank = len(x_shape)
    if t.ndim > rank:
        return False
    full = (1,) * (rank - t.ndim) + tuple(t.shape)
    return full[0] == 1 and all(d == 1 for d in full[2:]) and full[1] == x_shape[1]


def broadcast_affine(cv: Converter, node: fx.Node, op: str, x_node: fx.Node, c: object,
                     alpha: float, data_first: bool) -> str:
    """``x (op) c`` for a constant ``c`` that broadcasts ``x`` (``op``: add, sub, mul, div;
    ``data_first``: ``x`` is the left operand; ``alpha``: torch's ``add`` / ``sub`` factor)."""
    out_shape = tuple(cv.values[node.name].shape)
    x_shape = cv.shape(x_node)
    rank = len(out_shape)
    if len(x_shape) != rank or x_shape[0] != out_shape[0]:
        raise cv.unsupported(node, f"the constant operand broadcasts the batch axis of the "
                             f"tensor {x_shape} to {out_shape}")
    t = _per_sample_constant(cv, c, rank, node)
    one, zero = torch.ones_like(t), torch.zeros_like(t)
    if op == "add":
        scale, shift = (one, alpha * t) if data_first else (alpha * one, t)
    elif op == "sub":
        scale, shift = (one, -alpha * t) if data_first else (-alpha * one, t)
    elif op == "mul":
        scale, shift = t, zero
    elif data_first:
        scale, shift = 1.0 / t, zero
    else:
        raise cv.unsupported(node, "dividing by an input-dependent tensor")
    layer = BroadcastAffine(scale, shift, x_shape[1:], out_shape[1:])
    return cv.add(node, layer, [cv.alias[x_node.name]])


def constant_concat(cv: Converter, node: fx.Node, tensors: Sequence[object], dim: int) -> str:
    """``torch.cat(tensors, dim)`` where some tensors are constants (a CLS token)."""
    rank = len(cv.values[node.name].shape)
    parts: list[torch.Tensor | None] = []
    inputs: list[str] = []
    for t in tensors:
        if cv.is_data(t):
            parts.append(None)
            inputs.append(cv.alias[t.name])
        else:
            parts.append(_per_sample_constant(cv, t, rank, node))
    if not inputs:
        raise cv.unsupported(node, "no operand depends on the model input")
    return cv.add(node, ConstantConcat(dim, parts), inputs)
