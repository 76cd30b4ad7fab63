"""Backward passes over the layer graph: LRP relevances, DeepLift multipliers, Connection Weights.

Each pass walks :class:`~sknn_explain.convert.Graph` nodes in reverse with one rule per layer
class and carries an output axis, so all selected output nodes are explained in one pass.
Inside a pass states are ``(K, n, *shape)``; the explainers return ``(n, *shape, K)``.
"""

from ._ops import input_layers, predictions, start_states, walk
from .canonize import merge_batchnorm
from .deeplift import deeplift_backward
from .lrp import lrp_backward
from .products import id_inputs
from .weights import connection_weights_backward

__all__ = [
    "connection_weights_backward",
    "deeplift_backward",
    "id_inputs",
    "input_layers",
    "lrp_backward",
    "merge_batchnorm",
    "predictions",
    "start_states",
    "walk",
]
