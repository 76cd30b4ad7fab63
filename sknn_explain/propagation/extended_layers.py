"""Rules of the structural, normalisation and transposed-convolution layers (issue #12).

One function per propagation method; each returns the states of a node's inputs, or None
when the node's layer is not one of these (the caller then tries its other rules).

========================  ======================  ======================  ====================
layer                     LRP                     DeepLift / DeepSHAP     Connection Weights
========================  ======================  ======================  ====================
Index (``x[...]``,        relevance scattered     multipliers scattered   scattered back
select, narrow)           back (zeros elsewhere)  back (exact, linear)
Permute (transpose,       permuted back           permuted back           permuted back
permute)
Reduce (sum / mean)       the "AvgPool" rule on   transpose (exact,       transpose
                          the positive uniform    linear)
                          map: "simple" /
                          "epsilon" = the
                          proportional split
ConvTranspose             the "Conv" rule on the  transpose (exact,       transpose
                          transposed linear map   linear)
LayerNorm / RMSNorm       the "Dense" rule on     product rule +          refused (per-sample
                          the map with ``s``      rescale (exact, see     normalisation has no
                          detached (AttnLRP       :mod:`.layer_norm`)     data-free weights)
                          identity rule)
ConstantConcat (CLS       sliced; the constant's  sliced (the constant    sliced
token)                    share is absorbed       has zero difference)
BroadcastAffine (feature  the "Dense" rule on     transpose (exact,       transpose (the
tokenizer)                the affine map          linear)                 weights)
========================  ======================  ======================  ====================
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..convert.graph import Node
from ..layers import (
    BroadcastAffine,
    ConstantConcat,
    ConvTranspose,
    Index,
    LayerNorm,
    Permute,
    Reduce,
    RMSNorm,
)
from ..rules import LayerRules
from ..rules.modifiers import KEEP, Modifier
from ._ops import LinearOp, PositiveOp, State, linear_vjp
from .constant_ops import BroadcastAffineOp, constant_concat_backward
from .layer_norm import NormOp, norm_deeplift

__all__ = [
    "ConvTransposeOp",
    "extended_connection_weights",
    "extended_deeplift",
    "extended_linear_op",
    "extended_lrp",
]

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


class ConvTransposeOp(LinearOp):
    """A transposed convolution; its transpose is the convolution with the same weights."""

    def __init__(self, layer: ConvTranspose, in_shape: tuple[int, ...]) -> None:
        self.layer, self.in_shape = layer, in_shape

    def fwd(self, x: torch.Tensor, weights: Modifier = KEEP,
            bias: Modifier | None = None) -> torch.Tensor:
        la = self.layer
        b = None if bias is None or la.bias is None else bias(la.bias)
        return _CONV_T[la.spatial_dims](x, weights(la.weight), b, la.stride, la.padding,
                                        la.output_padding, la.groups, la.dilation)

    def bwd(self, g: torch.Tensor, weights: Modifier = KEEP) -> torch.Tensor:
        la = self.layer
        k, n = g.shape[:2]
        out = _CONV[la.spatial_dims](g.reshape(k * n, *g.shape[2:]), weights(la.weight), None,
                                     la.stride, la.padding, la.dilation, la.groups)
        return out.reshape(k, n, *self.in_shape)


def extended_linear_op(layer: object, x: torch.Tensor) -> LinearOp | None:
    """The linear form of a Reduce / ConvTranspose / LayerNorm / RMSNorm layer at ``x``."""
    in_shape = tuple(x.shape[1:])
    if isinstance(layer, ConvTranspose):
        return ConvTransposeOp(layer, in_shape)
    if isinstance(layer, Reduce):
        return PositiveOp(layer, in_shape)
    if isinstance(layer, (LayerNorm, RMSNorm)):
        return NormOp(layer, x)
    if isinstance(layer, BroadcastAffine):
        return BroadcastAffineOp(layer, in_shape)
    return None


def _route(node: Node, g: torch.Tensor, values: dict[str, torch.Tensor]) -> list | None:
    """Index / Permute / ConstantConcat: the transpose of the selection or permutation."""
    sliced = constant_concat_backward(node, g, values)
    if sliced is not None:
        return sliced
    layer = node.layer
    x = values[node.inputs[0]]
    if isinstance(layer, Permute):
        inverse = [0] * len(layer.dims)
        for i, d in enumerate(layer.dims):
            inverse[d] = i
        return [g.permute(0, *[d + 1 for d in inverse])]
    if isinstance(layer, Index):
        return [linear_vjp(layer, x.shape[1:], g)]
    return None


def _collapse(m: State, delta: torch.Tensor) -> torch.Tensor:
    """RevealCancel's ``(m+, m-)`` as one multiplier, routed by the sign of ``delta`` (as
    ``Add`` routes them to its summands)."""
    if not isinstance(m, tuple):
        return m
    mp, mn = m
    return torch.where(delta > 0, mp, torch.where(delta < 0, mn, 0.5 * (mp + mn)))


_RULE_KEY = {ConvTranspose: "Conv", Reduce: "AvgPool", LayerNorm: "Dense", RMSNorm: "Dense",
             BroadcastAffine: "Dense"}


def extended_lrp(node: Node, r: torch.Tensor, values: dict[str, torch.Tensor],
                 rules: LayerRules) -> list | None:
    """LRP: input relevances of an extended layer's node, or None."""
    routed = _route(node, r, values)
    if routed is not None:
        return routed
    x = values[node.inputs[0]]
    op = extended_linear_op(node.layer, x)
    if op is None:
        return None
    rule = rules.for_key(_RULE_KEY[type(node.layer)])
    return [rule.relevance(op, x, r, values[node.name])]


def extended_deeplift(node: Node, m: State, vx: dict[str, torch.Tensor],
                      vr: dict[str, torch.Tensor], eps: float) -> list | None:
    """DeepLift: input multipliers of an extended layer's node, or None."""
    layer = node.layer
    if not isinstance(layer, (Index, Permute, Reduce, ConvTranspose, LayerNorm, RMSNorm,
                              ConstantConcat, BroadcastAffine)):
        return None
    m = _collapse(m, vx[node.name] - vr[node.name])
    routed = _route(node, m, vx)
    if routed is not None:
        return routed
    x = vx[node.inputs[0]]
    if isinstance(layer, (LayerNorm, RMSNorm)):
        return [norm_deeplift(layer, m, x, vr[node.inputs[0]], eps)]
    return [extended_linear_op(layer, x).bwd(m)]


def extended_connection_weights(node: Node, m: torch.Tensor,
                                values: dict[str, torch.Tensor]) -> list | None:
    """Connection Weights: path-weight sums of an extended layer's node's inputs, or None."""
    layer = node.layer
    if isinstance(layer, (LayerNorm, RMSNorm)):
        raise TypeError(
            f"Connection Weights has no rule for layer {type(layer).__name__} ({node.name}): "
            "it normalises every sample by its own statistics, so its weights depend on the "
            "data and products of weights along paths have no data-free meaning; use LRP, "
            "DeepLift or a gradient method"
        )
    routed = _route(node, m, values)
    if routed is not None:
        return routed
    op = extended_linear_op(layer, values[node.inputs[0]])
    return None if op is None else [op.bwd(m)]
