"""``convert()``: any supported model -> a verified :class:`Graph`.

:func:`make_source` is the one place that picks the converter for a model type (a Graph,
skorch net, scikit-learn MLP or Pipeline, model dict or torch module); :func:`convert` adds
the input shapes, names and verification.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from .._data import coerce_inputs, default_axis_names, resolve_device, resolve_dtype
from .._naming import normalize_names, normalize_output_names
from .._skorch import is_skorch_net
from ..layers import Activation
from .from_dict import DictSource
from .from_sklearn import MLPSource, PipelineSource, is_sklearn_mlp, is_sklearn_pipeline
from .from_skorch import SkorchSource
from .graph import Graph
from .source import Source, finish, private_inputs
from .torch import TorchSource

__all__ = ["GraphSource", "convert", "make_source", "normalize_input_shapes"]


class GraphSource(Source):
    """An existing :class:`Graph` (copied and cast)."""

    def __init__(self, graph: Graph, dtype: torch.dtype, device: torch.device) -> None:
        super().__init__(dtype, device)
        self.graph = copy.deepcopy(graph).to(dtype=dtype, device=device)
        self.description = "Graph"
        self.n_inputs = graph.n_inputs
        self.input_shapes = graph.input_shapes
        self.input_names = graph.input_names
        self.output_names = graph.output_names
        last = [graph.node(o) for o in graph.outputs if o in {n.name for n in graph.nodes}]
        self.ends_with_activation = bool(last) and isinstance(last[0].layer, Activation)

    def build(self, xs: Sequence[torch.Tensor]) -> Graph:
        return self.graph

    def check_inputs(self, xs: Sequence[torch.Tensor]) -> None:
        with torch.no_grad():
            self.graph(*private_inputs(xs))


def make_source(model: object, dtype: torch.dtype, device: torch.device) -> Source:
    """The :class:`~.source.Source` for any supported model type.

    Raises
    ------
    TypeError
        For unsupported model types.
    ValueError
        For unfitted models; :class:`ConversionError` for unsupported layers.
    """
    if isinstance(model, Graph):
        return GraphSource(model, dtype, device)
    if is_skorch_net(model):
        return SkorchSource(model, dtype, device)
    if is_sklearn_mlp(model):
        return MLPSource(model, dtype, device)
    if is_sklearn_pipeline(model):
        return PipelineSource(model, dtype, device)
    if isinstance(model, dict):
        return DictSource(model, dtype, device)
    if isinstance(model, nn.Module):
        return TorchSource(model, dtype, device)
    raise TypeError(
        f"cannot explain a {type(model).__name__}: expected a torch nn.Module, a fitted skorch "
        "NeuralNet, a fitted scikit-learn MLPClassifier / MLPRegressor or Pipeline ending in one, "
        "an innsight-style model dict or a Graph"
    )


def normalize_input_shapes(input_shape: object, n_inputs: int | None = None
                           ) -> list[tuple[int, ...]]:
    """``5``, ``(3, 8, 8)`` or ``[(4,), (3, 8, 8)]`` -> list of per-input shape tuples."""
    def is_int(v: object) -> bool:
        return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))

    if is_int(input_shape):
        shapes = [(int(input_shape),)]
    elif isinstance(input_shape, Sequence) and input_shape and all(is_int(v) for v in input_shape):
        shapes = [tuple(int(v) for v in input_shape)]
    elif isinstance(input_shape, Sequence) and input_shape and all(
        isinstance(s, Sequence) and s and all(is_int(v) for v in s) for s in input_shape
    ):
        shapes = [tuple(int(v) for v in s) for s in input_shape]
    else:
        raise ValueError(
            f"input_shape must be a per-sample shape like (3, 32, 32) (channels first) or a "
            f"list of shapes for several inputs, got {input_shape!r}"
        )
    if any(d < 1 for s in shapes for d in s):
        raise ValueError(f"input_shape must contain positive sizes, got {input_shape!r}")
    if n_inputs is not None and len(shapes) != n_inputs:
        raise ValueError(f"the model has {n_inputs} input(s), but input_shape gives "
                         f"{len(shapes)}")
    return shapes


def convert(
    model: object,
    input_shape: object = None,
    input_names: object = None,
    output_names: object = None,
    dtype: str = "float",
    *,
    X_ref: object = None,
    device: str = "cpu",
    check: bool = True,
) -> Graph:
    """Convert a model to a verified layer :class:`Graph`.

    Parameters
    ----------
    model : nn.Module, skorch net, MLPClassifier / MLPRegressor, Pipeline, dict or Graph
        torch modules of any architecture are traced with ``torch.fx``; skorch nets contribute
        their ``module_`` and prediction nonlinearity; sklearn MLPs and Pipelines of scalers
        are rebuilt exactly; a dict is innsight's "model as list" form. The model is never
        modified.
    input_shape : int, tuple or list of tuples, optional
        Per-sample input shape(s), channels first. Inferred from ``X_ref``, from the model
        (sklearn, dict, an input feeding an ``nn.Linear``) when not given.
    input_names : list, optional
        Names per input axis (innsight form); default: from the model (``feature_names_in_``)
        or from ``X_ref`` DataFrame columns.
    output_names : list, optional
        Names of the output nodes (a list per output layer for several outputs); default:
        ``classes_`` for classifiers.
    dtype : {"float", "double"}
        Precision of the graph's weights.
    X_ref : array-like, DataFrame, Tensor or list of those, optional
        Example data: fixes the input shape and is used (up to 8 rows) in the check.
    device : {"cpu", "cuda", "auto"}
    check : bool
        Verify that the graph reproduces the model (tolerance 1e-5 for float, 1e-10 for
        double, relative to ``max(1, max |output|)``) on random inputs and ``X_ref``.

    Returns
    -------
    Graph

    Raises
    ------
    ConversionError
        Unsupported layer (naming it and its position), failed verification.
    TypeError, ValueError
        Unsupported model type, unfitted model, bad shapes or names.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3), nn.Softmax(dim=1))
    >>> graph = convert(net)
    >>> [type(n.layer).__name__ for n in graph.nodes]
    ['Dense', 'Activation', 'Dense', 'Activation']
    >>> graph.input_shapes
    [(4,)]
    """
    dt, dev = resolve_dtype(dtype), resolve_device(device)
    source = make_source(model, dt, dev)
    ref = None
    if X_ref is not None:
        ref = coerce_inputs(X_ref, n_inputs=source.n_inputs, name="X_ref")
        known = source.input_names
        for i, given in enumerate(ref.names):
            if given is not None and known is not None and known[i] is not None and (
                    given != known[i]):
                raise ValueError(
                    f"X_ref has feature names {given[0][:5]}..., but the {source.description} "
                    f"has {known[i][0][:5]}...; use the same columns in the same order"
                )
    if input_shape is not None:
        shapes = normalize_input_shapes(input_shape, source.n_inputs)
        if ref is not None and [tuple(s) for s in ref.shapes] != shapes:
            raise ValueError(f"X_ref has per-sample shape(s) {ref.shapes}, but input_shape is "
                             f"{shapes}")
    elif ref is not None:
        shapes = [tuple(s) for s in ref.shapes]
    elif source.input_shapes is not None:
        shapes = list(source.input_shapes)
    else:
        raise ValueError(
            f"cannot infer the input shape of the {source.description}; pass "
            "input_shape=(C, H, W) (channels first; a list of shapes for several inputs) or "
            "X_ref"
        )
    # an input read by nn.Linear implies its last axis only: (tokens, features) fits (features,)
    if source.input_shapes is not None and any(
            len(s) < len(e) or tuple(s[len(s) - len(e):]) != tuple(e)
            for s, e in zip(shapes, source.input_shapes)):
        raise ValueError(f"the {source.description} expects input shape(s) "
                         f"{source.input_shapes}, got {shapes}")
    data = None if ref is None else ref.to_tensors(dt, dev)
    graph = finish(source, shapes, data, check=check)
    if ref is not None and any(n is not None for n in ref.names) and input_names is None:
        graph.input_names = [n if n is not None else default_axis_names(s)
                             for n, s in zip(ref.names, ref.shapes)]
    if input_names is not None:
        graph.input_names = normalize_names(input_names, shapes, "input_names")
    if output_names is not None:
        graph.output_names = normalize_output_names(output_names, len(graph.outputs))
    return graph

