"""Neuron attribution: explain one or several hidden units with respect to the input.

:func:`neuron_graph` cuts a model's converted graph at a hidden node and returns a
:class:`~sknn_explain.Graph` whose outputs are that node's units, flattened. Any input-level
explainer fitted on it attributes the selected units (``output_idx``) to the input features:
``Gradient`` gives captum's ``NeuronGradient``, ``IntegratedGradients`` its
``NeuronIntegratedGradients`` (``method="riemann_right"``), ``DeepLift`` its
``NeuronDeepLift``, and LRP, SmoothGrad, Guided Backprop, perturbation methods ... work the
same way, all selected units in one pass.
"""

from __future__ import annotations

import numpy as np
import torch

from ..convert.dispatch import convert
from ..convert.graph import Graph
from ..convert.nodes import Node
from ..layers.reshape import Flatten
from ._layer_target import _ancestors, resolve_layer

__all__ = ["neuron_graph", "neuron_index"]


def _unit_names(layer: str, shape: tuple[int, ...]) -> list[str]:
    if len(shape) <= 1:
        return [f"{layer}[{k}]" for k in range(int(np.prod(shape, dtype=int)))]
    return [f"{layer}[{','.join(map(str, idx))}]" for idx in np.ndindex(*shape)]


def neuron_graph(
    model: object,
    layer: str,
    *,
    input_shape: object = None,
    X_ref: object = None,
    dtype: str = "float",
    device: str = "cpu",
) -> Graph:
    """The network from the input to a hidden layer, whose outputs are the layer's units.

    Fit any input-level explainer on the returned graph and select units with
    ``output_idx`` to attribute hidden units to the input (neuron attribution):
    ``Gradient`` is captum's ``NeuronGradient``, ``IntegratedGradients`` its
    ``NeuronIntegratedGradients`` (``method="riemann_right"``), ``DeepLift`` its
    ``NeuronDeepLift``; every other explainer works unchanged. The model is converted to a
    private copy and never modified.

    Parameters
    ----------
    model : nn.Module, skorch net, MLPClassifier / MLPRegressor, Pipeline, dict or Graph
        The model, as for :func:`sknn_explain.convert`.
    layer : str
        The hidden layer: a node of the converted graph (see ``convert(model).summary()``)
        or a torch module path as in ``model.named_modules()`` (``"features.3"``).
    input_shape : int, tuple or list of tuples, optional
        Per-sample input shape(s), channels first, when the converter cannot infer it.
    X_ref : array-like, optional
        Example data (fixes the input shape; used to verify the conversion).
    dtype : {"float", "double"}, default="float"
        Precision of the graph.
    device : {"cpu", "cuda", "auto"}, default="cpu"
        Device of the graph.

    Returns
    -------
    Graph
        Its one output is the layer's value flattened per sample (C order), so unit
        ``(c, h, w)`` of a ``(C, H, W)`` layer is output node ``c * H * W + h * W + w``
        (:func:`neuron_index` computes it); output names are ``<layer>[k]`` or
        ``<layer>[c,h,w]``. The output is never an activation node, so
        ``ignore_last_act`` does not strip a ReLU layer's activation.

    Raises
    ------
    TypeError
        ``layer`` is not a string.
    ValueError
        ``layer`` names no node of the graph (the message lists the valid names).

    Examples
    --------
    >>> import torch
    >>> from sknn_explain import Gradient, neuron_graph
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> hidden = neuron_graph(net, "1")
    >>> res = Gradient().fit(hidden).explain(torch.randn(5, 4), output_idx=[0, 7])
    >>> res.values.shape
    (5, 4, 2)
    """
    graph = convert(model, input_shape=input_shape, X_ref=X_ref, dtype=dtype, device=device)
    target = resolve_layer(graph, layer)
    keep = _ancestors(graph, [target])
    nodes = [n for n in graph.nodes if n.name in keep]
    with torch.no_grad():
        shape = tuple(graph.node_shapes()[target])
    out = f"{target}_units"
    while out in keep:
        out += "_"
    nodes.append(Node(out, Flatten(), [target]))
    return Graph(nodes, graph.n_inputs, [out], graph.input_shapes, graph.input_names,
                 [_unit_names(target, shape)])


def neuron_index(layer_shape: tuple[int, ...], unit: tuple[int, ...] | int) -> int:
    """The output node of :func:`neuron_graph` for the unit ``unit`` of a layer.

    Parameters
    ----------
    layer_shape : tuple of int
        Per-sample shape of the layer's value, e.g. ``(C, H, W)``.
    unit : int or tuple of int
        The unit's index in that shape (captum's ``neuron_selector``).

    Returns
    -------
    int
        The flat (C order) index, to pass as ``output_idx``.

    Raises
    ------
    ValueError
        ``unit`` has the wrong length or lies outside ``layer_shape``.

    Examples
    --------
    >>> neuron_index((4, 3, 3), (2, 1, 0))
    21
    """
    unit = (unit,) if isinstance(unit, (int, np.integer)) else tuple(unit)
    shape = tuple(int(s) for s in layer_shape)
    if len(unit) != len(shape) or any(not 0 <= u < s for u, s in zip(unit, shape)):
        raise ValueError(f"unit {unit} is not an index into a layer of shape {shape}")
    return int(np.ravel_multi_index(unit, shape))
