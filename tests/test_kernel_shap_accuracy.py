"""Kernel SHAP accuracy: stratified paired sampling, standard errors, convergence (#20)."""

from __future__ import annotations

from math import factorial

import numpy as np
import pytest

from sknn_explain import KernelSHAP
from sknn_explain.explainers.agnostic._coalitions import StratifiedCoalitions

M = 10
_RNG = np.random.default_rng(0)
_W1 = _RNG.normal(size=(M, 8))
_W2 = _RNG.normal(size=(8, 2))
X = _RNG.normal(size=(3, M))
BACKGROUND = _RNG.normal(size=(4, M))


def model(a: np.ndarray) -> np.ndarray:
    """A small non-additive model with two outputs (interactions of every order)."""
    return np.tanh(a @ _W1) @ _W2


def brute_force_shapley(x: np.ndarray) -> np.ndarray:
    """``(M, 2)`` interventional Shapley values by enumerating all 2^M coalitions."""
    bits = ((np.arange(2**M)[:, None] >> np.arange(M)) & 1).astype(bool)
    rows = np.where(bits[:, None, :], x, BACKGROUND[None])
    v = model(rows.reshape(-1, M)).reshape(2**M, len(BACKGROUND), -1).mean(1)
    size = bits.sum(1)
    weight = np.array([factorial(s) * factorial(M - s - 1) / factorial(M) for s in range(M)])
    codes = np.arange(2**M)
    phi = np.empty((M, v.shape[1]))
    for i in range(M):
        without = codes[~bits[:, i]]
        phi[i] = (weight[size[without], None] * (v[without | (1 << i)] - v[without])).sum(0)
    return phi


EXACT = np.stack([brute_force_shapley(x) for x in X])  # (n, M, 2)


def _explain(**kw):
    explainer = KernelSHAP(limit_ref=None, **kw).fit(model, BACKGROUND)
    return explainer, np.asarray(explainer.explain(X).values)


def _rmse(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean((values - EXACT) ** 2)))


def test_error_decreases_with_budget_and_beats_shap_sampling():
    err = {}
    for sampling in ("shap", "stratified"):
        err[sampling] = [
            np.mean([_rmse(_explain(n_samples=ns, random_state=s, sampling=sampling)[1])
                     for s in range(8)])
            for ns in (40, 160, 640)
        ]
    strat = err["stratified"]
    assert strat[0] > strat[1] > strat[2]
    assert all(a < b for a, b in zip(strat, err["shap"]))  # same evaluations, lower error


def test_efficiency_exact_with_stratified_sampling():
    explainer = KernelSHAP(n_samples=100, limit_ref=None, random_state=3, sampling="stratified")
    res = explainer.fit(model, BACKGROUND).explain(X)
    np.testing.assert_allclose(res.decomp_sum, res.decomp_goal, atol=1e-12)
    assert explainer.n_coalitions_ == 100


def test_standard_error_is_calibrated():
    inside = []
    for seed in range(50):
        explainer, values = _explain(n_samples=200, random_state=seed, sampling="stratified")
        inside.append(np.abs(values - EXACT) <= 2 * explainer.standard_error_)
    assert np.mean(inside) >= 0.9


def test_tol_stops_at_the_stated_accuracy():
    tol = 0.04  # the attributions range over about +-4
    explainer, values = _explain(n_samples=1000, random_state=0, sampling="stratified", tol=tol)
    assert explainer.n_coalitions_ < 1000  # stopped early
    assert explainer.standard_error_.max() <= tol
    assert np.abs(values - EXACT).max() <= 4 * tol


def test_exact_mode_unchanged_by_sampling():
    _, shap_values = _explain(n_samples=2**M, random_state=0)
    explainer, strat_values = _explain(n_samples=2**M, random_state=0, sampling="stratified")
    np.testing.assert_array_equal(shap_values, strat_values)
    np.testing.assert_allclose(strat_values, EXACT, atol=1e-10)
    assert not explainer.standard_error_.any()


def test_default_sampling_numbers_pinned():
    """sampling="shap" (default) and tol=None draw exactly the coalitions they drew before."""
    explainer, values = _explain(n_samples=60, random_state=0)
    assert explainer.standard_error_ is None
    # computed with the code before sampling / tol existed (commit f48a7db)
    pinned = np.array([-0.0976029978, -0.8597544025, 0.0426759403, -0.468862533, -0.0046198006])
    np.testing.assert_allclose(values[0, :5, 0], pinned, atol=1e-9)


def test_tol_needs_stratified_sampling():
    with pytest.raises(ValueError, match="tol needs sampling='stratified'"):
        _explain(n_samples=60, tol=1e-3)


def test_stratified_coalitions_nested_and_unbiased_weights():
    sampler = StratifiedCoalitions(12, 800, np.random.default_rng(0))
    small, large = sampler.counts(300), sampler.counts(800)
    assert (small <= large).all() and 2 * large.sum() == 800
    z, w, strata = sampler.take(300)
    assert len(np.unique(np.packbits(z, axis=1), axis=0)) == len(z)  # no repeats
    for s in np.unique(strata):  # every stratum carries its exact kernel mass
        np.testing.assert_allclose(w[strata == s].sum(), sampler.mass[s] / sampler.mass[
            np.unique(strata)].sum())
