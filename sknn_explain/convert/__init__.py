"""Model conversion: torch / skorch / scikit-learn / dict models -> one layer :class:`Graph`.

:func:`convert` turns any supported model into a verified :class:`Graph` (a DAG of
:mod:`sknn_explain.layers`); the explainers call it through :func:`prepare_model`, which wraps
the graph in the :class:`GraphModel` adapter.

The package, top to bottom: :mod:`.adapters` (``prepare_model``, ``GraphModel``) ->
:mod:`.dispatch` (``convert``, ``make_source``: one converter per model type) -> the
converters :mod:`.from_sklearn`, :mod:`.from_skorch`, :mod:`.torch` (``torch.fx``),
:mod:`.from_dict` -> :mod:`.source` (the ``Source`` interface, build and verification) ->
:mod:`.graph` (``Graph``) -> :mod:`.serialize` (innsight's dict form) -> :mod:`.nodes`;
:mod:`.errors` at the bottom.
"""

from .adapters import GraphModel, prepare_model
from .dispatch import convert
from .errors import (
    BatchStatisticsError,
    ConversionError,
    ExampleInputsError,
    UnsupportedLayerError,
    VerificationError,
)
from .from_dict import dict_to_graph, graph_to_dict
from .graph import Graph, Node, input_name

__all__ = [
    "BatchStatisticsError",
    "ConversionError",
    "ExampleInputsError",
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
