"""DeepLift (Shrikumar et al., 2017) and DeepSHAP (Lundberg & Lee, 2017) explainers."""

from __future__ import annotations

import numpy as np
import torch

from .._data import InputBatch
from .._validation import BOOLEAN, POSITIVE_INT, RANDOM_STATE, StrOptions
from ..convert.graph import input_name
from ..propagation import deeplift_backward, id_inputs, predictions, start_states
from .base import random_streams
from .gradient import _COMMON_DOC
from .graph_explainer import GraphExplainer

__all__ = ["DeepLift", "DeepSHAP"]

DEEPLIFT_RULES = ("rescale", "reveal_cancel")


class _DeepLiftBase(GraphExplainer):
    _parameter_constraints = {
        **GraphExplainer._parameter_constraints,
        "rule_name": [StrOptions(set(DEEPLIFT_RULES))],
        "winner_takes_all": BOOLEAN,
    }

    def _contributions(self, vx, vr, xs, refs, selection):
        """``m * (x - ref)`` per input, ``(rows, *shape, K)``."""
        start = start_states(self.graph_, vx, selection, fill="one")
        with torch.no_grad():
            mult = deeplift_backward(
                self.graph_, vx, vr, start, rule_name=self.rule_name,
                winner_takes_all=bool(self.winner_takes_all),
            )
        k = sum(selection.sizes)
        out = []
        for i, (x, r) in enumerate(zip(xs, refs)):
            m = mult.get(input_name(i))
            if m is None:  # an input the selected outputs do not use
                out.append(x.new_zeros((*x.shape, k)))
            else:
                out.append((m * (x - r)).movedim(0, -1))
        return out


class DeepLift(_DeepLiftBase):
    __doc__ = f"""DeepLift: attributions that sum exactly to ``f(x) - f(x_ref)``.

    Multipliers are propagated from the outputs to the inputs through the layer graph
    (rules per layer: :mod:`sknn_explain.propagation.deeplift`) and multiplied by
    ``x - x_ref``. The reference comes from ``fit(model, X_ref)``: no ``X_ref`` -> zeros,
    one row -> that row, several rows -> their mean.

    Parameters
    ----------
    rule_name : {{"rescale", "reveal_cancel"}}, default="rescale"
        Rule for the activations (Rescale is captum's and shap's DeepLift).
    winner_takes_all : bool, default=True
        Max pooling: captum's exact rule (differences routed to the maxima of ``x`` and
        ``x_ref``); False spreads them as an average pooling (innsight's variant).
    {_COMMON_DOC}
    Examples
    --------
    >>> import torch
    >>> from sknn_explain import DeepLift
    >>> _ = torch.manual_seed(0)
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    >>> dl = DeepLift(dtype="double").fit(net, torch.randn(1, 4))
    >>> res = dl.explain(torch.randn(5, 4))
    >>> res.values.shape
    (5, 4, 3)
    >>> bool(abs(res.decomp_sum - res.decomp_goal).max() < 1e-10)
    True
    """

    method_name = "DeepLift"
    _goal_description = "f(x) - f(x_ref)"

    def __init__(
        self, rule_name="rescale", winner_takes_all=True, *, ignore_last_act=True,
        channels_first=True, dtype="float", device="cpu", batch_size=None, verbose=False,
        space="network",
    ):
        self.rule_name = rule_name
        self.winner_takes_all = winner_takes_all
        self.ignore_last_act = ignore_last_act
        self.channels_first = channels_first
        self.dtype = dtype
        self.device = device
        self.batch_size = batch_size
        self.verbose = verbose
        self.space = space

    def _fit_reference(self, ref: InputBatch | None) -> None:
        if ref is None:
            self.x_ref_ = None
        else:
            self.x_ref_ = [
                t.mean(0, keepdim=True) for t in ref.to_tensors(self.dtype_, self.device_)
            ]

    def _attribute(self, xs, selection, batch_size):
        graph = self.graph_
        if self.x_ref_ is None and id_inputs(graph):  # never silently explain against id 0
            raise ValueError("the model reads ids through nn.Embedding: DeepLift needs an "
                             "explicit baseline; fit with X_ref = one row of baseline ids "
                             "(e.g. the padding index)")
        refs = self.x_ref_ if self.x_ref_ is not None else [torch.zeros_like(x[:1]) for x in xs]
        vr = self._forward_all(refs)
        ref_pred = predictions(graph, vr, selection)
        n, k = xs[0].shape[0], sum(selection.sizes)
        batch_size = self._rows_per_chunk(xs, k, batch_size)
        values = [x.new_zeros((n, *x.shape[1:], k)) for x in xs]
        preds = xs[0].new_zeros((n, k))
        for a, b in self._chunks(n, batch_size, "DeepLift"):
            chunk = [x[a:b] for x in xs]
            vx = self._forward_all(chunk)
            for out, c in zip(values, self._contributions(vx, vr, chunk, refs, selection)):
                out[a:b] = c
            preds[a:b] = predictions(graph, vx, selection)
        return values, preds, preds - ref_pred


class DeepSHAP(_DeepLiftBase):
    __doc__ = f"""DeepSHAP: DeepLift averaged over references drawn from ``X_ref``.

    ``fit(model, X_ref)`` requires ``X_ref``; when it has more than ``limit_ref`` rows, a
    random subset of ``limit_ref`` rows (without replacement, seeded by ``random_state``)
    is kept. Every sample is explained against every kept reference and the DeepLift
    attributions are averaged, so they sum exactly to ``f(x) - mean f(references)``.
    The samples x references rows are processed ``batch_size`` at a time.

    Parameters
    ----------
    limit_ref : int, default=100
        Maximum number of references.
    rule_name : {{"rescale", "reveal_cancel"}}, default="rescale"
        DeepLift rule for the activations (Rescale is captum's DeepLiftShap and shap's
        DeepExplainer).
    winner_takes_all : bool, default=True
        Max pooling rule, as in :class:`DeepLift`.
    random_state : int, RandomState, Generator or None
        Seed of the reference subset.
    {_COMMON_DOC}
    Examples
    --------
    >>> import torch
    >>> from sknn_explain import DeepSHAP
    >>> _ = torch.manual_seed(0)
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> shap = DeepSHAP(limit_ref=20, random_state=0).fit(net, torch.randn(50, 4))
    >>> res = shap.explain(torch.randn(3, 4))
    >>> res.values.shape
    (3, 4, 3)
    >>> bool(abs(res.decomp_sum - res.decomp_goal).max() < 1e-4)
    True
    """

    method_name = "DeepSHAP"
    _requires_reference = True
    _goal_description = "f(x) - mean f(X_ref)"
    _parameter_constraints = {
        **_DeepLiftBase._parameter_constraints,
        "limit_ref": POSITIVE_INT,
        "random_state": RANDOM_STATE,
    }

    def __init__(
        self, limit_ref=100, rule_name="rescale", winner_takes_all=True, random_state=None, *,
        ignore_last_act=True, channels_first=True, dtype="float", device="cpu",
        batch_size=None, verbose=False, space="network",
    ):
        self.limit_ref = limit_ref
        self.rule_name = rule_name
        self.winner_takes_all = winner_takes_all
        self.random_state = random_state
        self.ignore_last_act = ignore_last_act
        self.channels_first = channels_first
        self.dtype = dtype
        self.device = device
        self.batch_size = batch_size
        self.verbose = verbose
        self.space = space

    def _fit_reference(self, ref: InputBatch) -> None:
        data = ref.to_tensors(self.dtype_, self.device_)
        n_ref = data[0].shape[0]
        if n_ref > self.limit_ref:
            (gen,) = random_streams(self.random_state, 1)
            keep = np.sort(gen.choice(n_ref, size=int(self.limit_ref), replace=False))
            idx = torch.as_tensor(keep, device=self.device_)
            data = [d[idx] for d in data]
            self.ref_indices_ = keep
        else:
            self.ref_indices_ = np.arange(n_ref)
        self.data_ref_ = data

    def _attribute(self, xs, selection, batch_size):
        graph = self.graph_
        refs = self.data_ref_
        n_ref = refs[0].shape[0]
        ref_mean = predictions(graph, self._forward_all(refs), selection).mean(0, keepdim=True)
        n, k = xs[0].shape[0], sum(selection.sizes)
        batch_size = self._rows_per_chunk(xs, k, batch_size)
        values = [x.new_zeros((n, *x.shape[1:], k)) for x in xs]
        total = n * n_ref
        device = xs[0].device
        for a, b in self._chunks(total, batch_size, "DeepSHAP"):
            rows = torch.arange(a, b, device=device)
            si = torch.div(rows, n_ref, rounding_mode="floor")
            rj = rows - si * n_ref
            xr = [x[si] for x in xs]
            rr = [r[rj] for r in refs]
            both = self._forward_all([torch.cat([u, v]) for u, v in zip(xr, rr)])
            m = b - a
            vx = {name: v[:m] for name, v in both.items()}
            vr = {name: v[m:] for name, v in both.items()}
            for out, c in zip(values, self._contributions(vx, vr, xr, rr, selection)):
                out.index_add_(0, si, c)
        for out in values:
            out.div_(n_ref)
        preds = self._predict_graph(xs, selection, batch_size)
        return values, preds, preds - ref_mean

    def _predict_graph(self, xs, selection, batch_size):
        n = xs[0].shape[0]
        outs = [
            predictions(self.graph_, self._forward_all([x[a:a + batch_size] for x in xs]),
                        selection)
            for a in range(0, n, batch_size)
        ]
        return torch.cat(outs)
