"""Connection Weights (Olden et al., 2004) over a :class:`~sknn_explain.convert.Graph`.

The global importance of input ``i`` for output ``k`` is the sum over all paths from ``i``
to ``k`` of the product of the weights along the path: the transpose pass of the network
with every activation replaced by the identity and every bias dropped. Per layer: Dense /
Conv use their weights, BatchNorm / scalers their scale, average pooling its ``1/k``
weights, max pooling is treated as average pooling over its windows (no data decides the
winner), Add copies, Concat slices, Flatten / Reshape / Pad reshape or crop.
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
from ._ops import linear_op, structural_backward, walk
from .extended_layers import extended_connection_weights
from .products import weights_refusal

__all__ = ["connection_weights_backward"]


def connection_weights_backward(
    graph: Graph, values: dict[str, torch.Tensor], start: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Path-weight sums of every graph input, ``(K, n, *shape)`` (``values`` only give shapes)."""

    def backward(node: Node, m: torch.Tensor):
        layer = node.layer
        refusal = weights_refusal(node)
        if refusal is not None:
            raise refusal
        if isinstance(layer, Activation):
            return [m]
        if isinstance(layer, Add):
            return [m] * len(node.inputs)
        if isinstance(layer, (Dense, Conv, ElementwiseAffine, AvgPool, AdaptiveAvgPool, MaxPool,
                              AdaptiveMaxPool)):
            return [linear_op(layer, values[node.inputs[0]]).bwd(m)]
        if isinstance(layer, Recurrent):
            raise ValueError(
                f"Connection Weights is not defined for recurrent layers ({node.name!r}, LSTM / "
                "GRU): their gates multiply input-dependent values, so no path weight "
                "product exists; use Gradient, IntegratedGradients, DeepLift or LRP")
        out = structural_backward(node, m, values)
        if out is None:
            out = extended_connection_weights(node, m, values)
        if out is None:
            raise TypeError(
                f"Connection Weights has no rule for layer {type(layer).__name__} ({node.name})"
            )
        return out

    return walk(graph, start, backward)
