"""Canonization of a layer graph: BatchNorm merged into the Dense / Conv layer that feeds it.

zennit's ``SequentialMergeBatchNorm`` pairs modules by their order in the model, which misses
(or mis-pairs) a BatchNorm whose module is not defined right after its linear layer. Here the
pairs come from the graph's data flow: a BatchNorm node merges into its input node when that
node is a Dense / Conv layer whose output nothing else reads. The merged layer computes the
same values (``W' = W * scale``, ``b' = b * scale + shift`` per output channel) and takes the
BatchNorm node's name, so the rest of the graph is unchanged.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import torch

from ..convert.graph import Graph, Node
from ..layers import BatchNorm, Conv, Dense, Layer

__all__ = ["merge_batchnorm"]


def _merged(layer: Dense | Conv, bn: BatchNorm) -> Layer:
    scale, shift = bn.scale, bn.shift
    view = (-1,) + (1,) * (layer.weight.ndim - 1)
    weight = layer.weight * scale.reshape(view)
    bias = shift if layer.bias is None else layer.bias * scale + shift
    if isinstance(layer, Dense):
        return Dense(weight, bias)
    return Conv(weight, bias, layer.stride, layer.padding, layer.dilation, layer.groups)


def merge_batchnorm(graph: Graph, shapes: Mapping[str, tuple[int, ...]]) -> Graph:
    """A graph with every mergeable BatchNorm folded into its Dense / Conv producer.

    Parameters
    ----------
    graph : Graph
        Left unchanged (layers are not shared where they were merged).
    shapes : mapping
        Per-sample shape of each value (``{name: value.shape[1:]}`` from a forward pass);
        a Dense output merges only when it is a plain feature vector, where the BatchNorm's
        channel axis is the Dense layer's output axis.

    Returns
    -------
    Graph
        ``graph`` itself when nothing merges.
    """
    readers = Counter(p for node in graph.nodes for p in node.inputs)
    readers.update(graph.outputs)
    producers = {node.name: node for node in graph.nodes}
    merged: dict[str, Node] = {}  # BatchNorm name -> merged node
    absorbed: set[str] = set()  # producers folded away
    for node in graph.nodes:
        if not isinstance(node.layer, BatchNorm):
            continue
        source = producers.get(node.inputs[0])
        if source is None or readers[source.name] != 1:
            continue
        layer = source.layer
        if isinstance(layer, Dense) and len(shapes[source.name]) != 1:
            continue
        if not isinstance(layer, (Dense, Conv)):
            continue
        merged[node.name] = Node(node.name, _merged(layer, node.layer), list(source.inputs))
        absorbed.add(source.name)
    if not merged:
        return graph
    nodes = [merged.get(n.name, n) for n in graph.nodes if n.name not in absorbed]
    with torch.no_grad():
        return Graph(nodes, graph.n_inputs, graph.outputs, graph.input_shapes,
                     graph.input_names, graph.output_names)
