"""The nodes a :class:`~sknn_explain.convert.Graph` is made of, and how converters name them.

A :class:`Node` applies one :class:`~sknn_explain.layers.Layer` to the values named in its
``inputs``: other nodes, or the graph inputs ``"input_0"``, ``"input_1"``, ...
(:func:`input_name`). :class:`NodeBuilder` collects nodes with unique names while a
converter walks a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..layers import Activation, Layer

__all__ = ["Node", "NodeBuilder", "input_name"]


def input_name(i: int) -> str:
    """Name of the ``i``-th graph input as used in ``Node.inputs``.

    Parameters
    ----------
    i : int
        0-based index of the graph input.

    Returns
    -------
    str
        ``"input_<i>"``.

    Examples
    --------
    >>> from sknn_explain.convert import input_name
    >>> input_name(0)
    'input_0'
    """
    return f"input_{i}"


@dataclass
class Node:
    """One layer application: ``layer(*[value of name] for name in inputs)``.

    Parameters
    ----------
    name : str
        The node's name, unique in its graph (and not an input name).
    layer : Layer
        The layer applied (a module of :mod:`sknn_explain.layers`).
    inputs : list of str
        Names of the values fed to the layer: graph inputs (``input_0``, ...) or earlier
        nodes.

    Examples
    --------
    >>> import torch
    >>> from sknn_explain.convert import Node
    >>> from sknn_explain.layers import Dense
    >>> node = Node("dense", Dense(torch.ones(2, 3)), ["input_0"])
    >>> node.name, node.inputs
    ('dense', ['input_0'])
    """

    name: str
    layer: Layer
    inputs: list[str]


class NodeBuilder:
    """Collects nodes with unique names."""

    def __init__(self, n_inputs: int) -> None:
        self.nodes: list[Node] = []
        self.used = {input_name(i) for i in range(n_inputs)}

    def unique(self, base: str) -> str:
        base = base.replace(".", "_") or "node"
        name, k = base, 1
        while name in self.used:
            k += 1
            name = f"{base}_{k}"
        self.used.add(name)
        return name

    def add(self, base: str, layer: Layer, inputs: Sequence[str]) -> str:
        name = self.unique(base)
        self.nodes.append(Node(name, layer, list(inputs)))
        return name

    def ensure_node_outputs(self, outputs: Sequence[str]) -> list[str]:
        """Graph outputs must be nodes: an output that is a graph input gets an identity."""
        result = []
        for out in outputs:
            if out.startswith("input_") and not any(n.name == out for n in self.nodes):
                out = self.add(f"{out}_out", Activation("identity"), [out])
            result.append(out)
        return result

    def merge(self, sub: Sequence[Node], outputs: Sequence[str],
              input_map: dict[str, str]) -> list[str]:
        """Copy the nodes ``sub`` of another graph in (fresh names; its inputs renamed by
        ``input_map``); return the new names of its ``outputs``."""
        rename = dict(input_map)
        for node in sub:
            name = self.unique(node.name)
            self.nodes.append(Node(name, node.layer, [rename[p] for p in node.inputs]))
            rename[node.name] = name
        return [rename[o] for o in outputs]
