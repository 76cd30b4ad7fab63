"""What LIME and Kernel SHAP share: the model adapter, reference data, interpretable
features, checks of native inputs and the warning before long runs."""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from ..._batching import forward_batch_size
from ..._data import InputBatch
from ..._segmentation import build_feature_map
from ..._validation import POSITIVE_INT, RANDOM_STATE, SequenceOf, StrOptions
from ...convert.adapters import _fallback_model
from ...convert.graph import Graph
from .._predict_fn import (
    RESPONSE_METHODS,
    FunctionModel,
    NativeInputs,
    RawColumns,
    SklearnModel,
    as_predict_model,
    is_torch_like,
    native_dtypes,
    needs_raw_columns,
    user_float_dtype,
)
from ..base import Explainer

__all__ = ["AGNOSTIC_DOC", "ATTRIBUTES_DOC", "CPU_MAX_ROWS", "LONG_RUN_ROWS", "AgnosticExplainer",
           "warn_if_long"]

#: default rows per model call on CPU (bigger chunks fall out of cache and run slower)
CPU_MAX_ROWS = 4096
#: float32 holds every integer up to 2^24 exactly: more distinct raw values (codes) than
#: that need dtype="double"
_FLOAT32_EXACT_CODES = 2**24


#: model rows above which a call without ``verbose`` warns with its cost (about 25 s for a
#: 100-tree random forest on 2 cores; a small MLP takes a second)
LONG_RUN_ROWS = 5_000_000


def warn_if_long(rows: int, desc: str, breakdown: str, verbose: bool) -> None:
    """Make a long model-agnostic run visible before it starts.

    With ``verbose=True`` the progress bar shows it; otherwise calls that will evaluate the
    model on more than :data:`LONG_RUN_ROWS` rows warn with the estimate and what to change.
    """
    if verbose or rows <= LONG_RUN_ROWS:
        return
    warnings.warn(
        f"{desc} will evaluate the model on about {rows:,} rows ({breakdown}); with a slow "
        "model this takes minutes. Explain fewer rows, lower limit_ref / n_samples, or pass "
        "verbose=True for a progress bar.",
        UserWarning,
        stacklevel=4,
    )



# ---------------------------------------------------------------------------- explainers
AGNOSTIC_DOC = """
    segment_size : int or tuple of int, optional
        Grid cell size per spatial axis for signal / image inputs (default: at most 8
        cells per axis); each cell, across all channels, is one feature. Tabular columns
        are always single features.
    segments : array-like of int, or list of those (one per input, None for the grid)
        Custom interpretable features: integer labels of the per-sample input shape (in
        the user's layout) or of its spatial shape; equal labels form one feature. Also
        groups tabular columns (e.g. one-hot blocks).
    random_state : int, RandomState, Generator or None
        Seed of all random draws; an int gives identical attributions on every call.
    response_method : {"auto", "predict_proba", "decision_function", "predict"}
        For scikit-learn estimators: ``"auto"`` explains ``predict_proba`` of classifiers
        (``decision_function`` if they have none) and ``predict`` of other estimators.
        Inputs of rank > 1 are flattened (in the user's layout) for the estimator.
    ignore_last_act : bool, default=False
        Torch modules / skorch nets only: explain the output before the last activation.
        The default explains the model's actual output (probabilities for classifiers).
    channels_first : bool, default=True
        Image / signal layout of the data: ``(n, C, ...)`` (True) or ``(n, ..., C)``.
    dtype : {"float", "double"}, default="double"
        Precision of the perturbed inputs and of a torch model's private copy. The
        regression is always solved in float64. A torch module / skorch net fitted with
        bool or integer ``X_ref`` gets its inputs in that dtype (only values of ``X`` and
        ``X_ref`` are combined, so they stay exact) and keeps its own precision.
    device : {"cpu", "cuda", "cuda:<index>", "auto"} or torch.device, default="cpu"
        Where perturbed inputs are built and torch models run.
    batch_size : int, optional
        Model rows per call (perturbations x background rows); None picks one from the
        input width (on CPU about 2^18 input values and at most 4096 rows per call: larger
        chunks fall out of cache and run slower).
    verbose : bool, default=False
        Show a progress bar over model calls.
"""


#: the fitted attributes both estimators document
ATTRIBUTES_DOC = """feature_map_ : FeatureMap
        Global feature (segment) index of every input element.
    n_segments_ : int
        Number of features ``M``.
    raw_columns_ : RawColumns or None
        Code books of the raw DataFrame columns (mixed-type ``X_ref``), else None."""


class AgnosticExplainer(Explainer):
    """Shared fitting: prediction adapter, reference data, interpretable features."""

    _requires_reference = True
    _parameter_constraints = {
        **Explainer._parameter_constraints,
        "segment_size": [None, *POSITIVE_INT, SequenceOf(POSITIVE_INT[0])],
        "segments": "no_validation",  # checked against the input shapes at fit
        "random_state": RANDOM_STATE,
        "response_method": [StrOptions(set(RESPONSE_METHODS))],
    }

    def _prepare_model(self, model, dtype, device):
        if is_torch_like(model):
            # torch modules, skorch nets, Graphs, innsight dicts: the project's standard
            # adapter (converted layer graph, or the plain private copy when conversion fails)
            if self.response_method != "auto":
                raise ValueError(
                    "response_method applies to scikit-learn estimators; for torch modules "
                    "and skorch nets use ignore_last_act to choose between scores and "
                    "probabilities"
                )
            dtypes = getattr(self, "_fit_dtypes", None)
            if dtypes and any(d is not None for d in dtypes) and not isinstance(
                model, (dict, Graph)
            ):
                # bool / integer X_ref: run the module itself on its own dtypes (a layer
                # graph computes in floats; these methods only need outputs), in its own
                # float precision (such models often cast inside, e.g. ``x.float()``)
                module = getattr(model, "module_", model)
                floats = [p.dtype for p in module.parameters() if p.is_floating_point()]
                own = floats[0] if floats else dtype
                inner = _fallback_model(model, self.ignore_last_act, own, device, None)
                return NativeInputs(inner, dtypes)
            if not self.ignore_last_act and not isinstance(model, (dict, Graph)):
                # only forward passes are needed: the private eval copy of the module (no
                # tracing / conversion, which cost more than a small Kernel SHAP run); the
                # layer graph is kept for ignore_last_act=True, where it finds the activation
                return _fallback_model(model, False, dtype, device, False)
            return super()._prepare_model(model, dtype, device)
        adapter = as_predict_model(
            model, response_method=self.response_method, ignore_last_act=self.ignore_last_act,
            channels_first=self.channels_first, dtype=dtype, device=device,
        )
        if isinstance(adapter, SklearnModel):
            adapter.input_dtype = getattr(self, "_fit_float_dtype", None)
        codec = getattr(self, "_fit_codec", None)
        if codec is not None:
            if not isinstance(adapter, (SklearnModel, FunctionModel)):  # pragma: no cover
                raise TypeError("raw DataFrame columns need a scikit-learn estimator or function")
            adapter.codec = codec
        return adapter

    def fit(self, model: object, X_ref: object = None) -> AgnosticExplainer:
        """Prepare the explainer for ``model`` with reference data ``X_ref``.

        Parameters
        ----------
        model : nn.Module, skorch net, scikit-learn estimator or callable
            Torch modules / skorch nets and scikit-learn estimators (anything with
            ``predict_proba``, ``decision_function`` or ``predict``) are deep-copied and
            never modified; a callable ``f(ndarray) -> ndarray`` is used as is.
        X_ref : array-like, DataFrame, Tensor or list of those
            Required: background data (Kernel SHAP) / baseline distribution (LIME). Its
            shape fixes the input shape; DataFrame columns (or the estimator's
            ``feature_names_in_``) become feature names.
            A DataFrame with text / category columns or missing values is explained on its
            raw columns when ``model`` is a scikit-learn estimator or a function (see
            "Mixed-type DataFrames" in :mod:`sknn_explain.explainers.agnostic`).

        Returns
        -------
        self
        """
        codec = None
        if needs_raw_columns(X_ref) and not is_torch_like(model):
            # mixed-type / incomplete DataFrame for a Pipeline: explained on integer codes
            # of its raw values, decoded into the user's DataFrame before each model call
            codec = RawColumns(X_ref)
            X_ref = pd.DataFrame(codec.encode(X_ref), columns=[str(c) for c in codec.columns])
        self._fit_dtypes = native_dtypes(X_ref) if X_ref is not None else None
        self._fit_float_dtype = user_float_dtype(X_ref)
        self._fit_codec = codec
        try:
            super().fit(model, X_ref)
            self.raw_columns_ = codec
        finally:
            self.__dict__.pop("_fit_dtypes", None)
            self.__dict__.pop("_fit_float_dtype", None)
            self.__dict__.pop("_fit_codec", None)
        return self

    def explain(self, X: object, output_idx: object = None, output_label: object = None):
        """Attribute the selected outputs of the model to the input features of ``X``.

        See :meth:`Explainer.explain`. After a fit on a mixed-type DataFrame (see the class
        notes), ``X`` must be a DataFrame with the same columns in the same order; its
        values may include categories / strings / missing values that ``X_ref`` lacks, as
        far as the model accepts them.

        Parameters
        ----------
        X : array-like, DataFrame, Tensor or list of those
            Data to explain, ``(n_samples, *input_shape)`` (one entry per model input).
        output_idx : int, list of int, or list of (list of int or None), optional
            0-based output nodes to explain; a list of lists selects per output layer.
            Default: the first ten nodes of the first output layer.
        output_label : label or list of labels, optional
            Output nodes by name (e.g. class labels) instead of index, matched by value.

        Returns
        -------
        Attribution or sknn_explain.dask.LazyAttribution
            The attributions; after a mixed-type fit, ``Attribution.inputs`` holds the
            user's raw values (e.g. ``"Biscoe"``), not their codes. A lazy result when ``X``
            is a dask collection.
        """
        codec = getattr(self, "raw_columns_", None)
        if codec is None:
            return super().explain(X, output_idx=output_idx, output_label=output_label)
        self._check_fitted()
        codec.check_columns(X)
        call_codec = codec.extend(X)
        if self.dtype_ == torch.float32 and call_codec.n_codes >= _FLOAT32_EXACT_CODES:
            raise ValueError(
                f"a column of X / X_ref has {call_codec.n_codes} distinct values, more than "
                "dtype='float' codes exactly; use dtype='double'"
            )
        codes = call_codec.encode(X)
        local = copy.copy(self)  # this call's code books; the fitted explainer is unchanged
        local.model_ = copy.copy(self.model_)
        local.model_.codec = call_codec
        self._check_model_takes(local.model_, codes, call_codec, codec, X)
        frame = pd.DataFrame(codes, columns=[str(c) for c in codec.columns])
        result = Explainer.explain(local, frame, output_idx=output_idx, output_label=output_label)
        raw = codec.raw_values(X)
        raw.flags.writeable = False
        result._inputs = [raw]  # the user's values (e.g. "Biscoe"), not their codes
        return result

    @staticmethod
    def _check_model_takes(model, codes: np.ndarray, call_codec: RawColumns,
                           codec: RawColumns, X: object) -> None:
        """Run the model on ``X`` itself; a failure names the columns with values new to it."""
        try:
            for start in range(0, len(codes), CPU_MAX_ROWS):
                model([torch.as_tensor(codes[start:start + CPU_MAX_ROWS])])
        except Exception as err:  # noqa: BLE001 - whatever the user's pipeline raises
            new = call_codec.new_values(X, codec)
            shown = "; ".join(
                f"column {col!r}: {vals[:5]}{'...' if len(vals) > 5 else ''}"
                for col, vals in new.items()
            )
            where = (
                f". X has values that X_ref lacks (unknown categories?): {shown}" if new else ""
            )
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ValueError(f"the model failed on X ({type(err).__name__}: {first}){where}"
                             ) from err

    def _native_dtypes(self) -> list[torch.dtype | None] | None:
        return getattr(self.model_, "input_dtypes", None)

    def _check_native_values(self, xs: Sequence[torch.Tensor]) -> None:
        """X must hold values the model's bool / integer inputs can take exactly."""
        dtypes = self._native_dtypes()
        if not dtypes:
            return
        for i, (x, d) in enumerate(zip(xs, dtypes)):
            label = "X" if len(xs) == 1 else f"X[{i}]"
            if d is torch.bool and not bool(((x == 0) | (x == 1)).all()):
                raise ValueError(
                    f"{label} has values other than 0 / 1, but the model takes bool inputs "
                    "(X_ref was bool)"
                )
            if d is not None and d is not torch.bool and not bool((x == x.round()).all()):
                raise ValueError(
                    f"{label} has non-integer values, but the model takes "
                    f"{str(d).replace('torch.', '')} inputs (X_ref was integer)"
                )

    def _batch_size(self, shapes: Sequence[tuple[int, ...]]) -> int:
        if self.batch_size is not None:
            return int(self.batch_size)
        size = forward_batch_size(shapes, self.device_.type)  # cache-sized on CPU
        return size if self.device_.type == "cuda" else min(size, CPU_MAX_ROWS)

    def _fit_features(self, ref: InputBatch) -> None:
        model = self.model_
        if isinstance(model, SklearnModel):
            width = math.prod(ref.shapes[0])
            if model.n_features is not None and width != model.n_features:
                raise ValueError(
                    f"X_ref has {width} feature(s) per sample (shape {ref.shapes[0]}), but the "
                    f"{type(model.estimator).__name__} was fitted with {model.n_features}"
                )
            if model.feature_names is not None and len(ref.shapes[0]) == 1:
                if self.input_names_ is None:
                    self.input_names_ = [[list(model.feature_names)]]
                elif list(self.input_names_[0][0]) != model.feature_names:
                    raise ValueError(
                        f"X_ref has columns {self.input_names_[0][0][:5]}..., but the "
                        f"estimator was fitted with {model.feature_names[:5]}...; use the same "
                        "columns in the same order"
                    )
        fmap = build_feature_map(ref.shapes, self.segments, self.segment_size, self.channels_first)
        self.feature_map_ = fmap
        self.n_segments_ = fmap.n_features
