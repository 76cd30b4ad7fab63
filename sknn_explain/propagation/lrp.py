"""Layer-wise Relevance Propagation over a :class:`~sknn_explain.convert.Graph`.

Per layer class (rules in :mod:`sknn_explain.rules`):

* Dense, Conv: the layer's rule (``"input"`` rule for the first layer if given).
* BatchNorm, ElementwiseAffine (scalers): ``"pass"`` by default, or any linear rule on
  ``x * scale + shift`` (the shift is the bias).
* AvgPool, AdaptiveAvgPool: the pooling rule on the (bias-free, positive) average.
* MaxPool, AdaptiveMaxPool: ``winner_takes_all`` routes each output's relevance to the
  window's maximum (the gradient, as innsight and zennit); otherwise the window is treated
  as an average pooling with the MaxPool rule (innsight).
* Activation (any, also softmax): relevance passes through position-wise (innsight).
* Add: ``"equal"`` (default, innsight) gives every summand ``R / n``; ``"simple"`` /
  ``"epsilon"`` split proportionally to the summands' values.
* Concat: each input gets its slice. Flatten / Reshape: reshaped back. Pad: the relevance
  of padded positions is dropped (constant padding) or added back to the source positions
  (reflect / replicate / circular).
"""

from __future__ import annotations

import torch

from ..convert.graph import Graph, Node
from ..layers import (
    Activation,
    AdaptiveAvgPool,
    AdaptiveMaxPool,
    Add,
    AvgPool,
    Conv,
    Dense,
    ElementwiseAffine,
    MaxPool,
)
from ..rules import AlphaBeta, Gamma, LayerRules, Rule, ZBox
from ._ops import (
    LinearOp,
    input_layers,
    layer_key,
    linear_op,
    pool_indices,
    route,
    structural_backward,
    walk,
)

__all__ = ["linear_relevance", "lrp_backward"]


def _stab(z: torch.Tensor, eps: float) -> torch.Tensor:
    """``z + eps * sign(z)`` with ``sign(0) = +1`` (zennit's stabiliser)."""
    return z + eps * (2.0 * (z >= 0).to(z.dtype) - 1.0)


def _over(r: torch.Tensor, z: torch.Tensor, eps: float,
          mask: torch.Tensor | None = None) -> torch.Tensor:
    """``r / stab(z)`` (times ``mask``) for ``r`` ``(K, n, ...)``: divide once, on ``z``."""
    inv = torch.reciprocal(_stab(z, eps))
    return r * (inv if mask is None else inv * mask)


def linear_relevance(op: LinearOp, x: torch.Tensor, r: torch.Tensor, rule: Rule,
                     z: torch.Tensor | None = None) -> torch.Tensor:
    """Input relevance ``(K, n, *in)`` of a linear layer at input ``x`` ``(n, *in)``.

    ``r`` is the output relevance ``(K, n, *out)``; ``z`` the layer output if known (else
    recomputed). Formulas: see :mod:`sknn_explain.rules`.
    """
    eps = rule.eps(x.dtype)
    name = rule.name
    if z is None and name in ("simple", "epsilon", "gamma"):
        z = op.fwd(x, "w", "w")
    if name in ("simple", "epsilon"):
        s = _over(r, z, eps)
        return x * op.bwd(s, "w")
    if name == "flat":
        s = _over(r, op.fwd(torch.ones_like(x), "one"), eps)
        return op.bwd(s, "one")
    if name == "wsquare":
        s = _over(r, op.fwd(torch.ones_like(x), "sq", "sq"), eps)
        return op.bwd(s, "sq")
    if name == "zbox":
        assert isinstance(rule, ZBox)
        low, high = rule.bounds(x)
        low, high = torch.broadcast_to(low, x.shape[1:]), torch.broadcast_to(high, x.shape[1:])
        lo, hi = low.unsqueeze(0), high.unsqueeze(0)
        z = op.fwd(x, "w", "w") - op.fwd(lo, "pos", "pos") - op.fwd(hi, "neg", "neg")
        s = _over(r, z, eps)
        return x * op.bwd(s, "w") - lo * op.bwd(s, "pos") - hi * op.bwd(s, "neg")
    xp, xn = x.clamp(min=0), x.clamp(max=0)
    if name in ("zplus", "alpha_beta"):
        zp = op.fwd(xp, "pos", "pos") + op.fwd(xn, "neg")
        sp = _over(r, zp, eps)
        rel_pos = xp * op.bwd(sp, "pos") + xn * op.bwd(sp, "neg")
        if name == "zplus":
            return rel_pos
        assert isinstance(rule, AlphaBeta)
        zn = op.fwd(xp, "neg", "neg") + op.fwd(xn, "pos")
        sn = _over(r, zn, eps)
        rel_neg = xp * op.bwd(sn, "neg") + xn * op.bwd(sn, "pos")
        return rule.alpha * rel_pos - rule.beta * rel_neg
    if name == "gamma":
        assert isinstance(rule, Gamma)
        g = rule.gamma
        zp = op.fwd(xp, "gpos", "gpos", g) + op.fwd(xn, "gneg", None, g)
        zn = op.fwd(xp, "gneg", "gneg", g) + op.fwd(xn, "gpos", None, g)
        sp = _over(r, zp, eps, (z > 0).to(r.dtype))
        sn = _over(r, zn, eps, (z < 0).to(r.dtype))
        return (xp * (op.bwd(sp, "gpos", g) + op.bwd(sn, "gneg", g))
                + xn * (op.bwd(sp, "gneg", g) + op.bwd(sn, "gpos", g)))
    raise ValueError(f"the LRP rule {name!r} does not apply to linear layers")


def lrp_backward(
    graph: Graph,
    values: dict[str, torch.Tensor],
    start: dict[str, torch.Tensor],
    rules: LayerRules,
    *,
    winner_takes_all: bool = True,
) -> dict[str, torch.Tensor]:
    """Relevance of every graph input, ``(K, n, *shape)``, from output start relevances."""
    first = input_layers(graph)

    def backward(node: Node, r: torch.Tensor):
        layer = node.layer
        if isinstance(layer, Activation):
            return [r]
        if isinstance(layer, Add):
            rule = rules.for_key("Add")
            if rule.name == "equal":
                return [r / len(node.inputs)] * len(node.inputs)
            s = _over(r, values[node.name], rule.eps(r.dtype))
            return [values[p] * s for p in node.inputs]
        if isinstance(layer, (MaxPool, AdaptiveMaxPool)) and winner_takes_all:
            x = values[node.inputs[0]]
            _, idx = pool_indices(layer, x)
            return [route(r, idx, x.shape[1:])]
        if isinstance(layer, (Dense, Conv, ElementwiseAffine, AvgPool, AdaptiveAvgPool,
                              MaxPool, AdaptiveMaxPool)):
            rule = rules.for_key(layer_key(layer), node.name in first)
            if rule.name == "pass":
                return [r]
            x = values[node.inputs[0]]
            # the stored output is the plain pre-activation, except for max pooling
            z = None if isinstance(layer, (MaxPool, AdaptiveMaxPool)) else values[node.name]
            return [linear_relevance(linear_op(layer, x), x, r, rule, z)]
        out = structural_backward(node, r, values)
        if out is None:
            raise TypeError(f"LRP has no rule for layer {type(layer).__name__} ({node.name})")
        return out

    return walk(graph, start, backward)
