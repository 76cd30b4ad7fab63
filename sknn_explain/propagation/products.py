"""Propagation rules of products, softmax inside the graph and embeddings (issue #12).

LRP (AttnLRP, Achtibat et al., ICML 2024; the formulas of its reference implementation
``lxt``):

* :class:`~sknn_explain.layers.Multiply` ``y = a * b``: the uniform rule (Prop. 3.2),
  ``R_a = R_b = R_y / 2``.
* :class:`~sknn_explain.layers.MatMul` ``y_j = sum_i a_ji b_i`` (any bilinear einsum):
  the epsilon rule over the sum followed by the uniform rule on each product term
  (Prop. 3.3): ``R_a = a * (d/da <g, y(a, b)>) / 2`` and the same for ``b``, with
  ``g = R_y / stab(y)``, ``stab(y) = y + eps * sign(y)`` (``sign(0) = 1``, eps the tiny
  stabiliser of the ``"simple"`` rule: 1e-6 float32, 1e-15 float64). Both factors then
  receive half the relevance and pass it to their own producers with those layers' rules.
* Softmax inside the graph (``Activation("softmax")`` that is not a graph output, and
  :class:`~sknn_explain.layers.MaskedSoftmax`): the Taylor decomposition at ``x`` with bias
  (Prop. 3.1), ``R_x = x * (R_y - s * sum(R_y))`` over the softmax axis. The bias of that
  linearisation absorbs ``sum(R_y) - sum(R_x)``; masked positions get no relevance and the
  additive float mask counts as bias. A softmax that is a graph output keeps innsight's
  position-wise pass (as before).
* CP-LRP instead (``rule_name={"Softmax": "cp"}``, Ali et al., ICML 2022): the outputs of
  the softmax nodes inside the graph are constants. A ``MatMul`` / ``Multiply`` that reads
  one of them directly as one factor ``A`` is the linear map of its other factor ``v``:
  ``R_v = v * (d/dv <g, y(A, v)>)`` with ``g`` as above, ``R_A = 0``; the softmax passes
  no relevance to the scores. Bias-free networks conserve relevance.

DeepLift / DeepSHAP (Shrikumar et al., 2017; the product rule as the Shapley split of a
bilinear map):

* ``Multiply`` / ``MatMul``: ``Delta y = y(a_mean, Delta b) + y(Delta a, b_mean)`` with
  ``a_mean = (a + a_ref) / 2``, exact for every bilinear map, so the multipliers
  ``m_a = (d/da) <m, y(a, b_mean)>``, ``m_b = (d/db) <m, y(a_mean, b)>`` keep
  summation-to-delta exactly.
* ``MaskedSoftmax`` and ``Activation("softmax")`` inside the graph: Rescale on the steps
  of ``s = exp(x - log(sum(exp(x))))`` (:mod:`.softmax_deeplift`), exact also where a score
  does not change but its row does (a constant CLS token); masked positions get 0. A
  softmax that is a graph output keeps the position-wise Rescale of innsight.

A key padding mask computed from ids (:class:`~sknn_explain.layers.IdEqual`, read by
:class:`~sknn_explain.layers.PaddedSoftmax`) is not differentiable: every method passes
nothing back through it, so it is a per-row constant; the softmax rules above use the
sample's own mask. DeepLift / DeepSHAP require the reference to have the same mask (a
reference that pads other positions is refused: its difference would go nowhere).

Embedding (all methods): the state at the embedding output is summed over the embedding
dimension, one value per id. LRP passes ``sum_e R``; DeepLift passes the multiplier
``sum_e(m * Delta e) / Delta id`` (0 where the id equals the reference id, where
``Delta e = 0``), so that the explainers' ``m * (id - id_ref)`` is the embedding's
contribution. Connection Weights is not defined for products, attention or ids.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..convert.graph import Graph, Node, input_name
from ..layers import (
    Activation,
    Embedding,
    IdEqual,
    MaskedSoftmax,
    MatMul,
    Multiply,
    PaddedSoftmax,
)
from ..rules import tiny_eps
from .softmax_deeplift import softmax_deeplift

__all__ = ["NOT_WEIGHTS", "attention_weights", "bilinear_vjp", "deeplift_products", "id_inputs",
           "lrp_products", "weights_refusal"]

#: layers without Connection Weights
NOT_WEIGHTS = (Multiply, MatMul, MaskedSoftmax, Embedding, IdEqual)


def bilinear_vjp(layer: Multiply | MatMul, a: torch.Tensor, b: torch.Tensor,
                 g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(d/da <g, y(a, b)>, d/db <g, y(a, b)>)`` for ``g`` of shape ``(K, n, *out)``;
    ``a``, ``b`` have ``n`` rows or one (broadcast)."""
    k, n = g.shape[:2]

    def rows(t: torch.Tensor) -> torch.Tensor:
        t = t.broadcast_to((n, *t.shape[1:]))
        t = t.unsqueeze(0).expand(k, *t.shape).reshape(k * n, *t.shape[1:])
        return t.detach().requires_grad_(True)

    ta, tb = rows(a), rows(b)
    with torch.enable_grad():
        y = layer(ta, tb)
        ga, gb = torch.autograd.grad(y, (ta, tb), g.reshape(k * n, *g.shape[2:]))
    return ga.reshape(k, n, *a.shape[1:]), gb.reshape(k, n, *b.shape[1:])


def _softmax_lrp(x: torch.Tensor, s: torch.Tensor, r: torch.Tensor, dim: int) -> torch.Tensor:
    """AttnLRP's softmax rule; ``dim`` an axis of ``x`` (the state has the K axis first)."""
    d = dim % x.ndim + 1
    return x * (r - s * r.sum(d, keepdim=True))


def _is_softmax(node: Node, outputs: set[str] | Sequence[str]) -> bool:
    """A softmax inside the graph (not a graph output)."""
    layer = node.layer
    return isinstance(layer, MaskedSoftmax) or (
        isinstance(layer, Activation) and layer.name == "softmax" and node.name not in outputs)


def attention_weights(graph: Graph, rule: object = None) -> frozenset[str]:
    """The softmax nodes inside ``graph`` whose outputs CP-LRP treats as constants: all of
    them when ``rule`` is the ``"cp"`` rule, none otherwise."""
    if getattr(rule, "name", None) != "cp":
        return frozenset()
    outputs = set(graph.outputs)
    return frozenset(n.name for n in graph.nodes if _is_softmax(n, outputs))


def lrp_products(node: Node, r: torch.Tensor, values: dict[str, torch.Tensor],
                 outputs: set[str], constant: frozenset[str] = frozenset()
                 ) -> list[torch.Tensor] | None:
    """LRP of the layers above; None for any other layer. ``constant``: the softmax nodes
    whose outputs are constants (CP-LRP, see :func:`attention_weights`)."""
    layer = node.layer
    fixed = [p in constant for p in node.inputs]
    if isinstance(layer, (Multiply, MatMul)) and sum(fixed) == 1:  # CP-LRP: A @ v, A * v
        a, b = (values[p] for p in node.inputs)
        if isinstance(layer, Multiply):
            return [torch.zeros_like(r), r] if fixed[0] else [r, torch.zeros_like(r)]
        y = values[node.name]
        g = r / (y + tiny_eps(y.dtype) * torch.where(y >= 0, 1.0, -1.0).to(y.dtype))
        ga, gb = bilinear_vjp(layer, a, b, g)
        return [torch.zeros_like(ga), b * gb] if fixed[0] else [a * ga, torch.zeros_like(gb)]
    if isinstance(layer, Multiply):
        return [0.5 * r, 0.5 * r]
    if isinstance(layer, MatMul):
        a, b = (values[p] for p in node.inputs)
        y = values[node.name]
        eps = tiny_eps(y.dtype)
        g = r / (y + eps * torch.where(y >= 0, 1.0, -1.0).to(y.dtype))
        ga, gb = bilinear_vjp(layer, a, b, g)
        return [0.5 * a * ga, 0.5 * b * gb]
    if isinstance(layer, IdEqual):  # a padding mask: not differentiable, nothing passes
        return [torch.zeros_like(r)]
    if isinstance(layer, PaddedSoftmax):
        pad = r.new_zeros((r.shape[0], *values[node.inputs[1]].shape))
        if node.name in constant:
            return [torch.zeros_like(r), pad]
        return [_softmax_lrp(values[node.inputs[0]], values[node.name], r, -1), pad]
    if node.name in constant:  # CP-LRP: the scores get nothing
        return [torch.zeros_like(r)]
    if isinstance(layer, MaskedSoftmax):
        return [_softmax_lrp(values[node.inputs[0]], values[node.name], r, -1)]
    if _is_softmax(node, outputs):
        return [_softmax_lrp(values[node.inputs[0]], values[node.name], r,
                             int(layer.params["dim"]))]
    if isinstance(layer, Embedding):
        return [r.sum(-1)]
    return None


def deeplift_products(node: Node, m: torch.Tensor, vx: dict[str, torch.Tensor],
                      vr: dict[str, torch.Tensor], eps: float,
                      outputs: Sequence[str] = ()) -> list[torch.Tensor] | None:
    """DeepLift multipliers of the layers above; None for any other layer (``outputs``:
    the graph's output nodes, where a softmax keeps the position-wise Rescale rule)."""
    layer = node.layer
    if isinstance(layer, (Multiply, MatMul)):
        if isinstance(m, tuple):  # pragma: no cover - RevealCancel pairs stop at producers
            m = 0.5 * (m[0] + m[1])
        a_mean, b_mean = ((vx[p] + vr[p]) / 2 for p in node.inputs)
        if isinstance(layer, Multiply):
            return [m * b_mean, m * a_mean]
        ga, _ = bilinear_vjp(layer, vx[node.inputs[0]], b_mean, m)
        _, gb = bilinear_vjp(layer, a_mean, vx[node.inputs[1]], m)
        return [ga, gb]
    if isinstance(layer, MaskedSoftmax) or (isinstance(layer, Activation)
                                            and layer.name == "softmax"
                                            and node.name not in outputs):
        if isinstance(m, tuple):  # pragma: no cover - RevealCancel pairs stop at producers
            m = 0.5 * (m[0] + m[1])
        x, xr = vx[node.inputs[0]], vr[node.inputs[0]]
        if isinstance(layer, PaddedSoftmax):
            pad, pad_ref = vx[node.inputs[1]], vr[node.inputs[1]]
            if not bool((pad == pad_ref.broadcast_to(pad.shape)).all()):
                raise ValueError(
                    f"DeepLift through {node.name!r}: the key padding mask computed from the "
                    "ids (ids == pad) differs between the input and the reference; the "
                    "mask is not differentiated, so the reference must pad the same "
                    "positions (e.g. replace only the non-padding ids by a neutral id)")
            keep = layer.keep_of(x, pad)
            return [softmax_deeplift(x + layer.add, xr + layer.add, m, -1, eps, keep),
                    m.new_zeros((m.shape[0], *pad.shape))]
        if isinstance(layer, MaskedSoftmax):
            return [softmax_deeplift(x + layer.add, xr + layer.add, m, -1, eps, layer.keep)]
        return [softmax_deeplift(x, xr, m, int(layer.params["dim"]), eps)]
    if isinstance(layer, IdEqual):
        return [torch.zeros_like(m)]
    if isinstance(layer, Embedding):
        ids, ids_ref = vx[node.inputs[0]], vr[node.inputs[0]]
        contribution = (m * (vx[node.name] - vr[node.name])).sum(-1)
        d = ids - ids_ref
        same = d == 0
        return [torch.where(same, torch.zeros_like(contribution),
                            contribution / torch.where(same, torch.ones_like(d), d))]
    return None


def weights_refusal(node: Node) -> TypeError | None:
    """The error Connection Weights raises on the layers above (None for others)."""
    layer = node.layer
    if isinstance(layer, (Multiply, MatMul)):
        why = "a product of two input-dependent tensors (attention, gating) has no weights"
    elif isinstance(layer, MaskedSoftmax):
        why = "masked attention softmax"
    elif isinstance(layer, Embedding):
        why = "an embedding lookup of integer ids has no path weights"
    elif isinstance(layer, IdEqual):
        why = "a padding mask computed from ids has no path weights"
    else:
        return None
    return TypeError(
        f"Connection Weights is not defined for {type(layer).__name__} node {node.name!r}: "
        f"{why}; use LRP, DeepLift or the gradient methods"
    )


def id_inputs(graph: Graph) -> list[int]:
    """Indices of the graph inputs that hold ids (read by an Embedding node)."""
    return [i for i in range(graph.n_inputs)
            if any(isinstance(n.layer, Embedding) and input_name(i) in n.inputs
                   for n in graph.nodes)]
