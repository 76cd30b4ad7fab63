"""Layer attribution: how much each unit / channel of a hidden layer contributes to the outputs.

Every explainer here takes ``layer=`` (a node of the converted graph, or a torch module path
such as ``"features.3"``) and returns an :class:`~sknn_explain.Attribution` whose values
have the layer's shape, ``(n, *layer_shape, n_outputs)``; its ``inputs`` are the layer's
activations and its input names ``<layer>[k]`` (units / channels) and positions. The
definitions are captum's (``attribute_to_layer_input=False``): ``h`` is the layer's output
at ``x``, and the network above the layer is fed ``h`` (values that bypass the layer, such
as a residual branch, stay those of ``x``):

* :class:`LayerGradient` (captum ``LayerGradient``): ``df/dh``; with ``times_input``
  (``LayerGradientXActivation``) ``h * df/dh``, goal ``f(x) - f(x | h := 0)``.
* :class:`LayerIntegratedGradients` (captum ``LayerIntegratedGradients``, ``method=
  "riemann_right"``): integrated gradients **in the layer's activation space**, along the
  straight line from ``h_ref = h(x_ref)`` to ``h(x)``, right Riemann sum with ``n`` steps,
  times ``h(x) - h_ref``. Captum does exactly this (it evaluates the layer on the inputs and
  the baselines and integrates between the two activations with the layer output replaced),
  not the input-space path of :class:`~sknn_explain.IntegratedGradients` followed to the
  layer; the two differ when the layers below are non-linear. Goal ``f(x) - f(x | h :=
  h_ref)``, i.e. ``f(x) - f(x_ref)`` when every path to the outputs passes the layer.
* :class:`LayerDeepLift` (captum ``LayerDeepLift``, Rescale): the DeepLift multipliers of
  the layer's output times ``h(x) - h(x_ref)``; they sum exactly to ``f(x) - f(x_ref)``
  when every path to the outputs passes the layer.
* :class:`LayerLRP`: the LRP relevance arriving at the layer's output (the intermediate
  relevance of the full LRP pass, same rules); on bias-free networks with conserving rules it
  sums to ``f(x)``.
"""

from __future__ import annotations

import torch

from .._batching import accumulate_paths, gradient_batch_size, gradient_strategy
from .._model import flag_nonfinite_outputs
from .._output_selection import resolve_outputs
from .._prepare import encode
from .._validation import BOOLEAN, POSITIVE_INT
from ..layers.base import to_channels_last
from ..propagation import deeplift_backward, lrp_backward, predictions, start_states
from ..rules import resolve_rules
from ._layer_target import TailForward, layer_axis_names, resolve_layer
from .base import _output_space, is_dask_collection, make_attribution, row_index_of
from .deeplift import DeepLift
from .gradient import _COMMON_DOC, gradient_attribution
from .graph_explainer import GraphExplainer
from .lrp import LRP

__all__ = [
    "LayerDeepLift",
    "LayerGradient",
    "LayerIntegratedGradients",
    "LayerLRP",
]

_DOC = _COMMON_DOC.split("    embeddings :")[0]

_LAYER_DOC = """layer : str
        The hidden layer to attribute to: a node of the converted graph (see
        ``explainer.fit(model).graph_.summary()``) or a torch module path as in
        ``model.named_modules()`` (``"features.3"``); an unknown name raises a
        ``ValueError`` listing the valid ones."""


class LayerExplainer(GraphExplainer):
    """Base of the explainers that attribute to a hidden layer (``layer=``).

    Subclasses implement :meth:`_attribute_layer`; :meth:`explain` wraps its result in an
    Attribution whose "inputs" are the layer's activations.
    """

    _parameter_constraints = {**GraphExplainer._parameter_constraints, "layer": [str]}

    def layer_node(self) -> str:
        """The graph node ``layer`` names.

        Available after ``fit`` (and a first ``explain`` when the conversion was deferred).

        Returns
        -------
        str
            The node's name in :attr:`graph_`.
        """
        return resolve_layer(self.graph_, self.layer)

    def explain(self, X: object, output_idx: object = None, output_label: object = None):
        """Attribute the selected outputs to the units of ``layer`` for the samples ``X``.

        Parameters
        ----------
        X : array-like, DataFrame, Tensor or list of those
            Data to explain, ``(n_samples, *input_shape)``.
        output_idx, output_label : optional
            The output nodes, as in :meth:`sknn_explain.Explainer.explain`.

        Returns
        -------
        Attribution
            Values ``(n_samples, *layer_shape, n_outputs)``; ``inputs`` are the layer's
            activations (model layout, channels first), ``layer`` the node name.
        """
        if is_dask_collection(X):
            raise TypeError(f"{type(self).__name__} does not explain dask collections lazily; "
                            "explain the computed blocks (X.compute()) instead")
        self._check_fitted()
        preprocess = self.model_.preprocess
        if preprocess is not None:  # the network's (encoded) inputs; no regrouping
            X, _ = encode(preprocess, X, self.model_.raw_names, "X")
        batch, input_names = self._coerce(X)
        xs = batch.to_tensors(self.dtype_, self.device_)
        # output widths (cached per input shape): the first call per shape runs the model on
        # one row, with a clear error (layout hint) for data the model cannot run
        dims = self._output_dims(batch)
        selection = resolve_outputs(output_idx, output_label, self.model_.output_names(dims))
        target = self.layer_node()
        values, acts, names, preds, goal = self._attribute_layer(
            xs, target, selection, self._batch_size(batch.shapes))
        if names is None:  # attributions to the model input (ExcitationBackprop(layer=None))
            names = input_names[0]
        values = flag_nonfinite_outputs(
            [values], preds, goal, [name for layer in selection.names for name in layer])
        result = make_attribution(
            self.method_name, values, preds, goal, selection, [acts.cpu().numpy()], [names],
            channels_first=self._result_channels_first(),
            goal_description=self._goal_description if goal is not None else None,
        )
        result.output_space = _output_space(self.model_)
        result.row_index = row_index_of(X)
        result.layer = target
        return result

    def _result_channels_first(self) -> bool:
        return True  # hidden values are in the model's layout

    def _attribute(self, xs, selection, batch_size):
        values, _, _, preds, goal = self._attribute_layer(
            xs, self.layer_node(), selection, batch_size)
        return [values], preds, goal

    def _attribute_layer(self, xs, target, selection, batch_size):
        """``(values (n, *layer_shape, K), activations (n, *layer_shape), axis names (None:
        the first model input's), predictions (n, K), goal or None)``."""
        raise NotImplementedError

    # -------------------------------------------------------------- shared helpers
    def _layer_values(self, xs, tail: TailForward, batch_size: int):
        """Activations of the target and the tail's context for all rows, chunked.

        Only the nodes below them run, other values are released as the pass goes
        (:meth:`Graph.forward_values`), and on CPU images / signals run channels-last
        (:func:`~sknn_explain.layers.base.to_channels_last`, as for the gradient family).
        """
        n = xs[0].shape[0]
        names = [tail.target, *tail.context]
        channels_last = gradient_strategy(self.model_, xs)[1]
        acts, ctx = [], []
        for a, b in self._chunks(n, batch_size, type(self).__name__):
            rows = [x[a:b] for x in xs]
            if channels_last:
                rows = [to_channels_last(r) for r in rows]
            values = self._forward_values(rows, names)
            acts.append(values[tail.target])
            ctx.append(tail.context_values(values))
        h = torch.cat(acts)
        context = [torch.cat([c[i] for c in ctx]) for i in range(len(tail.context))]
        return h, context

    def _tail_rows(self, tail, h, context, selection) -> int:
        if self.batch_size is not None:
            return int(self.batch_size)
        return gradient_batch_size(tail, [h, *context], sum(selection.sizes))

    @staticmethod
    def _tail_predict(tail: TailForward, h, context, selection) -> torch.Tensor:
        with torch.no_grad():
            return selection.pick([o.reshape(o.shape[0], -1) for o in tail([h, *context])])


def _path_gradients(explainer, tail, h, context, selection, make_point, n_steps, desc):
    """Mean over steps of ``grad_h f(point) * multiplier`` (:func:`accumulate_paths`)."""
    def rows(si, st):
        point, mult = make_point(si, st)
        return [point, *[c[si] for c in context]], [mult] + [None] * len(context)

    values, _ = accumulate_paths(
        tail, h.shape[0], [tuple(h.shape[1:])] + [tuple(c.shape[1:]) for c in context],
        selection, rows, n_steps=n_steps,
        batch_size=explainer._tail_rows(tail, h, context, selection), dtype=h.dtype,
        device=h.device, verbose=explainer.verbose, desc=desc,
    )
    return values[0]


def _tail_gradients(explainer, tail, h, context, selection):
    """``df/dh`` at the layer's own activation and the selected outputs there, ``(values
    (n, *layer_shape, K), predictions (n, K))``: one forward and backward pass of the tail
    per chunk of rows (:func:`~sknn_explain.explainers.gradient.gradient_attribution`: no
    path to sum)."""
    values, preds, _ = gradient_attribution(
        tail, [h, *context], selection,
        batch_size=explainer._tail_rows(tail, h, context, selection), verbose=explainer.verbose)
    return values[0], preds


class LayerGradient(LayerExplainer):
    __doc__ = f"""Gradient of the outputs with respect to a hidden layer (captum's
    ``LayerGradient``; ``times_input=True``: ``LayerGradientXActivation``).

    ``df/dh`` at ``h = layer(x)``, the network above the layer fed ``h`` (values that
    bypass the layer are those of ``x``). With ``times_input``, ``h * df/dh`` with goal
    ``f(x) - f(x | h := 0)``, met exactly by bias-free ReLU networks above the layer.

    Parameters
    ----------
    layer : str
        {_LAYER_DOC.split(':', 1)[1].strip()}
    times_input : bool, default=False
        Multiply by the layer's activation (Gradient x Activation).
    {_DOC}
    Examples
    --------
    >>> import torch
    >>> from sknn_explain import LayerGradient
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> res = LayerGradient("1", times_input=True).fit(net).explain(torch.randn(5, 4))
    >>> res.values.shape, res.layer
    ((5, 8, 3), 'relu_1')
    """

    method_name = "LayerGradient"
    _goal_description = "f(x) - f(x | layer := 0)"
    _parameter_constraints = {**LayerExplainer._parameter_constraints, "times_input": BOOLEAN}

    def __init__(
        self, layer, times_input=False, *, ignore_last_act=True, channels_first=True,
        dtype="float", device="cpu", batch_size=None, verbose=False, space="network",
    ):
        super().__init__(
            ignore_last_act=ignore_last_act, channels_first=channels_first, dtype=dtype,
            device=device, batch_size=batch_size, verbose=verbose,
        )
        self.layer = layer
        self.times_input = times_input
        self.space = space

    def _attribute_layer(self, xs, target, selection, batch_size):
        tail = TailForward(self.graph_, target)
        h, context = self._layer_values(xs, tail, batch_size)

        values, preds = _tail_gradients(self, tail, h, context, selection)
        if self.times_input:
            values = values * h.unsqueeze(-1)
        goal = None
        if self.times_input:
            goal = preds - self._tail_predict(tail, torch.zeros_like(h), context, selection)
        return values, h, layer_axis_names(target, h.shape[1:]), preds, goal


class LayerIntegratedGradients(LayerExplainer):
    __doc__ = f"""Integrated gradients of a hidden layer (captum's
    ``LayerIntegratedGradients`` with ``method="riemann_right"``).

    Integrates ``df/dh`` along the straight line **in the layer's activation space** from
    ``h_ref = layer(x_ref)`` to ``h = layer(x)`` (right Riemann sum, ``alpha = 1/n, ...,
    1``) and multiplies by ``h - h_ref``, the network above the layer fed the interpolated
    activation (values that bypass the layer are those of ``x``). This is captum's
    definition. The attributions of a sample sum to ``f(x) - f(x | h := h_ref)`` up to the
    discretisation error: ``f(x) - f(x_ref)`` when every path to the outputs passes the
    layer. The baseline ``x_ref`` comes from ``fit(model, X_ref)``: no ``X_ref`` -> zeros,
    one row -> that row, several rows -> their mean.

    Parameters
    ----------
    layer : str
        {_LAYER_DOC.split(':', 1)[1].strip()}
    n : int, default=50
        Riemann steps.
    {_DOC}
    Examples
    --------
    >>> import torch
    >>> from sknn_explain import LayerIntegratedGradients
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    >>> res = LayerIntegratedGradients("0", n=100).fit(net).explain(torch.randn(3, 4))
    >>> bool(abs(res.decomp_sum - res.decomp_goal).max() < 1e-2)
    True
    """

    method_name = "LayerIntegratedGradients"
    _goal_description = "f(x) - f(x | layer := layer(x_ref))"
    _parameter_constraints = {**LayerExplainer._parameter_constraints, "n": POSITIVE_INT}

    def __init__(
        self, layer, n=50, *, ignore_last_act=True, channels_first=True, dtype="float",
        device="cpu", batch_size=None, verbose=False, space="network",
    ):
        super().__init__(
            ignore_last_act=ignore_last_act, channels_first=channels_first, dtype=dtype,
            device=device, batch_size=batch_size, verbose=verbose,
        )
        self.layer = layer
        self.n = n
        self.space = space

    def _fit_reference(self, ref) -> None:
        self.x_ref_ = None if ref is None else [
            t.mean(0, keepdim=True) for t in ref.to_tensors(self.dtype_, self.device_)]

    def _attribute_layer(self, xs, target, selection, batch_size):
        tail = TailForward(self.graph_, target)
        h, context = self._layer_values(xs, tail, batch_size)
        refs = self.x_ref_ if self.x_ref_ is not None else [torch.zeros_like(x[:1]) for x in xs]
        h_ref = self._forward_all(refs)[target]
        n = int(self.n)
        alphas = torch.arange(1, n + 1, dtype=h.dtype, device=h.device) / n

        def point(si, st):
            d = h[si] - h_ref
            return h_ref + alphas[st].reshape(-1, *([1] * (d.ndim - 1))) * d, d

        values = _path_gradients(self, tail, h, context, selection, point, n,
                                 "LayerIntegratedGradients")
        preds = self._tail_predict(tail, h, context, selection)
        base = self._tail_predict(tail, h_ref.expand_as(h), context, selection)
        return values, h, layer_axis_names(target, h.shape[1:]), preds, preds - base


class LayerDeepLift(LayerExplainer, DeepLift):
    __doc__ = f"""DeepLift (Rescale) attributions of a hidden layer (captum's
    ``LayerDeepLift``).

    The DeepLift multipliers arriving at the layer's output (rules as
    :class:`~sknn_explain.DeepLift`, ``rule_name="rescale"``) times ``h(x) - h(x_ref)``.
    They sum exactly to ``f(x) - f(x_ref)`` when every path to the outputs passes the layer
    (otherwise the paths that bypass it carry the rest). The reference as for DeepLift.

    Parameters
    ----------
    layer : str
        {_LAYER_DOC.split(':', 1)[1].strip()}
    winner_takes_all : bool, default=True
        Max pooling rule, as in :class:`~sknn_explain.DeepLift`.
    {_DOC}
    Examples
    --------
    >>> import torch
    >>> from sknn_explain import LayerDeepLift
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    >>> res = LayerDeepLift("1", dtype="double").fit(net).explain(torch.randn(3, 4))
    >>> bool(abs(res.decomp_sum - res.decomp_goal).max() < 1e-10)
    True
    """

    method_name = "LayerDeepLift"
    _goal_description = "f(x) - f(x_ref)"
    _parameter_constraints = {
        **LayerExplainer._parameter_constraints, "winner_takes_all": BOOLEAN,
    }

    def __init__(
        self, layer, winner_takes_all=True, *, ignore_last_act=True, channels_first=True,
        dtype="float", device="cpu", batch_size=None, verbose=False, space="network",
    ):
        self.layer = layer
        self.winner_takes_all = winner_takes_all
        self.ignore_last_act = ignore_last_act
        self.channels_first = channels_first
        self.dtype = dtype
        self.device = device
        self.batch_size = batch_size
        self.verbose = verbose
        self.space = space

    #: captum's LayerDeepLift is Rescale (RevealCancel would need the (m+, m-) pair split)
    rule_name = "rescale"

    def _attribute_layer(self, xs, target, selection, batch_size):
        graph = self.graph_
        refs = self.x_ref_ if self.x_ref_ is not None else [torch.zeros_like(x[:1]) for x in xs]
        vr = self._forward_all(refs)
        n, k = xs[0].shape[0], sum(selection.sizes)
        rows = self._rows_per_chunk(xs, k, batch_size)
        values, acts, preds = [], [], []
        for a, b in self._chunks(n, rows, "LayerDeepLift"):
            vx = self._forward_all([x[a:b] for x in xs])
            start = start_states(graph, vx, selection, fill="one")
            with torch.no_grad():
                m = deeplift_backward(graph, vx, vr, start, rule_name="rescale",
                                      winner_takes_all=bool(self.winner_takes_all),
                                      keep=(target,))[target]
            values.append((m * (vx[target] - vr[target])).movedim(0, -1))
            acts.append(vx[target])
            preds.append(predictions(graph, vx, selection))
        preds = torch.cat(preds)
        h = torch.cat(acts)
        goal = preds - predictions(graph, vr, selection)
        return torch.cat(values), h, layer_axis_names(target, h.shape[1:]), preds, goal


class LayerLRP(LayerExplainer, LRP):
    __doc__ = f"""LRP relevance of a hidden layer: the relevance the full LRP pass (same
    rules as :class:`~sknn_explain.LRP`) assigns to the layer's output units.

    On bias-free networks with conserving rules (``"simple"``, pass-through BatchNorm,
    winner-takes-all max pooling) the relevance of a sample sums to ``f(x)`` at every layer
    that all paths to the outputs pass.

    Parameters
    ----------
    layer : str
        {_LAYER_DOC.split(':', 1)[1].strip()}
    rule_name, rule_param, winner_takes_all, canonize :
        As in :class:`~sknn_explain.LRP` (``"input"`` rules apply to the first layer as
        there: the relevance at a layer is that of the full pass).
    {_DOC}
    Examples
    --------
    >>> import torch
    >>> from sknn_explain import LayerLRP
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8, bias=False), torch.nn.ReLU(),
    ...                           torch.nn.Linear(8, 3, bias=False))
    >>> res = LayerLRP("1").fit(net).explain(torch.randn(5, 4))
    >>> bool(abs(res.decomp_sum - res.decomp_goal).max() < 1e-4)
    True
    """

    method_name = "LayerLRP"
    _goal_description = "f(x)"
    _parameter_constraints = {
        **LRP._parameter_constraints, **LayerExplainer._parameter_constraints,
    }

    def __init__(
        self, layer, rule_name="simple", rule_param=None, winner_takes_all=True,
        canonize=False, *, ignore_last_act=True, channels_first=True, dtype="float",
        device="cpu", batch_size=None, verbose=False, space="network",
    ):
        self.layer = layer
        self.rule_name = rule_name
        self.rule_param = rule_param
        self.winner_takes_all = winner_takes_all
        self.canonize = canonize
        self.ignore_last_act = ignore_last_act
        self.channels_first = channels_first
        self.dtype = dtype
        self.device = device
        self.batch_size = batch_size
        self.verbose = verbose
        self.space = space

    def _attribute_layer(self, xs, target, selection, batch_size):
        graph = self._explained_graph(xs)
        if not any(node.name == target for node in graph.nodes):
            raise ValueError(f"layer {target!r} was merged into its producer by canonize=True; "
                             "choose the Dense / Conv layer before it")
        rules = resolve_rules(self.rule_name, self.rule_param)
        n, k = xs[0].shape[0], sum(selection.sizes)
        rows = self._rows_per_chunk(xs, k, batch_size)
        values, acts, preds = [], [], []
        for a, b in self._chunks(n, rows, "LayerLRP"):
            vx = self._forward_all([x[a:b] for x in xs], graph)
            start = start_states(graph, vx, selection, fill="value")
            with torch.no_grad():
                rel = lrp_backward(graph, vx, start, rules,
                                   winner_takes_all=bool(self.winner_takes_all),
                                   keep=(target,))
            r = rel.get(target)
            if r is None:  # pragma: no cover - resolve_layer keeps nodes that feed outputs
                r = vx[target].new_zeros((k, *vx[target].shape))
            values.append(r.movedim(0, -1))
            acts.append(vx[target])
            preds.append(predictions(graph, vx, selection))
        preds = torch.cat(preds)
        h = torch.cat(acts)
        return torch.cat(values), h, layer_axis_names(target, h.shape[1:]), preds, preds.clone()

