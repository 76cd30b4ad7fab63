"""The model adapter over a converted graph, and how explainers prepare a model.

:func:`prepare_model` is what :meth:`Explainer._prepare_model` calls. It converts the model to
a :class:`Graph` and wraps it in a :class:`GraphModel`, the uniform
``forward(list[Tensor]) -> list[(n, k) Tensor]`` adapter every explainer uses. When the input
shape is not known at fit time (a CNN fitted without ``X_ref``), the conversion finishes on
the first call, when the shapes are known.

When conversion fails, the gradient family falls back to the plain private copy
(:func:`~sknn_explain._model.as_model`), which runs any module; explainers that need the
graph (``_requires_graph = True``: LRP, DeepLift, ...) get the conversion error instead.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch import nn

from .._model import ACTIVATIONS, AdapterBase, TorchModel, as_model, flatten_outputs
from .._naming import output_names_or_default
from .._prepare import prepare_model as take_apart
from .._skorch import is_skorch_net
from ..layers import Conv
from .canonize import BatchNormFolding
from .dispatch import make_source
from .errors import BatchStatisticsError, ConversionError, ExampleInputsError
from .graph import Graph
from .source import Source, finish, wrap_unexpected

__all__ = ["FallbackModel", "GraphModel", "prepare_model"]


class GraphModel(AdapterBase):
    """Model adapter over a converted :class:`Graph` (picklable).

    Parameters
    ----------
    graph : Graph or None
        The full converted graph (all activations); None while the conversion waits for the
        input shapes (``source`` given).
    ignore_last_act : bool
        Explain the outputs before their last activation (softmax / sigmoid).
    source : Source, optional
        The pending conversion (private model copy) when ``graph`` is None.
    require_graph : bool
        Raise the conversion error (True) or fall back to the plain model copy (False) when
        a pending conversion fails.
    fallback_model : TorchModel, optional
        A plain private copy prepared at fit time, used (only while pending and
        ``require_graph`` is False) if the conversion fails on the first call.

    Attributes
    ----------
    full_graph : Graph
        The converted model.
    graph : Graph
        The graph actually explained (``full_graph`` without its last activation when
        ``ignore_last_act``).
    n_inputs, input_shapes, input_names : model inputs
    removed_activation : str or None
        Name of the activation dropped by ``ignore_last_act``.

    It implements the :class:`~sknn_explain._model.ModelAdapter` protocol in full.

    Examples
    --------
    >>> import torch
    >>> from sknn_explain.convert import prepare_model
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Softmax(-1))
    >>> model = prepare_model(net, ignore_last_act=True, dtype=torch.float32,
    ...                       device=torch.device("cpu"))
    >>> model
    GraphModel(converted, ignore_last_act=True)
    >>> model.removed_activation, model.input_shapes, model.output_names([2])
    ('softmax', [(3,)], [['Y1', 'Y2']])
    """

    def __init__(self, graph: Graph | None, *, ignore_last_act: bool,
                 source: Source | None = None, require_graph: bool = False,
                 fallback_model: object = None) -> None:
        self.ignore_last_act = bool(ignore_last_act)
        self.require_graph = bool(require_graph)
        self._source = source
        self._fallback_candidate = fallback_model
        self._fallback: TorchModel | None = None
        self.conversion_error: str | None = None
        #: the graph was built for the shapes of the first call (no shapes known at fit).
        self.shapes_from_first_call = False
        self.n_inputs = graph.n_inputs if graph is not None else source.n_inputs
        self.full_graph: Graph | None = None
        self.graph: Graph | None = None
        #: ``graph`` with its BatchNorm layers merged into their producers, per tuple of
        #: values to keep, for plain forward passes (not pickled: rebuilt on first use)
        self._folding: dict[tuple[str, ...], BatchNormFolding] = {}
        self.removed_activation: str | None = None
        if graph is not None:
            self._set_graph(graph)

    # ------------------------------------------------------------------ state
    def _set_graph(self, graph: Graph) -> None:
        self.full_graph = graph
        self.graph = graph.without_last_activation() if self.ignore_last_act else graph
        self._folding = {}
        removed = [graph.node(o).layer for o, n in zip(graph.outputs, self.graph.outputs)
                   if o != n]
        self.removed_activation = removed[0].name if removed else None
        self._source = None
        self._fallback_candidate = None

    @property
    def convolutional(self) -> bool | None:
        """Whether the explained graph has a convolution (read by
        :func:`~sknn_explain._batching.gradient_strategy`); None while the conversion is
        pending or after a fallback (the strategy then looks at the module)."""
        graph = self.graph
        if graph is None or self._fallback is not None:
            return None
        cached = self.__dict__.get("_convolutional")
        if cached is None or cached[0] is not graph:
            cached = (graph, any(isinstance(n.layer, Conv) for n in graph.nodes))
            self.__dict__["_convolutional"] = cached
        return cached[1]

    @property
    def pending(self) -> bool:
        """Whether the conversion still waits for the input shapes (first call)."""
        return self.full_graph is None and self._fallback is None

    @property
    def converted(self) -> bool:
        """Whether the model is converted (False while pending or after a fallback)."""
        return self.full_graph is not None

    @property
    def input_shapes(self) -> list[tuple[int, ...]] | None:
        """Per-sample shape of each model input (None: not known yet)."""
        if self.full_graph is not None:
            return self.full_graph.input_shapes
        return None if self._source is None else self._source.input_shapes

    @property
    def input_names(self) -> list | None:
        """Per input, per axis, the names of the positions (None: not known yet)."""
        if self.full_graph is not None:
            return self.full_graph.input_names
        return None if self._source is None else self._source.input_names

    def ensure(self, xs: Sequence[torch.Tensor]) -> Graph | None:
        """Finish a pending conversion for inputs like ``xs``; return the explained graph.

        Parameters
        ----------
        xs : sequence of torch.Tensor
            One batch ``(n, *input_shape)`` per model input.

        Returns
        -------
        Graph or None
            The explained graph; None when the conversion failed and the adapter fell back
            to the plain model (only when ``require_graph`` is False).

        Raises
        ------
        ConversionError
            When the conversion fails and ``require_graph`` is True.
        """
        if self.pending:
            source = self._source
            # the original model must run on these inputs, else it is the user's input error
            source.check_inputs([x[:8] for x in xs])
            try:
                graph = finish(source, [tuple(x.shape[1:]) for x in xs], xs)
            except Exception as err:  # noqa: BLE001 - reported as a ConversionError
                error = wrap_unexpected(err, source.description)
                if self.require_graph or isinstance(error, BatchStatisticsError):
                    raise error from err
                self._use_fallback(error)
            else:
                self._set_graph(graph)
                self.shapes_from_first_call = True
        return self.graph

    def _use_fallback(self, error: ConversionError) -> None:
        fallback = self._fallback_candidate
        self.conversion_error = str(error)
        if (self.ignore_last_act and fallback.ends_with_activation
                and fallback.removed_activation is None):
            warnings.warn(
                "ignore_last_act=True could not be honoured: the model could not be "
                f"converted to a layer graph ({error}) and its last activation is not the last "
                "module of an nn.Sequential, so the explained outputs include it",
                UserWarning,
                stacklevel=4,
            )
        self._fallback = fallback
        self._source = None
        self._fallback_candidate = None

    # ------------------------------------------------------------------ adapter protocol
    def __call__(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if self.pending:
            with torch.no_grad():
                self.ensure([x.detach() for x in xs])
        if self._fallback is not None:
            return self._fallback(xs)
        self.check_shapes(xs)
        return flatten_outputs(self.executed_graph(xs)(*xs))

    def executed_graph(self, xs: Sequence[torch.Tensor], keep: Sequence[str] = ()) -> Graph:
        """The graph that :meth:`__call__` runs on inputs like ``xs``.

        :attr:`graph` with every BatchNorm merged into the Conv / Dense layer that feeds it
        (:class:`~sknn_explain.convert.canonize.BatchNormFolding`): the same function to
        rounding in fewer passes (10-20 % faster forward and backward passes on a ResNet).
        Its other layers are :attr:`graph`'s own (a modified-backward method that swaps the
        ReLUs of :attr:`graph` for a call swaps them here too). Explainers that address
        nodes by name (propagation and layer methods) use :attr:`graph`.

        Parameters
        ----------
        xs : sequence of torch.Tensor
            One batch ``(n, *input_shape)`` per model input (one row of them sizes a
            rebuilt merge).
        keep : sequence of str
            Values of :attr:`graph` that the returned graph must compute too (a layer
            method's target and context): their producers are not merged away.

        Returns
        -------
        Graph
        """
        cache = self.__dict__.get("_folding")
        if cache is None:  # unpickled
            cache = self._folding = {}
        key = tuple(keep)
        folding = cache.get(key)
        if folding is None or folding.graph is not self.graph:
            folding = BatchNormFolding(self.graph, key)
            cache[key] = folding
        return folding(xs)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_folding"] = None  # derived from ``graph``; rebuilt on first use
        state.pop("_convolutional", None)
        return state

    def check_inputs(self, xs: Sequence[torch.Tensor]) -> None:
        """Run the model on ``xs`` to check that it takes them.

        A pending conversion runs its private reference copy of the original model and is
        not finished here.

        Parameters
        ----------
        xs : sequence of torch.Tensor
            One batch ``(n, *input_shape)`` per model input.
        """
        if self.pending:
            self._source.check_inputs(xs)
        else:
            super().check_inputs(xs)

    def check_shapes(self, xs: Sequence[torch.Tensor]) -> None:
        """Refuse inputs of another per-sample shape than the graph was built for.

        The graph bakes shape-derived values in (``F.avg_pool2d(h, h.size()[2:])``,
        ``x.view(n, -1)`` widths): running it on another image size would silently compute a
        different function than the model.

        Parameters
        ----------
        xs : sequence of torch.Tensor
            One batch ``(n, *input_shape)`` per model input.

        Raises
        ------
        ValueError
            Naming both shapes.
        """
        built = self.full_graph.input_shapes if self.full_graph is not None else None
        if built is None:
            return
        got = [tuple(int(d) for d in x.shape[1:]) for x in xs]
        if got != [tuple(s) for s in built]:
            one = len(got) == 1
            raise ValueError(
                f"the model was converted for per-sample input shape "
                f"{built[0] if one else built}, got {got[0] if one else got}; the converted "
                "graph depends on the input shape. Refit the explainer (passing X_ref with "
                "the new shape) to explain inputs of another shape"
            )

    def output_names(self, dims: Sequence[int]) -> list[list]:
        """Names of every output node per output layer (``classes_`` or ``Y1..``).

        Parameters
        ----------
        dims : sequence of int
            The number of nodes of each output layer.

        Returns
        -------
        list of list
            Per output layer, the name of each node.
        """
        graph = self.full_graph
        given = None if graph is None else graph.output_names
        if given is None and self._fallback is not None:
            return self._fallback.output_names(dims)
        return output_names_or_default(dims, given)

    def __repr__(self) -> str:
        state = "pending" if self.pending else "fallback" if self._fallback else "converted"
        return f"GraphModel({state}, ignore_last_act={self.ignore_last_act})"


class FallbackModel(TorchModel):
    """The plain private module copy, run on private copies of its inputs.

    A module may modify its input in place (``x.sub_(mean)`` in ``forward``): the copies keep
    the user's ``X``, the explainer's stored reference and the explainer's own leaf tensors
    (which require grad) untouched, and ``clone`` is differentiable, so gradients still reach
    the caller's tensors.

    Attributes
    ----------
    ends_with_activation : bool or None
        Whether the model's first output comes from an activation (None: unknown), for the
        ``ignore_last_act`` warnings.
    """

    ends_with_activation: bool | None = None

    def __call__(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        return super().__call__([x.clone() for x in xs])


def _last_leaf_is_activation(model: object) -> bool:
    """Heuristic for unconvertible modules: is the last registered leaf an activation?"""
    module = getattr(model, "module_", model)
    if not isinstance(module, nn.Module):
        return False
    leaves = [m for m in module.modules() if not list(m.children())]
    return bool(leaves) and isinstance(leaves[-1], ACTIVATIONS)


def _check_per_sample(model: object) -> None:
    """Refuse modules that normalise with batch statistics in eval mode.

    ``BatchNorm*(track_running_stats=False)`` has no running statistics, so even in eval mode
    each sample's output depends on the other samples of the batch: per-sample attributions
    (and predictions) would change with the batch composition, a silent wrong answer.
    """
    module = getattr(model, "module_", model)
    if not isinstance(module, nn.Module):
        return
    for name, m in module.named_modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and (
                m.running_mean is None or m.running_var is None):
            raise BatchStatisticsError(
                f"nn.{type(m).__name__}", f"'{name}'" if name else "the model",
                "it has no running statistics (track_running_stats=False) and normalises "
                "with the statistics of the current batch, even in eval mode")


def _fallback_model(model: object, ignore_last_act: bool, dtype: torch.dtype,
                    device: torch.device, ends_with_activation: bool | None) -> TorchModel:
    """The plain private copy (runs any module) used when the graph cannot be built."""
    _check_per_sample(model)
    fallback = as_model(model, ignore_last_act=ignore_last_act, dtype=dtype, device=device)
    fallback.__class__ = FallbackModel  # same state, inputs copied before every call
    unknown = ends_with_activation is None  # torch.fx could not even trace the model
    if ends_with_activation is None:
        ends_with_activation = _last_leaf_is_activation(model)
    if is_skorch_net(model) and fallback.output_nonlinearity is None and ignore_last_act:
        # skorch's predict nonlinearity is dropped; only a module-internal one matters
        ends_with_activation = _last_leaf_is_activation(model)
    if ignore_last_act and ends_with_activation and fallback.removed_activation is None:
        warnings.warn(
            "ignore_last_act=True could not be honoured: the model could not be converted to "
            "a layer graph and its last activation is not the last module of an "
            "nn.Sequential, so the explained outputs include it",
            UserWarning,
            stacklevel=4,
        )
    elif ignore_last_act and unknown and fallback.removed_activation is None:
        warnings.warn(
            "ignore_last_act=True may not be honoured: torch.fx could not trace the model, so "
            "it is explained without conversion, and whether its forward ends with an "
            "activation (softmax, sigmoid, ...) cannot be checked; if it does, the explained "
            "outputs include it. Pass ignore_last_act=False to explain the outputs as the "
            "model returns them (and silence this warning)",
            UserWarning,
            stacklevel=4,
        )
    return fallback


def prepare_model(
    model: object,
    *,
    ignore_last_act: bool,
    dtype: torch.dtype,
    device: torch.device,
    require_graph: bool = False,
    space: str = "network",
) -> GraphModel | TorchModel:
    """Convert ``model`` for an explainer (see the module docstring).

    ``space`` (``"network"`` / ``"raw"``) says whether a Pipeline's scalers run as
    preprocessing or are folded into the graph (:func:`sknn_explain._prepare.prepare_model`).

    The model's path: :func:`~sknn_explain._prepare.prepare_model` takes it apart,
    :func:`~.dispatch.make_source` picks its converter, :func:`~.source.finish` builds and
    verifies the graph, and the result is wrapped here.

    Parameters
    ----------
    model : nn.Module, skorch net, scikit-learn MLP or Pipeline, dict or Graph
        The model; it is copied, never modified.
    ignore_last_act : bool
        Explain the outputs before the model's last activation (softmax / sigmoid).
    dtype : torch.dtype
        The dtype of the converted model.
    device : torch.device
        Where the converted model runs.
    require_graph : bool, default=False
        Raise the conversion error instead of falling back to the plain model copy.
    space : {"network", "raw"}, default="network"
        A Pipeline's scalers as preprocessing (``"network"``) or folded into the graph.

    Returns
    -------
    GraphModel or TorchModel
        A :class:`GraphModel`, or (torch / skorch models, when conversion fails and
        ``require_graph`` is False) the plain ``TorchModel`` copy, whose
        ``conversion_error`` attribute says why.

    Raises
    ------
    TypeError
        Unsupported model type.
    ValueError
        Unfitted model; :class:`ConversionError` when conversion fails and the graph is
        required (or the model is not a torch / skorch model).

    Examples
    --------
    >>> import torch
    >>> from sknn_explain.convert import prepare_model
    >>> model = prepare_model(torch.nn.Linear(3, 2), ignore_last_act=False,
    ...                       dtype=torch.float32, device=torch.device("cpu"))
    >>> type(model).__name__, model.input_shapes
    ('GraphModel', [(3,)])
    """
    prepared = take_apart(model, space)  # the one front door: preprocessing / network / names
    if prepared.preprocess is not None:
        # the network is converted (or copied) alone and explained on the encoded data
        model_ = prepare_model(prepared.net, ignore_last_act=ignore_last_act, dtype=dtype,
                               device=device, require_graph=require_graph)
        model_.preprocess = prepared.preprocess
        model_.column_groups = prepared.column_groups
        model_.raw_names = prepared.raw_names
        return model_
    model = prepared.net
    can_fall_back = not require_graph and (isinstance(model, nn.Module) or is_skorch_net(model))
    if can_fall_back:
        _check_per_sample(model)  # no method explains a batch-dependent model per sample

    def fall_back(error: ConversionError, ends_with_activation: bool | None) -> TorchModel:
        model_ = _fallback_model(model, ignore_last_act, dtype, device, ends_with_activation)
        model_.conversion_error = str(error)
        return model_

    try:
        source = make_source(model, dtype, device)
    except ConversionError as err:
        if not can_fall_back or isinstance(err, BatchStatisticsError):
            raise
        return fall_back(err, err.ends_with_activation)
    if source.input_shapes is not None:
        try:
            return GraphModel(finish(source, source.input_shapes),
                              ignore_last_act=ignore_last_act)
        except Exception as err:  # noqa: BLE001 - any failure is a conversion failure
            error = wrap_unexpected(err, source.description)
            if not isinstance(error, ExampleInputsError):
                if not can_fall_back or isinstance(error, BatchStatisticsError):
                    raise error from err
                return fall_back(error, source.ends_with_activation)
            # the input shape inferred from the first Linear was wrong: wait for real data
            source.input_shapes = None
    fallback = None
    if can_fall_back:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fallback = _fallback_model(model, ignore_last_act, dtype, device, False)
        fallback.ends_with_activation = source.ends_with_activation
        if fallback.ends_with_activation is None:
            fallback.ends_with_activation = _last_leaf_is_activation(model)
    return GraphModel(None, ignore_last_act=ignore_last_act, source=source,
                      require_graph=require_graph, fallback_model=fallback)
