"""Model conversion: torch / skorch / scikit-learn / dict models -> one layer :class:`Graph`.

:func:`convert` turns any supported model into a verified :class:`Graph` (a DAG of
:mod:`sknn_explain.layers`); the explainers call it through :func:`prepare_model`, which wraps
the graph in the :class:`GraphModel` adapter.
"""

from .adapter import GraphModel, prepare_model
from .api import convert
from .errors import ConversionError, UnsupportedLayerError, VerificationError
from .from_dict import dict_to_graph, graph_to_dict
from .graph import Graph, Node, input_name

__all__ = [
    "ConversionError",
    "Graph",
    "GraphModel",
    "Node",
    "UnsupportedLayerError",
    "VerificationError",
    "convert",
    "dict_to_graph",
    "graph_to_dict",
    "input_name",
    "prepare_model",
]
