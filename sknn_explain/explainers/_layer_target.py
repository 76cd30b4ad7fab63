"""Which hidden value a layer attribution is about, and the network above it.

* :func:`resolve_layer` turns ``layer=`` (a graph node name, or a torch module path such as
  ``"features.3"``) into the node of the converted graph, with an error listing the valid
  names otherwise.
* :func:`layer_axis_names` names the units of a layer: ``<layer>[k]`` along the first axis
  (units / channels), innsight's defaults along the others.
* :class:`TailForward` is the network *above* a node: it takes the node's value (and the
  values that bypass it, e.g. a residual branch, held fixed at the explained sample) and
  returns the model outputs, so gradients with respect to the node's value are the
  partial derivatives captum's layer methods compute (the layer output replaced by a
  forward hook).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch

from ..convert.graph import Graph, release_plan, run_nodes
from ..layers.conv import Conv

__all__ = ["TailForward", "layer_axis_names", "resolve_layer"]


def _ancestors(graph: Graph, names: Sequence[str]) -> set[str]:
    parents = {n.name: n.inputs for n in graph.nodes}
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(parents.get(name, ()))
    return seen


def descendants(graph: Graph, name: str) -> set[str]:
    """Nodes that read ``name`` directly or indirectly (``name`` itself excluded)."""
    found: set[str] = set()
    for node in graph.nodes:
        if any(p == name or p in found for p in node.inputs):
            found.add(node.name)
    return found


def resolve_layer(graph: Graph, layer: object, what: str = "layer") -> str:
    """The graph node that ``layer`` names.

    Parameters
    ----------
    graph : Graph
        The explained graph (its outputs are the explained outputs).
    layer : str
        A node name (see ``explainer.graph_.summary()``) or the path of a torch module as in
        ``model.named_modules()`` (``"features.3"``; the converter names its node
        ``features_3``, or ``conv2d_3`` for the child ``"3"`` of an ``nn.Sequential``).
    what : str
        The parameter's name, for messages.

    Raises
    ------
    TypeError
        ``layer`` is not a string.
    ValueError
        No node, or several, match; or the node does not feed the explained outputs.
    """
    if not isinstance(layer, str):
        raise TypeError(f"{what} must be the name of a graph node or a module path (a str), "
                        f"got {type(layer).__name__}")
    feeding = _ancestors(graph, graph.outputs)
    names = [n.name for n in graph.nodes if n.name in feeding]
    if layer in names:
        return layer
    path = layer.replace(".", "_")
    pattern = re.compile(rf"(?:[a-z0-9]+_)?{re.escape(path)}")
    matches = [n for n in names if n == path or (path[:1].isdigit() and pattern.fullmatch(n))]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise ValueError(f"{what}={layer!r} matches several graph nodes {matches}; pass one "
                         "of these node names")
    if any(n.name == layer for n in graph.nodes):
        raise ValueError(f"{what}={layer!r} does not feed the explained outputs (e.g. the "
                         "last activation removed by ignore_last_act=True)")
    raise ValueError(f"unknown {what} {layer!r}; valid names (graph nodes, see "
                     f"explainer.graph_.summary()): {names}")


def layer_axis_names(layer: str, shape: Sequence[int]) -> list[list[str]]:
    """Names per axis of a hidden value of per-sample ``shape``: ``<layer>[k]`` for the
    units / channels, ``L1..`` / ``H1..``, ``W1..`` for the positions."""
    first = [f"{layer}[{k}]" for k in range(shape[0])] if shape else []
    rest = {1: [], 2: ["L"], 3: ["H", "W"]}.get(len(shape))
    if rest is None:
        rest = [f"D{a + 2}_" for a in range(len(shape) - 1)]
    return [first] + [[f"{p}{i + 1}" for i in range(s)] for p, s in zip(rest, shape[1:])]


class TailForward:
    """The outputs of ``graph`` as a function of the value of node ``target``.

    Call it with ``[h, *context]``: ``h`` the value of ``target``, ``context`` the values
    named in :attr:`context` (values read above ``target`` that do not depend on it, and
    outputs that do not depend on it), all with the same rows. Only the nodes that depend
    on ``target`` are evaluated.
    """

    def __init__(self, graph: Graph, target: str) -> None:
        self.graph = graph
        self.target = target
        below = descendants(graph, target)
        self.nodes = [n for n in graph.nodes if n.name in below]
        needed = [p for n in self.nodes for p in n.inputs if p not in below and p != target]
        needed += [o for o in graph.outputs if o not in below and o != target]
        self.context: list[str] = list(dict.fromkeys(needed))
        #: whether a convolution runs above the target; read by
        #: :func:`~sknn_explain._batching.gradient_strategy`, which then backpropagates per
        #: output and, for images, in channels-last memory format (graph layers never
        #: ``view`` an activation)
        self.convolutional = any(isinstance(n.layer, Conv) for n in self.nodes)
        self.converted = self.convolutional
        #: per node, the values released once it has run (as :meth:`Graph.forward`)
        self._release = release_plan(self.nodes, graph.outputs)

    def context_values(self, values: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """The context from a full forward pass (``graph.forward_all``)."""
        return [values[c] for c in self.context]

    def __call__(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        values = dict(zip(self.context, xs[1:]))
        values[self.target] = xs[0]
        run_nodes(self.nodes, self._release, values)
        return [values[o] for o in self.graph.outputs]

