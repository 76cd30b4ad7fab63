"""Canonization of a layer graph: BatchNorm merged into the Dense / Conv layer that feeds it.

* :func:`merge_batchnorm` returns the merged graph (``LRP(canonize=True)``).
* :class:`BatchNormFolding` keeps a merged copy of a graph up to date for the plain forward
  passes of :class:`~sknn_explain.convert.GraphModel` (gradient family, perturbation
  methods): one convolution instead of a convolution, a multiplication and an addition.

zennit's ``SequentialMergeBatchNorm`` pairs modules by their order in the model, which misses
(or mis-pairs) a BatchNorm whose module is not defined right after its linear layer. Here the
pairs come from the graph's data flow: a BatchNorm node merges into its input node when that
node is a Dense / Conv layer whose output nothing else reads. The merged layer computes the
same values (``W' = W * scale``, ``b' = b * scale + shift`` per output channel) and takes the
BatchNorm node's name, so the rest of the graph is unchanged.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import torch

from ..layers import BatchNorm, Conv, Dense, Layer
from .graph import Graph, Node

__all__ = ["BatchNormFolding", "merge_batchnorm"]


def _merged(layer: Dense | Conv, bn: BatchNorm) -> Layer:
    scale, shift = bn.scale, bn.shift
    view = (-1,) + (1,) * (layer.weight.ndim - 1)
    weight = layer.weight * scale.reshape(view)
    bias = shift if layer.bias is None else layer.bias * scale + shift
    if isinstance(layer, Dense):
        return Dense(weight, bias)
    return Conv(weight, bias, layer.stride, layer.padding, layer.dilation, layer.groups)


def merge_batchnorm(graph: Graph, shapes: Mapping[str, tuple[int, ...]],
                    keep: Sequence[str] = ()) -> Graph:
    """A graph with every mergeable BatchNorm folded into its Dense / Conv producer.

    Parameters
    ----------
    graph : Graph
        Left unchanged (layers are not shared where they were merged).
    shapes : mapping
        Per-sample shape of each value (``{name: value.shape[1:]}`` from a forward pass);
        a Dense output merges only when it is a plain feature vector, where the BatchNorm's
        channel axis is the Dense layer's output axis.
    keep : sequence of str
        Values that must stay in the merged graph: a producer named here is not merged
        away (its BatchNorm stays a layer of its own).

    Returns
    -------
    Graph
        ``graph`` itself when nothing merges.
    """
    merged: dict[str, Node] = {}  # BatchNorm name -> merged node
    absorbed: set[str] = set()  # producers folded away
    for source, node in _mergeable_pairs(graph, keep):
        layer = source.layer
        if isinstance(layer, Dense) and len(shapes[source.name]) != 1:
            continue
        merged[node.name] = Node(node.name, _merged(layer, node.layer), list(source.inputs))
        absorbed.add(source.name)
    if not merged:
        return graph
    nodes = [merged.get(n.name, n) for n in graph.nodes if n.name not in absorbed]
    with torch.no_grad():
        return Graph(nodes, graph.n_inputs, graph.outputs, graph.input_shapes,
                     graph.input_names, graph.output_names)


def _mergeable_pairs(graph: Graph, keep: Sequence[str] = ()) -> list[tuple[Node, Node]]:
    """``(producer, batchnorm)`` node pairs that :func:`merge_batchnorm` may merge (before
    the shape check of a Dense producer)."""
    readers = Counter(p for node in graph.nodes for p in node.inputs)
    readers.update(graph.outputs)
    producers = {node.name: node for node in graph.nodes}
    pairs = []
    for node in graph.nodes:
        source = producers.get(node.inputs[0]) if isinstance(node.layer, BatchNorm) else None
        if (source is not None and readers[source.name] == 1 and source.name not in keep
                and isinstance(source.layer, (Dense, Conv))):
            pairs.append((source, node))
    return pairs


class BatchNormFolding:
    """A graph with its BatchNorm layers merged into their producers, kept up to date.

    ``folding(xs)`` returns :func:`merge_batchnorm` of ``graph`` (the shapes from one row
    of ``xs``), or ``graph`` itself when no BatchNorm can merge. The merged copy is rebuilt
    when a tensor it was built from changed: the merged layers' weights are computed from
    the producer's weight / bias and the BatchNorm's scale / shift, so an in-place edit of
    any of them (tracked by the tensors' version counters), a move to another device or
    dtype (their storage) invalidates it. The other layers are shared with ``graph``.

    The merged graph computes the same function to rounding (``W * s`` instead of ``W``
    then ``* s``: ~1e-7 relative in float32, ~1e-16 in float64). Only plain forward passes
    use it; the propagation methods and the layer methods run ``graph`` itself, whose
    nodes they address by name.

    Parameters
    ----------
    graph : Graph
        The graph to fold (not modified).
    keep : sequence of str
        Values the merged graph must still compute (see :func:`merge_batchnorm`).

    Examples
    --------
    >>> import torch
    >>> from sknn_explain.convert import Graph, Node
    >>> from sknn_explain.convert.canonize import BatchNormFolding
    >>> from sknn_explain.layers import BatchNorm, Dense
    >>> graph = Graph([Node("dense", Dense(torch.ones(2, 3), torch.zeros(2)), ["input_0"]),
    ...                Node("bn", BatchNorm(torch.tensor([2.0, 3.0]), torch.ones(2)),
    ...                     ["dense"])], n_inputs=1, outputs=["bn"])
    >>> folding = BatchNormFolding(graph)
    >>> x = torch.ones(1, 3)
    >>> merged = folding([x])
    >>> len(merged.nodes), merged(x)[0].tolist()
    (1, [[7.0, 10.0]])
    """

    def __init__(self, graph: Graph, keep: Sequence[str] = ()) -> None:
        self.graph = graph
        self.keep = tuple(keep)
        self._pairs = _mergeable_pairs(graph, self.keep)
        self._built: tuple[tuple, Graph] | None = None

    def _key(self) -> tuple:
        """What the merged layers were computed from: every tensor of every merged pair's
        layers, read afresh (``.to()`` and ``register_buffer`` replace tensor objects), by
        identity, storage, in-place version and dtype."""
        return tuple((id(node.layer), id(t), t.data_ptr(), t._version, t.dtype)
                     for pair in self._pairs for node in pair
                     for t in (*node.layer.parameters(), *node.layer.buffers()))

    def __call__(self, xs: Sequence[torch.Tensor]) -> Graph:
        """The merged graph for inputs like ``xs`` (one row of them runs once per build)."""
        if not self._pairs:
            return self.graph
        key = self._key()
        built = self._built  # one read: another thread may replace it, never half-way
        if built is None or built[0] != key:
            with torch.no_grad():
                values = self.graph.forward_all(*[x[:1].detach() for x in xs])
            merged = merge_batchnorm(self.graph,
                                     {k: tuple(v.shape[1:]) for k, v in values.items()},
                                     self.keep)
            built = (key, merged)
            self._built = built
        return built[1]
