"""innsight-style model dicts as a conversion source (see :mod:`.serialize` for the format).

A model dict *is* its layer graph: :func:`dict_to_graph` reads it, :class:`DictSource` hands
the graph to :func:`~sknn_explain.convert.convert` (there is no separate original model to
verify against), and :func:`graph_to_dict` writes a graph back.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..layers import Activation
from .graph import Graph
from .serialize import build_graph, graph_to_dict
from .source import Source, private_inputs

__all__ = ["DictSource", "dict_to_graph", "graph_to_dict"]


def dict_to_graph(model: dict, dtype: torch.dtype = torch.float32,
                  device: torch.device | str = "cpu") -> Graph:
    """Build a :class:`Graph` from innsight's "model as list" dict (the format: :mod:`.serialize`).

    Parameters
    ----------
    model : dict
        innsight's model list: ``input_dim``, ``input_nodes``, ``output_nodes`` and
        ``layers`` (one dict per layer: ``type``, weights, ``input_layers``,
        ``output_layers``, ...).
    dtype : torch.dtype, default=torch.float32
        The dtype of the layers' parameters.
    device : torch.device or str, default="cpu"
        Where the parameters live.

    Returns
    -------
    Graph
        The graph; layer activations become their own ``Activation`` nodes.

    Examples
    --------
    >>> import numpy as np
    >>> model = {
    ...     "input_dim": 3, "input_nodes": [1], "output_nodes": [2],
    ...     "layers": [
    ...         {"type": "Dense", "weight": np.ones((4, 3)), "bias": np.zeros(4),
    ...          "activation_name": "relu", "input_layers": 0, "output_layers": 2},
    ...         {"type": "Dense", "weight": np.ones((2, 4)), "bias": np.zeros(2),
    ...          "activation_name": "softmax", "input_layers": 1, "output_layers": -1},
    ...     ],
    ... }
    >>> graph = dict_to_graph(model)
    >>> [type(n.layer).__name__ for n in graph.nodes]
    ['Dense', 'Activation', 'Dense', 'Activation']
    """
    return build_graph(model, dtype, torch.device(device), graph_cls=Graph)


class DictSource(Source):
    """A model dict: the graph is the model (no separate reference to verify against)."""

    def __init__(self, model: dict, dtype: torch.dtype, device: torch.device) -> None:
        super().__init__(dtype, device)
        self.graph = dict_to_graph(model, dtype, device)
        self.description = "model dict"
        self.n_inputs = self.graph.n_inputs
        self.input_shapes = self.graph.input_shapes
        self.input_names = self.graph.input_names
        self.output_names = self.graph.output_names
        first = self.graph.outputs[0]
        self.ends_with_activation = isinstance(self.graph.node(first).layer, Activation)

    def build(self, xs: Sequence[torch.Tensor]) -> Graph:
        return self.graph

    def check_inputs(self, xs: Sequence[torch.Tensor]) -> None:
        with torch.no_grad():
            self.graph(*private_inputs(xs))
