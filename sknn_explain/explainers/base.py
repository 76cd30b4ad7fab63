"""The :class:`Explainer` base class shared by every attribution method."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from .._batching import auto_batch_size
from .._data import (
    InputBatch,
    ShapeMismatchError,
    coerce_inputs,
    default_axis_names,
    find_batch_first_rnn,
    layout_hint,
    resolve_device,
    resolve_dtype,
    row_index_of,
    sequence_warning,
)
from .._forward_binding import bind_forward
from .._model import ModelAdapter, as_numpy, call_forward, flag_nonfinite_outputs, predict
from .._output_selection import OutputSelection, resolve_outputs
from .._prepare import encode
from .._random import (  # noqa: F401
    ROW_CONTEXT,
    RowContext,
    random_streams,
    row_context,
    row_generator,
    row_keys,
)
from .._validation import COMMON_PARAMETER_CONSTRAINTS, check_estimator_params
from ..attribution import Attribution
from ..convert.adapters import prepare_model

# random_streams, row_context, row_keys and row_generator live in sknn_explain._random; they
# stay importable from here, their home before
__all__ = ["Explainer", "group_result", "is_dask_collection", "make_attribution",
           "random_streams", "register_lazy_explain", "row_context", "row_keys",
           "row_generator"]

#: ``(accepts(X), explain(explainer, X, output_idx=, output_label=))`` pairs: inputs that
#: ``explain`` hands on instead of computing in memory (lazy collections). Integrations that
#: sit above the explainers register here when imported (``sknn_explain.dask``, imported by
#: the package itself, registers dask arrays and DataFrames), so this module imports none.
_LAZY_EXPLAIN: list[tuple[Callable[[object], bool], Callable[..., object]]] = []


def register_lazy_explain(accepts: Callable[[object], bool], explain: Callable[..., object]
                          ) -> None:
    """Let :meth:`Explainer.explain` hand inputs for which ``accepts(X)`` holds to ``explain``.

    ``explain(explainer, X, output_idx=..., output_label=...)`` returns the (lazy) result.
    Registering the same pair twice (a module reloaded) keeps one entry.
    """
    entry = (accepts, explain)
    if entry not in _LAZY_EXPLAIN:
        _LAZY_EXPLAIN.append(entry)


def make_attribution(
    method: str,
    values: Sequence[torch.Tensor],
    predictions: torch.Tensor,
    goal: torch.Tensor | None,
    selection: OutputSelection,
    inputs: Sequence[np.ndarray],
    input_names: Sequence[list[list[str]]],
    *,
    channels_first: bool = True,
    goal_description: str | None = None,
) -> Attribution:
    """Split ``(n, *shape, K_total)`` tensors per output layer and wrap them in an Attribution.

    ``inputs`` are model-layout arrays; with ``channels_first=False`` both values and inputs
    are moved back to the user's channels-last layout.
    """

    def user_layout(a: np.ndarray, has_k: bool) -> np.ndarray:
        rank = a.ndim - 1 - int(has_k)
        if channels_first or rank < 2:
            return a
        return np.moveaxis(a, 1, -2 if has_k else -1)

    per_input = [selection.split(v) for v in values]  # [input][layer]
    nested = [
        [user_layout(as_numpy(per_input[i][li]), True) for i in range(len(values))]
        for li in range(len(selection.layers))
    ]
    preds = [as_numpy(p) for p in selection.split(predictions)]
    goals = None if goal is None else [as_numpy(g) for g in selection.split(goal)]
    return Attribution(
        method=method,
        values=nested,
        inputs=[user_layout(np.asarray(x), False) for x in inputs],
        input_names=[list(map(list, n)) for n in input_names],
        output_names=selection.names,
        output_layers=selection.layers,
        output_idx=selection.indices,
        predictions=preds,
        decomp_goal=goals,
        goal_description=goal_description,
        channels_first=channels_first,
    )


def group_result(model_: object, result: Attribution, raw: np.ndarray) -> Attribution:
    """The encoded-space ``result`` summed per original column (``level="encoded"`` keeps
    the encoded view); ``raw`` are the user's raw values, ``(n, p_raw)`` objects."""
    from .._prepare import block_members

    groups = model_.column_groups
    members = block_members(groups, list(model_.raw_names))
    per_group = np.empty((raw.shape[0], len(members)), dtype=object)
    for j, cols in enumerate(members):
        if len(cols) == 1:
            per_group[:, j] = raw[:, cols[0]]
        else:  # a many-to-many block: the tuple of its columns' values
            for r in range(raw.shape[0]):
                per_group[r, j] = tuple(raw[r, cols])
    grouped = result.group_columns(groups, per_group)
    grouped.output_space = getattr(result, "output_space", None)
    return grouped


def is_dask_collection(X: object) -> bool:
    """Whether ``X`` is a dask collection (checked without importing dask)."""
    return (type(X).__module__.split(".")[0] in ("dask", "dask_expr")
            and hasattr(X, "__dask_graph__"))


def _output_space(model: ModelAdapter) -> str | None:
    """What the explained outputs are: "logit" (last softmax / sigmoid removed by
    ``ignore_last_act``), "probability" (kept) or None (no final softmax / sigmoid)."""
    if model.removed_activation in ("softmax", "sigmoid", "log_softmax"):
        return "logit"
    graph = model.graph
    outputs = getattr(graph, "outputs", None)
    if outputs:
        layer = getattr(graph.node(outputs[0]), "layer", None)
        if getattr(layer, "name", None) in ("softmax", "sigmoid"):
            return "probability"
    return None


def _check_names(given: Sequence, known: Sequence | None, name: str, whose: str) -> None:
    """DataFrame columns must match the names the model / explainer knows, in order."""
    if known is None:
        return
    for g, k in zip(given, known):
        if g is not None and k is not None and g != k:
            raise ValueError(
                f"{name} has feature names {g[0][:5]}..., but {whose} {k[0][:5]}...; use "
                "the same columns in the same order"
            )


def _shapes_key(shapes: Sequence[Sequence[int]]) -> tuple[tuple[int, ...], ...]:
    """Per-sample input shapes as a hashable key."""
    return tuple(tuple(int(d) for d in s) for s in shapes)


def _clear_fitted(estimator: object) -> None:
    """Remove every fitted attribute (public names ending in ``_``) of ``estimator``."""
    for name in [k for k in vars(estimator) if k.endswith("_") and not k.startswith("_")]:
        delattr(estimator, name)


def unfitted_on_error(fit: Callable) -> Callable:
    """Decorate ``fit`` so that it starts from, and fails into, an unfitted estimator.

    Every fitted attribute is removed before ``fit`` runs and again when it raises (bad
    hyperparameters, a model that does not convert, reference data that fail), so a failed
    refit never leaves the previous fit in place: ``explain`` then raises
    ``NotFittedError`` instead of explaining the old model.
    """

    @functools.wraps(fit)
    def wrapper(self, *args, **kwargs):
        _clear_fitted(self)
        try:
            return fit(self, *args, **kwargs)
        except BaseException:
            _clear_fitted(self)
            raise

    return wrapper


_USE_TRANSFORMER = (
    "To use an explainer inside a scikit-learn Pipeline, GridSearchCV or cross_validate, wrap "
    "it with its model: sknn_explain.AttributionTransformer(model, explainer) is a transformer "
    "(attributions as features, feature_importances_, an explanation-quality score)"
)


def _input_space(model: object, model_: object) -> str | None:
    """"network" when a pipeline's preprocessing runs before the explained network, "raw"
    when its scalers are folded into it, None for anything that is not a pipeline."""
    from sklearn.pipeline import Pipeline

    if model_.preprocess is not None:
        return "network"
    if isinstance(model, Pipeline) and any(
            s is not None and not isinstance(s, str) for _, s in model.steps[:-1]):
        return "raw"
    return None


def _reject_data_as_model(model: object) -> None:
    """``fit(X)`` (as a Pipeline / GridSearchCV calls it) gets data where the model belongs."""
    import pandas as pd

    def is_data(obj: object) -> bool:
        return (isinstance(obj, (np.ndarray, pd.DataFrame, pd.Series))
                or (isinstance(obj, torch.Tensor)) or hasattr(obj, "tocsr"))

    parts = model if isinstance(model, (list, tuple)) and model else [model]
    if all(is_data(p) for p in parts):
        raise TypeError(
            f"Explainer.fit(model, X_ref) takes the model to explain first, but got data "
            f"({type(model).__name__}). {_USE_TRANSFORMER}."
        )


class Explainer(BaseEstimator):
    """Base class: sklearn-style estimator that explains a fitted model.

    Subclasses list all their hyperparameters in ``__init__`` (stored verbatim, so
    ``get_params``, ``set_params``, ``clone`` and ``repr`` work) and implement
    :meth:`_attribute`. ``fit(model, X_ref)`` prepares a private copy of the model and the
    reference data; ``explain(X, output_idx=None, output_label=None)`` returns an
    :class:`~sknn_explain.Attribution`.

    Other Parameters
    ----------------
    ignore_last_act : bool
        Explain the model output before its last activation (softmax / sigmoid), as innsight.
    channels_first : bool
        Whether image / signal data come as ``(n, C, ...)`` (True) or ``(n, ..., C)``.
    dtype : {"float", "double"}
        Precision of the computation (the user's model is not cast; a copy is).
    device : {"cpu", "cuda", "cuda:<index>", "auto"} or torch.device
        Where to compute.
    batch_size : int, optional
        Model rows per forward/backward pass (samples x steps/references); None picks a size
        from the input width. Memory is bounded by it times the number of outputs.
    verbose : bool
        Show a tqdm progress bar over chunks.

    Notes
    -----
    Hyperparameters are checked against ``_parameter_constraints`` (scikit-learn's
    constraint language; subclasses extend the dict) at ``fit`` and again at ``explain``,
    so values changed with ``set_params`` after ``fit`` are checked too. Invalid values
    raise ``InvalidParameterError`` (a ``ValueError`` and a ``TypeError``).

    Examples
    --------
    Every explainer is an ``Explainer``; the common parameters are keyword arguments of each:

    >>> from sknn_explain import Explainer, Gradient
    >>> explainer = Gradient(batch_size=64)
    >>> isinstance(explainer, Explainer), explainer.get_params()["batch_size"]
    (True, 64)
    """

    #: scikit-learn parameter constraints (``name -> list of accepted kinds of values``)
    _parameter_constraints: dict = dict(COMMON_PARAMETER_CONSTRAINTS)

    #: name shown in results.
    method_name = "Explainer"
    #: whether ``fit`` needs ``X_ref``
    _requires_reference = False
    #: whether the method needs the converted layer graph (no fallback to a plain copy)
    _requires_graph = False
    #: human-readable decomposition goal (None: the method has none)
    _goal_description: str | None = None
    #: whether the method scales by the range of the explained data (SmoothGrad's noise):
    #: blocks of a Dask collection then get the range of the whole collection
    _uses_data_range = False

    def __init__(self, *, ignore_last_act, channels_first, dtype, device, batch_size, verbose):
        # the common parameters, stored verbatim; subclasses list them in their own
        # signature (with their own defaults) and pass them on
        self.ignore_last_act = ignore_last_act
        self.channels_first = channels_first
        self.dtype = dtype
        self.device = device
        self.batch_size = batch_size
        self.verbose = verbose

    # ------------------------------------------------------------------ fitting
    def _check_common_params(self) -> tuple[torch.dtype, torch.device]:
        """Check all hyperparameters (at ``fit``) and resolve ``dtype`` and ``device``."""
        self._check_hyperparameters()
        return resolve_dtype(self.dtype), resolve_device(self.device)

    def _check_hyperparameters(self) -> None:
        """Check every hyperparameter: ``_parameter_constraints``, then ``_check_params``.

        Runs at ``fit`` and at ``explain`` (it is cheap), the one place where
        hyperparameters are validated.
        """
        check_estimator_params(self)  # scikit-learn's _validate_params, built once per class
        self._check_params()

    def _check_params(self) -> None:
        """Cross-parameter checks that ``_parameter_constraints`` cannot express (override)."""

    def _check_fitted(self) -> None:
        """Raise ``NotFittedError`` unless fitted, then check the hyperparameters again."""
        if "model_" not in vars(self):  # scikit-learn's check (and message) when unfitted
            check_is_fitted(self, "model_")
        self._check_hyperparameters()

    def _prepare_model(self, model: object, dtype: torch.dtype, device: torch.device):
        """Convert ``model`` to a layer graph adapter (:class:`~sknn_explain.convert.GraphModel`).

        Accepts torch modules, fitted skorch nets, fitted scikit-learn MLPs / Pipelines,
        innsight-style dicts and Graphs. When a torch / skorch model cannot be converted,
        the gradient family falls back to the plain private copy (``as_model``); explainers
        with ``_requires_graph = True`` (propagation methods) raise the conversion error.
        """
        return prepare_model(
            model, ignore_last_act=self.ignore_last_act, dtype=dtype, device=device,
            require_graph=bool(getattr(self, "_requires_graph", False)),
            space=getattr(self, "space", "network"),
        )

    @unfitted_on_error
    def fit(self, model: object, X_ref: object = None, *, forward_kwargs: dict | None = None,
            output_key: object = None) -> Explainer:
        """Prepare the explainer for ``model``.

        Parameters
        ----------
        model : nn.Module, skorch net, scikit-learn MLP or Pipeline, dict or Graph
            The model to explain; it is copied (converted), the original is never modified:

            * a torch ``nn.Module`` of any architecture (converted to a layer graph with
              ``torch.fx``; the gradient family also runs modules that do not convert);
            * a fitted skorch ``NeuralNet`` (output names from ``classes_``);
            * a fitted scikit-learn ``MLPClassifier`` / ``MLPRegressor``, or a ``Pipeline`` of
              scalers (``StandardScaler``, ``MinMaxScaler``, ``MaxAbsScaler``,
              ``RobustScaler``, ``'passthrough'``) ending in one or in a skorch net;
            * an innsight-style model dict or a :class:`~sknn_explain.convert.Graph`.

            KernelSHAP and LIME also take any fitted scikit-learn estimator or a prediction
            function.
        X_ref : array-like, DataFrame, Tensor or list of those, optional
            Reference data (baseline for IntegratedGradients, reference distribution for
            ExpectedGradients). Its shape fixes the expected input shape, and DataFrame
            columns become feature names.
        forward_kwargs : dict, optional
            Extra arguments of the torch module's ``forward`` that are not explained
            (captum's ``additional_forward_args``), bound as constants of the model: the
            same for every row (flags, a fixed mask). A per-sample tensor is data: pass it
            as another model input (``X`` as a list). Unknown names raise ``TypeError``.
        output_key : key, int or list, optional
            Which output(s) to explain when the module returns a dict (keys), a tuple or a
            namedtuple (positions / field names); output names then say the key
            (``"logits[0]"``). A wrong key raises ``ValueError`` listing the available ones.

        Returns
        -------
        self

        Raises
        ------
        TypeError
            ``model`` is data (as when a Pipeline calls ``fit(X)``): use
            :class:`~sknn_explain.AttributionTransformer` there.

        Notes
        -----
        A ``fit`` that raises leaves the explainer unfitted (the previous fit is removed).
        """
        _reject_data_as_model(model)
        dtype, device = self._check_common_params()
        n_ref = None if isinstance(X_ref, (list, tuple)) else getattr(X_ref, "shape", [None])[0]
        model_ = self._prepare_model(bind_forward(model, forward_kwargs, output_key, n_ref),
                                     dtype, device)
        preprocess = model_.preprocess
        if preprocess is not None and X_ref is not None:
            # a pipeline's preprocessing runs on the raw X_ref; the network sees its output
            X_ref, _ = encode(preprocess, X_ref, model_.raw_names, "X_ref")
        ref = None
        if X_ref is not None:
            ref = coerce_inputs(
                X_ref, n_inputs=model_.n_inputs, input_shapes=model_.input_shapes,
                channels_first=self.channels_first, name="X_ref",
            )
            _check_names(ref.names, model_.input_names, "X_ref",
                         "the model has feature names")
            if model_.pending:  # finish a deferred conversion now
                # a model that cannot run on X_ref is the user's input error (ValueError)
                refs = ref.to_tensors(dtype, device)
                call_forward(model_.ensure, [t[:8] for t in refs],
                             hint=self._layout_hint(model_, refs, "X_ref"))
        elif self._requires_reference:
            raise ValueError(f"{type(self).__name__} needs reference data: call fit(model, X_ref)")
        self.model_ = model_
        self.dtype_, self.device_ = dtype, device
        self.recurrent_layer_ = find_batch_first_rnn(model)
        self.input_space_ = _input_space(model, model_)
        shapes = ref.shapes if ref is not None else model_.input_shapes
        self.input_shapes_ = None if shapes is None else [tuple(s) for s in shapes]
        self.n_inputs_ = None if self.input_shapes_ is None else len(self.input_shapes_)
        # names known to the model (e.g. a Pipeline's feature_names_in_), else X_ref's columns
        self.input_names_ = model_.input_names
        if self.input_names_ is None and ref is not None and any(n is not None for n in ref.names):
            self.input_names_ = [
                n if n is not None else default_axis_names(s) for n, s in zip(ref.names, ref.shapes)
            ]
        if self.input_shapes_ is not None and len(self.input_shapes_) == 1 and len(
            self.input_shapes_[0]
        ) == 1:
            self.n_features_in_ = self.input_shapes_[0][0]
            if self.input_names_ is not None:
                self.feature_names_in_ = np.asarray(self.input_names_[0][0], dtype=object)
        if preprocess is not None:  # the user's columns, not the encoded features
            groups = model_.column_groups
            self.input_names_ = [[list(groups.encoded_names)]]
            self.n_features_in_ = len(model_.raw_names)
            self.feature_names_in_ = np.asarray(model_.raw_names, dtype=object)
        self._fit_reference(ref)
        return self

    def _fit_reference(self, ref: InputBatch | None) -> None:
        """Store what the method needs from the reference data (override)."""

    # ------------------------------------------------------------------ explaining
    def _batch_size(self, shapes: Sequence[tuple[int, ...]]) -> int:
        return int(self.batch_size) if self.batch_size is not None else auto_batch_size(shapes)

    def _layout_hint(self, model_: object, xs: Sequence[torch.Tensor], name: str):
        """A lazy "did you mean X[None] / channels_first=False?" for a failing model call."""
        # a pending conversion is tried on its private reference copy, never converted here
        return lambda: layout_hint(model_.check_inputs, xs, channels_first=self.channels_first,
                                   name=name)

    def _coerce(self, X: object, name: str = "X") -> tuple[InputBatch, list[list[list[str]]]]:
        batch = coerce_inputs(
            X, n_inputs=self.n_inputs_, input_shapes=self.input_shapes_,
            channels_first=self.channels_first, name=name,
        )
        _check_names(batch.names, self.input_names_, name, "the explainer was fitted with")
        rnn = getattr(self, "recurrent_layer_", None)
        names = []
        for i, (given, shape) in enumerate(zip(batch.names, batch.shapes)):
            fitted = self.input_names_[i] if self.input_names_ is not None else None
            sequence = rnn is not None and len(shape) == 2
            if sequence and given is None and fitted in (None, default_axis_names(shape)):
                # (n, T, F) of a batch-first LSTM / GRU / RNN: time steps, not channels
                sequence_warning(rnn, shape, name)
                fitted = default_axis_names(shape, sequence=True)
            names.append(given or fitted or default_axis_names(shape))
        return batch, names

    def explain(
        self, X: object, output_idx: object = None, output_label: object = None
    ) -> Attribution:
        """Attribute the selected outputs of the model to the input features of ``X``.

        Parameters
        ----------
        X : array-like, DataFrame, Tensor or list of those
            Data to explain, ``(n_samples, *input_shape)`` (one entry per model input).
        output_idx : int, list of int, or list of (list of int or None), optional
            0-based output nodes to explain; a list of lists selects per output layer.
            Default: the first ten nodes of the first output layer.
        output_label : label or list of labels, optional
            Output nodes by name (e.g. class labels) instead of index, matched by value:
            ``1`` selects the class ``1.0``, but the string ``"1"`` does not select ``1``.

        Returns
        -------
        Attribution or sknn_explain.dask.LazyAttribution
            A lazy result (dask arrays / DataFrame) when ``X`` is a dask array or dask
            DataFrame; see :func:`sknn_explain.dask.explain`.
        """
        for accepts, lazy_explain in _LAZY_EXPLAIN:  # e.g. dask collections
            if accepts(X):
                return lazy_explain(self, X, output_idx=output_idx, output_label=output_label)
        self._check_fitted()
        raw = None
        preprocess = self.model_.preprocess
        if preprocess is not None:  # raw DataFrame -> the pipeline's encoded features
            X, raw = encode(preprocess, X, self.model_.raw_names, "X")
        try:
            batch, names = self._coerce(X)
        except ShapeMismatchError as err:
            if self.model_.shapes_from_first_call:
                raise ShapeMismatchError(
                    f"{err}: the model was converted for the input shape of the first "
                    "explained X (it was fitted without X_ref); refit the explainer, with "
                    "X_ref of the new shape, to explain inputs of another shape") from err
            raise
        dims = self._output_dims(batch)
        if self.input_shapes_ is None and self.model_.input_shapes:
            # a conversion deferred at fit finished for these shapes: later calls must match
            self.input_shapes_ = [tuple(s) for s in self.model_.input_shapes]
            self.n_inputs_ = len(self.input_shapes_)
        selection = resolve_outputs(output_idx, output_label, self.model_.output_names(dims))
        batch_size = self._batch_size(batch.shapes)
        block = self._block_rows(batch.shapes, sum(selection.sizes), batch_size)
        if batch.n_samples <= block:
            xs = batch.to_tensors(self.dtype_, self.device_)
            values, preds, goal = self._attribute(xs, selection, batch_size)
        else:
            values, preds, goal = self._attribute_blocks(batch, selection, batch_size, block)
        values = flag_nonfinite_outputs(  # NaN/inf outputs: warn, NaN attributions
            values, preds, goal, [name for layer in selection.names for name in layer])
        result = make_attribution(
            self.method_name, values, preds, goal, selection, batch.arrays, names,
            channels_first=self.channels_first,
            goal_description=self._goal_description if goal is not None else None,
        )
        result.output_space = _output_space(self.model_)  # "logit" / "probability", for plots
        result.row_index = row_index_of(X)
        result.input_space = getattr(self, "input_space_", None)
        if result.input_space is not None and result.goal_description is not None:
            result.goal_description += f" (on the {result.input_space} inputs)"
        if raw is not None:
            result = group_result(self.model_, result, raw)
        return result

    def _output_dims(self, batch: InputBatch) -> list[int]:
        """Widths of the model's output layers for inputs of ``batch``'s per-sample shapes.

        The first call per shape runs the model on one row (which also finishes a
        conversion deferred at ``fit`` and reports a failing model with a layout hint);
        the widths are cached on the fitted explainer (``output_dims_``, keyed by the
        shapes), so later calls need no sizing forward pass.
        """
        key = _shapes_key(batch.shapes)
        cache = self.__dict__.setdefault("output_dims_", {})
        dims = cache.get(key)
        if dims is None:
            first = batch.to_tensors(self.dtype_, self.device_, rows=slice(0, 1))

            def hint() -> str:  # only on failure: the "did you mean" tries need every row
                xs = batch.to_tensors(self.dtype_, self.device_)
                return self._layout_hint(self.model_, xs, "X")()

            with torch.no_grad():
                dims = [o.shape[1] for o in call_forward(self.model_, first, hint=hint)]
            cache[key] = dims  # one dict store: safe when threads explain concurrently
        return list(dims)

    def _remember_output_dims(self, shapes: Sequence[tuple[int, ...]],
                              outputs: Sequence[torch.Tensor]) -> None:
        """Record the output widths of a forward pass on inputs of per-sample ``shapes``
        (e.g. the reference data's at ``fit``): :meth:`_output_dims` then needs no sizing
        pass for inputs of those shapes."""
        self.__dict__.setdefault("output_dims_", {})[_shapes_key(shapes)] = [
            int(o.shape[1]) for o in outputs]

    def _block_rows(self, shapes: Sequence[tuple[int, ...]], n_outputs: int,
                    batch_size: int) -> int:
        """Rows explained at once; more rows are explained block by block (override).

        The base class explains all rows at once. The gradient family returns
        :func:`~sknn_explain._batching.block_rows`, so that a large ``X`` is never copied
        whole to the computation dtype next to the result (see :meth:`_attribute_blocks`).
        """
        return np.iinfo(np.int64).max

    def _attribute_blocks(
        self, batch: InputBatch, selection: OutputSelection, batch_size: int, block: int
    ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor | None]:
        """:meth:`_attribute` on blocks of ``block`` rows, written into one result.

        Only the rows of one block are converted to ``dtype_`` at a time, so the peak memory
        is the result plus a working set bounded by ``block`` (and ``batch_size``), not the
        result plus a full copy of ``X``. Every block runs in a row context (as a block of a
        Dask collection does): random draws keyed by the global row index and SmoothGrad's
        data range over all rows, so the answer does not depend on the blocks.
        """
        ctx = row_context()
        data_range = ctx.data_range
        if data_range is None and self._uses_data_range:
            data_range = tuple((a.max(axis=0), a.min(axis=0)) for a in batch.arrays)
        n = batch.n_samples
        values: list[torch.Tensor] = []
        preds = goal = None
        for start in range(0, n, block):
            stop = min(n, start + block)
            xs = batch.to_tensors(self.dtype_, self.device_, rows=slice(start, stop))
            token = ROW_CONTEXT.set(RowContext(offset=ctx.offset + start, data_range=data_range))
            try:
                v, p, g = self._attribute(xs, selection, batch_size)
            finally:
                ROW_CONTEXT.reset(token)
            del xs
            if preds is None:
                values = [t.new_empty((n, *t.shape[1:])) for t in v]
                preds = p.new_empty((n, *p.shape[1:]))
                goal = None if g is None else g.new_empty((n, *g.shape[1:]))
            for whole, part in zip(values, v):
                whole[start:stop] = part
            preds[start:stop] = p
            if goal is not None:
                goal[start:stop] = g
            del v, p, g
        return values, preds, goal

    def _attribute(
        self, xs: list[torch.Tensor], selection: OutputSelection, batch_size: int
    ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor | None]:
        """Return per-input ``(n, *shape, K)`` values, ``(n, K)`` predictions, goal or None."""
        raise NotImplementedError

    def _predict_selected(
        self, xs: Sequence[torch.Tensor], selection: OutputSelection, batch_size: int
    ) -> torch.Tensor:
        return selection.pick(predict(self.model_, xs, batch_size))

    def score(self, X: object = None, y: object = None) -> float:
        """Not available: explainers are not scored directly.

        This raises a ``TypeError`` pointing to :class:`~sknn_explain.AttributionTransformer`,
        whose ``score`` rates explanations.

        Parameters
        ----------
        X : object, optional
            Not used.
        y : object, optional
            Not used.

        Raises
        ------
        TypeError
            Always; rate explanations with ``AttributionTransformer.score`` or a scorer from
            :func:`sknn_explain.metrics.get_explanation_scorer`.
        """
        raise TypeError(
            f"{type(self).__name__} explains a model and has no score of its own. "
            f"{_USE_TRANSFORMER}; score it with sknn_explain.metrics.get_explanation_scorer."
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = bool(getattr(self, "random_state", 0) is None)
        return tags
