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
    Recurrent,
)
from ..rules import Epsilon, LayerRules, Simple
from ._ops import (
    input_layers,
    layer_key,
    linear_op,
    pool_indices,
    route,
    structural_backward,
    walk,
)
from .extended_layers import extended_lrp
from .products import attention_weights, lrp_products
from .recurrent import recurrent_lrp

__all__ = ["lrp_backward"]


def lrp_backward(
    graph: Graph,
    values: dict[str, torch.Tensor],
    start: dict[str, torch.Tensor],
    rules: LayerRules,
    *,
    winner_takes_all: bool = True,
    keep: tuple[str, ...] = (),
) -> dict[str, torch.Tensor]:
    """Relevance of every graph input (and of the nodes in ``keep``), ``(K, n, *shape)``,
    from output start relevances."""
    first = input_layers(graph)
    outputs = set(graph.outputs)
    constant = attention_weights(graph, rules.rules.get("Softmax"))  # CP-LRP

    def backward(node: Node, r: torch.Tensor):
        layer = node.layer
        special = lrp_products(node, r, values, outputs, constant)  # products, softmax, ...
        if special is not None:
            return special
        if isinstance(layer, Activation):
            return [r]
        if isinstance(layer, Add):
            summands = [values[p] for p in node.inputs]
            return rules.for_key("Add").split_sum(summands, values[node.name], r)
        if isinstance(layer, (MaxPool, AdaptiveMaxPool)) and winner_takes_all:
            x = values[node.inputs[0]]
            _, idx = pool_indices(layer, x)
            return [route(r, idx, x.shape[1:])]
        if isinstance(layer, (Dense, Conv, ElementwiseAffine, AvgPool, AdaptiveAvgPool,
                              MaxPool, AdaptiveMaxPool)):
            rule = rules.for_key(layer_key(layer), node.name in first)
            x = values[node.inputs[0]]
            # the stored output is the plain pre-activation, except for max pooling
            z = None if isinstance(layer, (MaxPool, AdaptiveMaxPool)) else values[node.name]
            return [rule.relevance(linear_op(layer, x), x, r, z)]
        if isinstance(layer, Recurrent):  # LRP-LSTM / LRP-GRU, see .recurrent
            x = values[node.inputs[0]]
            return [recurrent_lrp(layer, x, r, _recurrent_epsilon(rules, node, x.dtype))]
        out = structural_backward(node, r, values)
        if out is None:
            out = extended_lrp(node, r, values, rules)
        if out is None:
            raise TypeError(f"LRP has no rule for layer {type(layer).__name__} ({node.name})")
        return out

    return walk(graph, start, backward, keep)


def _recurrent_epsilon(rules: LayerRules, node: Node, dtype: torch.dtype) -> float:
    """The epsilon of the linear parts of a recurrent layer: the Dense rule's, which must be
    "epsilon" or "simple" (Arras et al.'s LRP-LSTM is defined with the epsilon rule)."""
    rule = rules.for_key("Dense")
    if not isinstance(rule, (Epsilon, Simple)):
        raise ValueError(
            f"LRP through the recurrent layer {node.name!r} (LSTM / GRU) uses the epsilon rule "
            f"on its linear parts (Arras et al., 2017), taken from the Dense rule, which is "
            f"{rule!r}; use rule_name='epsilon' or 'simple' for Dense layers")
    return rule.eps(dtype)
