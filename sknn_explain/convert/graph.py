"""The layer graph every model is converted to.

A :class:`Graph` is a DAG of :class:`Node` s in topological order. Each node applies one
:class:`~sknn_explain.layers.Layer` to the outputs of its parents (other nodes or the graph
inputs ``"input_0"``, ``"input_1"``, ...). The graph's outputs are the outputs of the nodes
named in ``outputs``. Propagation methods walk ``nodes`` in reverse, using the activations of
:meth:`Graph.forward_all`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..layers import Activation, Layer

__all__ = ["Graph", "Node", "input_name"]


def input_name(i: int) -> str:
    """Name of the ``i``-th graph input as used in ``Node.inputs``."""
    return f"input_{i}"


@dataclass
class Node:
    """One layer application: ``layer(*[value of name] for name in inputs)``."""

    name: str
    layer: Layer
    inputs: list[str]


class Graph(nn.Module):
    """A converted model.

    Parameters
    ----------
    nodes : list of Node
        In topological order; names unique and different from the input names.
    n_inputs : int
        Number of graph inputs (``input_0`` ...).
    outputs : list of str
        Node names whose values are the model outputs, in order.
    input_shapes : list of tuple, optional
        Per-sample shape of each input (channels first).
    input_names, output_names : nested lists of names, optional
        Per input per axis names; per output node names (e.g. classes).
    """

    def __init__(
        self,
        nodes: Sequence[Node],
        n_inputs: int,
        outputs: Sequence[str],
        input_shapes: Sequence[tuple[int, ...]] | None = None,
        input_names: list[list[list[str]]] | None = None,
        output_names: list[list] | None = None,
    ) -> None:
        super().__init__()
        self.nodes = list(nodes)
        self.n_inputs = int(n_inputs)
        self.outputs = list(outputs)
        self.input_shapes = None if input_shapes is None else [tuple(s) for s in input_shapes]
        self.input_names = input_names
        self.output_names_ = output_names
        known = {input_name(i) for i in range(self.n_inputs)}
        self._layers = nn.ModuleList([n.layer for n in self.nodes])
        for node in self.nodes:
            if node.name in known:
                raise ValueError(f"duplicate node name {node.name!r}")
            missing = [p for p in node.inputs if p not in known]
            if missing:
                raise ValueError(
                    f"node {node.name!r} uses {missing} before they are defined "
                    "(nodes must be in topological order)"
                )
            known.add(node.name)
        for out in self.outputs:
            if out not in known:
                raise ValueError(f"unknown output node {out!r}")

    def forward_all(self, *xs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every value of the graph: inputs (``input_i``) and every node's output."""
        if len(xs) != self.n_inputs:
            raise ValueError(f"the graph takes {self.n_inputs} input(s), got {len(xs)}")
        values = {input_name(i): x for i, x in enumerate(xs)}
        for node in self.nodes:
            values[node.name] = node.layer(*[values[p] for p in node.inputs])
        return values

    def forward(self, *xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        values = self.forward_all(*xs)
        return tuple(values[o] for o in self.outputs)

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def without_last_activation(self) -> Graph:
        """A graph whose outputs skip a final :class:`Activation` node (``ignore_last_act``).

        Shares layers with ``self``; nodes only feeding removed activations stay (harmless).
        """
        outputs = []
        for out in self.outputs:
            node = self.node(out)
            outputs.append(node.inputs[0] if isinstance(node.layer, Activation) else out)
        if outputs == self.outputs:
            return self
        return Graph(self.nodes, self.n_inputs, outputs, self.input_shapes, self.input_names,
                     self.output_names_)
