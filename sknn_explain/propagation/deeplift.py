"""DeepLift multipliers over a :class:`~sknn_explain.convert.Graph` (Shrikumar et al., 2017).

The pass propagates multipliers ``m = dC/dDelta`` from the selected outputs (``m = 1``) to
the inputs; attributions are ``m * (x - x_ref)``. Linear layers (Dense, Conv, BatchNorm,
scalers, average pooling, padding, reshaping, Add, Concat) pass multipliers through their
transpose, so every layer conserves ``sum(m_in * Delta_in) = sum(m_out * Delta_out)``
exactly. Non-linear layers:

* Activation, ``"rescale"``: ``m_in = m * Delta_y / Delta_x``, where
  ``|Delta_x| < eps`` (1e-6 in float32, 1e-10 in float64) the derivative at the midpoint
  ``(x + x_ref) / 2`` instead. Softmax / log-softmax are treated position-wise as
  innsight does (summation-to-delta still holds; cross-position effects are not spread).
* Activation, ``"reveal_cancel"``: when fed by a Dense / Conv / Add node, the positive and
  negative parts ``Delta+``, ``Delta-`` of that node's input contributions get their own
  multipliers ``m+ = Delta_y+ / Delta+``, ``m- = Delta_y- / Delta-`` with
  ``Delta_y+ = (f(r + Delta+) - f(r)) / 2 + (f(x) - f(r + Delta-)) / 2`` and vice versa;
  the producer routes ``m+`` to its positive terms and ``m-`` to its negative terms (as
  innsight; an input with ``Delta_in = 0`` gets ``(m+ + m-) / 2``). A vanishing part
  (``|Delta+-| < eps``, e.g. all terms negative) takes the limit of the ratio,
  ``(f'(r) + f'(x)) / 2``, where the paper leaves 0/0 undefined (innsight divides by a tiny
  epsilon). Elsewhere (an activation fed by any other layer) RevealCancel equals Rescale.
* MaxPool, ``winner_takes_all=True``: captum's exact rule: ``max(y, y_ref) - y_ref`` goes
  to the window maximum of ``x``, ``y - max(y, y_ref)`` to the maximum of ``x_ref``
  (``m_in = contribution / Delta_in``; the gradient where ``|Delta_in| < eps``).
  ``winner_takes_all=False``: innsight's average-pooling variant, ``m_in = avg^T(m *
  Delta_y / avg(Delta_x))``.
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
    Recurrent,
)
from ..rules.modifiers import NEGATIVE, POSITIVE
from ._ops import (
    LinearOp,
    linear_op,
    linear_vjp,
    pool_indices,
    route,
    structural_backward,
    walk,
    window_mean,
)
from .extended_layers import extended_deeplift
from .products import deeplift_products
from .recurrent import recurrent_deeplift

__all__ = ["deeplift_backward", "deeplift_eps"]


def deeplift_eps(dtype: torch.dtype) -> float:
    """Threshold below which a difference counts as zero (gradient fallback)."""
    return 1e-10 if dtype == torch.float64 else 1e-6


def _derivative(layer: Activation, t: torch.Tensor) -> torch.Tensor:
    """Element-wise derivative of an activation (the Jacobian diagonal for softmax)."""
    if layer.name == "softmax":
        s = torch.softmax(t, dim=layer.params["dim"])
        return s * (1 - s)
    if layer.name == "log_softmax":
        return 1 - torch.softmax(t, dim=layer.params["dim"])
    with torch.enable_grad():
        z = t.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(layer(z).sum(), z)
    return g


def _safe_div(num: torch.Tensor, den: torch.Tensor, small: torch.Tensor) -> torch.Tensor:
    return num / torch.where(small, torch.ones_like(den), den)


def _pair_linear(op: LinearOp, din: torch.Tensor,
                 m: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Route ``m+`` to positive terms ``w * Delta_in`` and ``m-`` to negative ones."""
    mp, mn = m
    a = op.bwd(mp, POSITIVE) + op.bwd(mn, NEGATIVE)  # inputs with Delta > 0
    b = op.bwd(mp, NEGATIVE) + op.bwd(mn, POSITIVE)  # inputs with Delta < 0
    return torch.where(din > 0, a, torch.where(din < 0, b, 0.5 * (a + b)))


def deeplift_backward(
    graph: Graph,
    vx: dict[str, torch.Tensor],
    vr: dict[str, torch.Tensor],
    start: dict[str, torch.Tensor],
    *,
    rule_name: str = "rescale",
    winner_takes_all: bool = True,
    keep: tuple[str, ...] = (),
) -> dict[str, torch.Tensor]:
    """Multipliers of every graph input (and of the nodes in ``keep``), ``(K, n, *shape)``.

    ``vx`` / ``vr`` are the forward values at the inputs and at the references (the latter
    with ``n`` rows or one row, broadcast).
    """
    nodes = {n.name: n for n in graph.nodes}
    reveal = rule_name == "reveal_cancel"

    def delta(name: str) -> torch.Tensor:
        return vx[name] - vr[name]

    def producer_split(name: str):
        """(Delta+, Delta-) of the terms of node ``name``, or None if it has no terms."""
        node = nodes.get(name)
        if node is None:
            return None
        if isinstance(node.layer, (Dense, Conv)):
            din = delta(node.inputs[0])
            op = linear_op(node.layer, vx[node.inputs[0]])
            dp_, dn_ = din.clamp(min=0), din.clamp(max=0)
            return (op.fwd(dp_, POSITIVE) + op.fwd(dn_, NEGATIVE),
                    op.fwd(dp_, NEGATIVE) + op.fwd(dn_, POSITIVE))
        if isinstance(node.layer, Add):
            ds = [delta(p) for p in node.inputs]
            return sum(d.clamp(min=0) for d in ds), sum(d.clamp(max=0) for d in ds)
        return None

    def activation(node: Node, m: torch.Tensor):
        layer = node.layer
        if layer.name == "identity":
            return m
        x, r = vx[node.inputs[0]], vr[node.inputs[0]]
        y, yr = vx[node.name], vr[node.name]
        eps = deeplift_eps(x.dtype)
        split = producer_split(node.inputs[0]) if reveal and layer.elementwise else None
        if split is None:  # Rescale
            dx = x - r
            small = dx.abs() < eps
            mult = _safe_div(y - yr, dx, small)
            if bool(small.any()):
                mult = torch.where(small, _derivative(layer, (x + r) / 2), mult)
            return m * mult
        dp, dn = split
        f_p, f_n, f_r = layer(r + dp), layer(r + dn), layer(r)
        yp = 0.5 * (f_p - f_r) + 0.5 * (y - f_n)
        yn = 0.5 * (f_n - f_r) + 0.5 * (y - f_p)
        small_p, small_n = dp.abs() < eps, dn.abs() < eps
        mp, mn = _safe_div(yp, dp, small_p), _safe_div(yn, dn, small_n)
        if bool(small_p.any() or small_n.any()):
            # first-order limit of Delta_y+- / Delta+- for a vanishing part
            fallback = 0.5 * (_derivative(layer, r) + _derivative(layer, x))
            mp = torch.where(small_p, fallback, mp)
            mn = torch.where(small_n, fallback, mn)
        return (m * mp, m * mn)

    def backward(node: Node, m):
        layer = node.layer
        special = deeplift_products(node, m, vx, vr, deeplift_eps(vx[node.name].dtype),
                                    graph.outputs)
        if special is not None:  # products, masked softmax, embeddings
            return special
        if isinstance(layer, Activation):
            return [activation(node, m)]
        if isinstance(layer, Add):
            if isinstance(m, tuple):
                mp, mn = m
                out = []
                for p in node.inputs:
                    d = delta(p)
                    out.append(torch.where(d > 0, mp, torch.where(d < 0, mn, 0.5 * (mp + mn))))
                return out
            return [m] * len(node.inputs)
        if isinstance(layer, (Dense, Conv, ElementwiseAffine)):
            x = vx[node.inputs[0]]
            op = linear_op(layer, x)
            if isinstance(m, tuple):
                return [_pair_linear(op, x - vr[node.inputs[0]], m)]
            return [op.bwd(m)]
        if isinstance(layer, (AvgPool, AdaptiveAvgPool)):
            x = vx[node.inputs[0]]
            return [linear_vjp(layer, x.shape[1:], m)]
        if isinstance(layer, (MaxPool, AdaptiveMaxPool)):
            return [_maxpool(node, m)]
        if isinstance(layer, Recurrent):  # unrolled: Rescale + product rule, see .recurrent
            x = vx[node.inputs[0]]
            return [recurrent_deeplift(layer, x, vr[node.inputs[0]], m, deeplift_eps(x.dtype))]
        out = extended_deeplift(node, m, vx, vr, deeplift_eps(vx[node.name].dtype))
        if out is None:
            out = structural_backward(node, m, vx)
        if out is None:
            raise TypeError(
                f"DeepLift has no rule for layer {type(layer).__name__} ({node.name})"
            )
        return out

    def _maxpool(node: Node, m: torch.Tensor) -> torch.Tensor:
        layer = node.layer
        x, r = vx[node.inputs[0]], vr[node.inputs[0]]
        y, yr = vx[node.name], vr[node.name]
        in_shape = x.shape[1:]
        eps = deeplift_eps(x.dtype)
        if not winner_takes_all:
            mean = window_mean(layer)
            dz = mean(x - r)
            ratio = (y - yr) / torch.where(dz == 0, torch.full_like(dz, eps), dz)
            return linear_vjp(mean, in_shape, m * ratio)
        _, ix = pool_indices(layer, x)
        _, ir = pool_indices(layer, r)
        top = torch.maximum(y, yr)
        contrib = route(m * (top - yr), ix, in_shape) + route(m * (y - top), ir, in_shape)
        dx = x - r
        small = dx.abs() < eps
        mult = contrib * torch.reciprocal(torch.where(small, torch.ones_like(dx), dx))
        if bool(small.any()):
            mult = torch.where(small, route(m, ix, in_shape), mult)
        return mult

    return walk(graph, start, backward, keep)
