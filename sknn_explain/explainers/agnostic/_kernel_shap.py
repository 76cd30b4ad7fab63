"""Kernel SHAP (Lundberg & Lee, 2017) for any model, natively in numpy / torch."""

from __future__ import annotations

from numbers import Real

import numpy as np
import torch

from ..._data import InputBatch
from ..._model import describe_rows, predict
from ..._random import random_stream
from ..._validation import POSITIVE_INT, Interval, StrOptions
from ._coalitions import MAX_ENUMERATED_FEATURES, StratifiedCoalitions, kernel_shap_coalitions
from ._estimator import AGNOSTIC_DOC, ATTRIBUTES_DOC, AgnosticExplainer, warn_if_long
from ._masking import masked_outputs, nonfinite_perturbations, spread
from ._solvers import constrained_wls, constrained_wls_se, single_threaded_blas

__all__ = ["KernelSHAP"]

#: n_samples="auto" enumerates every coalition up to this many features
MAX_EXACT_FEATURES = 12
#: n_samples="auto" beyond MAX_EXACT_FEATURES: 2 M + this many coalitions (shap's default)
AUTO_EXTRA_COALITIONS = 2048
_LINKS = ("identity", "logit")
_SAMPLINGS = ("shap", "stratified")
#: tol: the first convergence round evaluates 2 M + this many coalitions, each later round
#: doubles the budget (capped by n_samples)
_FIRST_ROUND_EXTRA = 64
#: probabilities are clipped to [eps, 1 - eps] before the logit (finite at 0 and 1)
_LOGIT_EPS = 1e-12
#: rounding slack of the check that link="logit" gets probabilities
_PROBABILITY_SLACK = 1e-9


def _link(t: np.ndarray, link: str, what: str) -> np.ndarray:
    if link == "identity":
        return t
    if t.min() < -_PROBABILITY_SLACK or t.max() > 1 + _PROBABILITY_SLACK:
        raise ValueError(
            f"link='logit' needs probabilities in [0, 1], but the {what} range over "
            f"[{t.min():.4g}, {t.max():.4g}]; explain predict_proba / softmax outputs "
            "(ignore_last_act=False) or use link='identity'"
        )
    p = np.clip(t, _LOGIT_EPS, 1 - _LOGIT_EPS)
    return np.log(p / (1 - p))



class KernelSHAP(AgnosticExplainer):
    __doc__ = f"""Kernel SHAP (Lundberg & Lee, 2017) for any model, natively in numpy / torch.

    ``fit(model, X_ref)`` takes the background data (at most ``limit_ref`` rows are used,
    drawn without replacement with ``random_state`` when ``X_ref`` is larger). A sample's
    attributions are the Shapley values of ``v(S) = mean_b f(x_S, b_rest)`` over the
    background rows ``b`` (interventional, features independent of each other) and sum to
    ``link(f(x)) - link(mean f(background))`` exactly (efficiency).

    With ``M`` features (columns or segments) all ``2^M - 2`` coalitions are evaluated when
    ``n_samples="auto"`` and ``M <= 12``, or when ``n_samples >= 2^M - 2``: the result is
    then the exact Shapley value. Otherwise ``n_samples`` coalitions are enumerated by size
    / sampled in complement pairs as in ``shap.KernelExplainer`` and the efficiency
    constraint is still enforced exactly.

    Parameters
    ----------
    n_samples : "auto" or int, default="auto"
        Coalitions evaluated per sample (each over all background rows). "auto": all when
        ``M <= 12``, else ``2 M + 2048`` (shap's default).
        ``n_samples`` is captum's and shap's name for the model evaluations per sample of
        a perturbation method; the gradient family's ``n`` (innsight's name) counts points
        on a gradient path instead.
    link : {{"identity", "logit"}}, default="identity"
        Scale on which attributions add up; "logit" needs probabilities.
    limit_ref : int or None, default=100
        Maximum number of background rows (innsight's name); None uses all of ``X_ref``.
        The model is evaluated ``n_samples x limit_ref`` times per explained sample.
    sampling : {{"shap", "stratified"}}, default="shap"
        How coalitions are chosen beyond the exact range. "shap": as
        ``shap.KernelExplainer`` (random sizes, repeats raise a weight). "stratified":
        complement pairs drawn without replacement within each subset size, the budget
        split over sizes by their exact kernel mass; lower error for the same number of
        model evaluations, and a standard error per attribution (``standard_error_``).
    tol : float or None, default=None
        With ``sampling="stratified"``: stop adding coalitions once the estimated standard
        error of every attribution (all samples and outputs, on the ``link`` scale) is at
        most ``tol``; ``n_samples`` is then the cap. Rounds start at ``2 M + 64``
        coalitions and double, reusing every evaluation. None: use ``n_samples`` at once.
    {AGNOSTIC_DOC}
    Attributes
    ----------
    data_ref_ : list of Tensor
        The background rows used.
    ref_output_mean_ : list of Tensor
        Mean model output over the background, per output layer.
    standard_error_ : ndarray ``(n, M, n_outputs)`` or None
        Set by each ``explain`` call: the estimated standard error of every feature's
        attribution (delta method over the sampled pairs; 0 when exact); None with
        ``sampling="shap"``.
    n_coalitions_ : int
        Set by each ``explain`` call: the number of coalitions evaluated per sample.
    {ATTRIBUTES_DOC}

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.ensemble import RandomForestRegressor
    >>> from sknn_explain import KernelSHAP
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(60, 4)); y = X[:, 0] + X[:, 1] * X[:, 2]
    >>> forest = RandomForestRegressor(n_estimators=10, random_state=0).fit(X, y)
    >>> res = KernelSHAP().fit(forest, X[:20]).explain(X[:3])
    >>> res.values.shape
    (3, 4, 1)
    >>> bool(np.allclose(res.decomp_sum, res.decomp_goal))
    True
    """

    method_name = "KernelSHAP"
    _parameter_constraints = {
        **AgnosticExplainer._parameter_constraints,
        "n_samples": [StrOptions({"auto"}), *POSITIVE_INT],
        "link": [StrOptions(set(_LINKS))],
        "limit_ref": [*POSITIVE_INT, None],
        "sampling": [StrOptions(set(_SAMPLINGS))],
        "tol": [Interval(Real, 0, None, closed="neither"), None],
    }

    def __init__(
        self, n_samples="auto", link="identity", limit_ref=100, segment_size=None,
        segments=None, random_state=None, *, sampling="shap", tol=None,
        response_method="auto", ignore_last_act=False, channels_first=True, dtype="double",
        device="cpu", batch_size=None, verbose=False,
    ):
        super().__init__(
            ignore_last_act=ignore_last_act, channels_first=channels_first, dtype=dtype,
            device=device, batch_size=batch_size, verbose=verbose,
        )
        self.n_samples = n_samples
        self.link = link
        self.limit_ref = limit_ref
        self.segment_size = segment_size
        self.segments = segments
        self.random_state = random_state
        self.sampling = sampling
        self.tol = tol
        self.response_method = response_method

    @property
    def _goal_description(self) -> str:
        if self.link == "logit":
            return "logit(f(x)) - logit(mean f(X_ref))"
        return "f(x) - mean f(X_ref)"

    def _fit_reference(self, ref: InputBatch) -> None:
        self._fit_features(ref)
        data = ref.to_tensors(self.dtype_, self.device_)
        n_ref = ref.n_samples
        if self.limit_ref is not None and n_ref > self.limit_ref:
            gen = random_stream(self.random_state, 0, 2)
            keep = np.sort(gen.choice(n_ref, size=int(self.limit_ref), replace=False))
            idx = torch.as_tensor(keep, device=self.device_)
            data = [d[idx] for d in data]
        outs = predict(self.model_, data, self._batch_size(ref.shapes))
        bad = torch.zeros(data[0].shape[0], dtype=torch.bool, device=outs[0].device)
        for o in outs:
            bad |= ~torch.isfinite(o).all(1)
        if bool(bad.any()):
            rows = torch.nonzero(bad).flatten().cpu().numpy()
            if self.limit_ref is not None and n_ref > self.limit_ref:
                rows = keep[rows]  # rows of the user's X_ref
            raise ValueError(
                f"the model returned NaN/inf for rows {describe_rows(rows)} of X_ref (the "
                "background data), so every expected value would be NaN; drop those rows"
            )
        self.data_ref_ = data
        self.ref_output_mean_ = [o.to(torch.float64).mean(0) for o in outs]
        self._remember_output_dims(ref.shapes, outs)

    def _budget(self, m: int) -> int:
        if isinstance(self.n_samples, str):
            return 2**m if m <= MAX_EXACT_FEATURES else 2 * m + AUTO_EXTRA_COALITIONS
        budget = int(self.n_samples)
        if (m > MAX_ENUMERATED_FEATURES or budget < 2**m - 2) and budget < m:
            raise ValueError(
                f"n_samples={budget} coalitions cannot determine {m} feature attributions; "
                f"use n_samples >= {m} (or fewer features via segment_size / segments)"
            )
        return budget

    def _exact(self, m: int, budget: int) -> bool:
        return m <= MAX_ENUMERATED_FEATURES and budget >= 2**m - 2

    def _attribute(self, xs, selection, batch_size):
        if self.tol is not None and self.sampling != "stratified":
            raise ValueError("tol needs sampling='stratified' (shap's sampling has no "
                             "standard error to stop on)")
        self._check_native_values(xs)
        fmap, m = self.feature_map_, self.n_segments_
        n = xs[0].shape[0]
        preds = selection.pick(predict(self.model_, xs, batch_size))
        fx = _link(preds.to(torch.float64).cpu().numpy(), self.link, "model outputs")
        mean_ref = selection.pick([o.reshape(1, -1) for o in self.ref_output_mean_])
        e0 = _link(mean_ref.cpu().numpy()[0], self.link, "mean background outputs")
        delta = fx - e0[None, :]
        k = delta.shape[1]
        se = None if self.sampling == "shap" else np.zeros((n, m, k))
        self.n_coalitions_ = 0
        if m == 1:
            phi = delta[:, None, :]
        else:
            budget = self._budget(m)
            n_bg = self.data_ref_[0].shape[0]
            n_z = 2**m - 2 if self._exact(m, budget) else budget  # tol: at most budget
            warn_if_long(n * n_z * n_bg, "KernelSHAP",
                         f"{n} rows x {n_z} coalitions x {n_bg} background rows",
                         self.verbose)
            def solve(z, w, v):
                bad = nonfinite_perturbations(v, fx, selection)
                y = _link(v, self.link, "model outputs") - e0[None, None, :]
                y = np.where(bad[:, None, :], 0.0, y)  # solved apart, then NaN
                y = y.transpose(1, 0, 2).reshape(len(z), n * k)
                total = np.where(bad, 0.0, delta).reshape(-1)
                return constrained_wls(z, w, y, total), y, bad

            def evaluate(z):
                return masked_outputs(
                    self.model_, xs, fmap, z, self.data_ref_, selection, batch_size,
                    verbose=self.verbose, desc="KernelSHAP",
                ).cpu().numpy()

            gen = random_stream(self.random_state, 1, 2)
            if self.sampling == "shap" or self._exact(m, budget):
                z, w, _ = kernel_shap_coalitions(m, budget, gen)
                phi, _, bad = solve(z, w, evaluate(z))
                self.n_coalitions_ = len(z)
            else:
                phi, stat_se, bad = self._stratified(m, budget, gen, evaluate, solve)
                se = stat_se.reshape(m, n, k).transpose(1, 0, 2)
            phi = phi.reshape(m, n, k).transpose(1, 0, 2)
            phi[np.broadcast_to(bad[:, None, :], phi.shape)] = np.nan
            if se is not None:
                se[np.broadcast_to(bad[:, None, :], se.shape)] = np.nan
        self.standard_error_ = se
        values = spread(phi, fmap, [tuple(x.shape[1:]) for x in xs], xs[0])
        goal = torch.as_tensor(delta, dtype=xs[0].dtype, device=xs[0].device)
        return values, preds, goal

    def _stratified(self, m, budget, gen, evaluate, solve):
        """Stratified paired sampling, in doubling rounds until ``tol`` is met."""
        sampler = StratifiedCoalitions(m, budget, gen)
        if self.tol is None:
            rounds = [budget]
        else:
            rounds, b = [], min(budget, 2 * m + _FIRST_ROUND_EXTRA)
            while b < budget:
                rounds.append(b)
                b *= 2
            rounds.append(budget)
        done = np.zeros(len(sampler.sizes), dtype=np.int64)
        vs = [None] * len(done)  # per stratum: outputs on its pairs so far, (n, 2 done, K)
        for b in rounds:
            # never fewer pairs than already evaluated (rounding may give a stratum one
            # pair fewer at a larger budget)
            counts = np.maximum(sampler.counts(b), done)
            grow = [i for i in range(len(done)) if counts[i] > done[i]]
            if grow:  # evaluate only the pairs new in this round, in one pass
                new = [sampler.pair_rows(i, done[i], counts[i]) for i in grow]
                v_new = evaluate(np.vstack(new))
                at = 0
                for i, rows in zip(grow, new):
                    part = v_new[:, at:at + len(rows)]
                    at += len(rows)
                    vs[i] = part if vs[i] is None else np.concatenate([vs[i], part], 1)
                done = counts
            z, w, strata = sampler.rows(done)  # the same rows, stratum by stratum
            v = np.concatenate([vs[i] for i in range(len(done)) if done[i] > 0], 1)
            with single_threaded_blas():  # one limit for both solves
                phi, y, bad = solve(z, w, v)
                se = constrained_wls_se(z, w, y, phi, strata, done / sampler.population)
            if self.tol is not None:
                worst = se.reshape(m, *bad.shape)[:, ~bad]
                if worst.size == 0 or float(worst.max()) <= self.tol:
                    break
        self.n_coalitions_ = len(z)
        return phi, se, bad
