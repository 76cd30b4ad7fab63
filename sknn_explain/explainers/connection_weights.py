"""Connection Weights (Olden et al., 2004): global importance from the weights alone."""

from __future__ import annotations

import numpy as np
import torch

from .._data import default_axis_names
from .._model import call_forward
from .._output_selection import resolve_outputs
from .._validation import BOOLEAN
from ..attribution import Attribution
from ..convert.graph import input_name
from ..propagation import connection_weights_backward, predictions, start_states
from .base import group_result, make_attribution
from .gradient import _COMMON_DOC
from .graph_explainer import GraphExplainer

__all__ = ["ConnectionWeights"]


class ConnectionWeights(GraphExplainer):
    __doc__ = f"""Connection Weights: sum over paths of the products of the weights.

    The global importance of input feature ``i`` for output ``k`` is the sum, over every
    path from ``i`` to ``k``, of the product of the weights along it: the network's
    transpose with activations as identity and biases dropped (see
    :mod:`sknn_explain.propagation.weights`). No data is needed: ``explain()`` without
    ``X`` returns the global result as a single pseudo-sample (inputs and predictions NaN).
    With ``X``, every sample gets the global weights (``times_input=False``) or the
    weights times its input values (``times_input=True``, the local variant).

    Parameters
    ----------
    times_input : bool, default=False
        Multiply the global weights by the input values (needs ``X``).
    {_COMMON_DOC}
    Examples
    --------
    >>> import torch
    >>> from sknn_explain import ConnectionWeights
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> cw = ConnectionWeights().fit(net).explain()
    >>> cw.values.shape
    (1, 4, 3)
    >>> product = (net[2].weight @ net[0].weight).T.detach()
    >>> bool(torch.allclose(torch.from_numpy(cw.values[0]), product, atol=1e-5))
    True
    """

    method_name = "ConnectionWeights"
    _parameter_constraints = {**GraphExplainer._parameter_constraints, "times_input": BOOLEAN}

    def __init__(
        self, times_input=False, *, ignore_last_act=True, channels_first=True, dtype="float",
        device="cpu", batch_size=None, verbose=False, space="network",
    ):
        self.times_input = times_input
        self.ignore_last_act = ignore_last_act
        self.channels_first = channels_first
        self.dtype = dtype
        self.device = device
        self.batch_size = batch_size
        self.verbose = verbose
        self.space = space

    def _global_weights(self, probe, selection):
        """Per input ``(1, *shape, K)`` path-weight sums (``probe``: one row per input)."""
        graph = self.graph_
        values = self._forward_all(probe)
        start = start_states(graph, values, selection, fill="one")
        with torch.no_grad():
            w = connection_weights_backward(graph, values, start)
        k = sum(selection.sizes)
        return [
            w[input_name(i)].movedim(0, -1) if input_name(i) in w
            else p.new_zeros((*p.shape, k))
            for i, p in enumerate(probe)
        ]

    def explain(self, X: object = None, output_idx: object = None,
                output_label: object = None) -> Attribution:
        """Global Connection Weights (``X=None``) or per-sample ones for ``X``.

        Parameters
        ----------
        X : array-like, DataFrame, Tensor or list of those, optional
            Without ``X`` the global importances come back as one pseudo-sample,
            ``(1, *input_shape, n_outputs)``, with NaN inputs and predictions.
        output_idx, output_label : optional
            As in :meth:`Explainer.explain`.

        Returns
        -------
        Attribution
        """
        if X is not None:
            return super().explain(X, output_idx, output_label)
        self._check_fitted()
        if self.times_input:
            raise ValueError("ConnectionWeights(times_input=True) needs data: call explain(X)")
        # known from fit, or from a conversion finished by an earlier explain(X)
        shapes = self.input_shapes_ or self.model_.input_shapes
        if shapes is None:
            raise ValueError(
                "the input shape is unknown: fit with X_ref, use a graph with input_shapes, "
                "or call explain(X)"
            )
        shapes = [tuple(s) for s in shapes]
        probe = [torch.zeros((1, *s), dtype=self.dtype_, device=self.device_) for s in shapes]
        with torch.no_grad():
            dims = [o.shape[1] for o in call_forward(self.model_, probe)]
        selection = resolve_outputs(output_idx, output_label, self.model_.output_names(dims))
        weights = self._global_weights(probe, selection)
        k = sum(selection.sizes)
        preds = torch.full((1, k), float("nan"), dtype=self.dtype_)
        names = self.input_names_ or [default_axis_names(s) for s in shapes]
        inputs = [np.full((1, *s), np.nan) for s in shapes]
        result = make_attribution(
            self.method_name, weights, preds, None, selection, inputs, names,
            channels_first=self.channels_first,
        )
        if self.model_.preprocess is not None:  # summed per original column
            result = group_result(self.model_, result, np.full(
                (1, len(self.model_.raw_names)), np.nan, dtype=object))
        result.input_space = getattr(self, "input_space_", None)
        return result

    def _attribute(self, xs, selection, batch_size):
        weights = self._global_weights([x[:1] for x in xs], selection)
        n = xs[0].shape[0]
        preds = torch.cat([
            predictions(self.graph_, self._forward_all([x[a:a + batch_size] for x in xs]),
                        selection)
            for a in range(0, n, batch_size)
        ])
        if self.times_input:
            values = [w * x.unsqueeze(-1) for w, x in zip(weights, xs)]
        else:
            values = [w.expand(n, *w.shape[1:]).clone() for w in weights]
        return values, preds, None
