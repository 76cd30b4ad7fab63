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


def brute_force_shapley(x: np.ndarray, f=model) -> np.ndarray:
    """``(M, 2)`` interventional Shapley values by enumerating all 2^M coalitions."""
    bits = ((np.arange(2**M)[:, None] >> np.arange(M)) & 1).astype(bool)
    rows = np.where(bits[:, None, :], x, BACKGROUND[None])
    v = f(rows.reshape(-1, M)).reshape(2**M, len(BACKGROUND), -1).mean(1)
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


def test_stratified_draws_distinct_subsets_of_each_size():
    """All strata drawn in one call (rejection path): every stratum holds distinct subsets
    of its size, in the self-paired stratum the one without the last feature, and the
    pairs of a smaller budget are a prefix of a larger one's."""
    m = 20
    sampler = StratifiedCoalitions(m, 700, np.random.default_rng(3))
    z, _, strata = sampler.take(700)
    half, st = z[0::2], strata[0::2]
    assert len(np.unique(np.packbits(half, axis=1), axis=0)) == len(half)
    np.testing.assert_array_equal(half.sum(1), sampler.sizes[st])
    assert not half[sampler.sizes[st] == m // 2, -1].any()
    np.testing.assert_array_equal(z[1::2], ~half)
    small, _, small_strata = sampler.take(300)
    for s in np.unique(small_strata):
        c = sampler.counts(300)[s]
        np.testing.assert_array_equal(small[0::2][small_strata[0::2] == s], half[st == s][:c])


@pytest.mark.parametrize("one_product", [True, False])
def test_standard_error_matches_the_per_pair_formula(one_product, monkeypatch):
    """constrained_wls_se's rank-one shortcut equals the delta-method sum over pairs (both
    ways of summing per stratum: one product over a stratum indicator, or per stratum)."""
    from sknn_explain.explainers.agnostic import _solvers
    from sknn_explain.explainers.agnostic._solvers import constrained_wls, constrained_wls_se

    if not one_product:
        monkeypatch.setattr(_solvers, "_ONE_PRODUCT_MOMENTS", 0)
    rng = np.random.default_rng(5)
    sampler = StratifiedCoalitions(9, 160, rng)
    z, w, strata = sampler.take(160)
    y = rng.normal(size=(len(z), 4))
    phi = constrained_wls(z, w, y, rng.normal(size=4))
    covered = sampler.counts(160) / sampler.population
    zf = z.astype(float)
    inv = np.linalg.inv(zf.T @ (w[:, None] * zf))
    one = inv.sum(1)
    proj = inv - np.outer(one, one) / one.sum()
    resid = w[:, None] * (y - zf @ phi)
    h = zf[0::2, :, None] * resid[0::2, None, :] + zf[1::2, :, None] * resid[1::2, None, :]
    q = np.einsum("im,jmt->jit", proj, h)  # (pairs, M, T)
    var = np.zeros(phi.shape)
    for s in np.unique(strata):
        qs = q[strata[0::2] == s]
        if covered[s] < 1 and len(qs) > 1:
            var += len(qs) * (1 - covered[s]) * qs.var(0, ddof=1)
        elif covered[s] < 1:
            var += (1 - covered[s]) * qs[0] ** 2
    np.testing.assert_allclose(constrained_wls_se(z, w, y, phi, strata, covered), np.sqrt(var),
                               rtol=1e-9, atol=1e-15)


def test_gram_inverse_is_the_pseudo_inverse():
    """The plain inverse where it is one, the pseudo-inverse of a singular Gram matrix."""
    from sknn_explain.explainers.agnostic._solvers import _gram_inverse

    rng = np.random.default_rng(0)
    z = (rng.random((48, 16)) > 0.5).astype(float)
    w = rng.random(48)
    for rows in (48, 8):  # full rank; rank <= 8 (fewer coalitions than features)
        gram = z[:rows].T @ (w[:rows, None] * z[:rows])
        np.testing.assert_allclose(_gram_inverse(gram), np.linalg.pinv(gram), rtol=1e-10,
                                   atol=1e-10 * np.abs(np.linalg.pinv(gram)).max())


def test_torch_models_run_as_their_private_copy_without_conversion():
    """Kernel SHAP / LIME only need outputs: no layer graph unless ignore_last_act=True."""
    import torch
    from torch import nn

    from sknn_explain import LIME
    from sknn_explain.convert import GraphModel

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(M, 8), nn.Tanh(), nn.Dropout(0.5), nn.Linear(8, 2),
                        nn.Softmax(dim=1)).double()
    net.train()  # dropout on: the private copy must run in eval mode
    for cls in (KernelSHAP, LIME):
        explainer = cls(random_state=0).fit(net, BACKGROUND)
        assert not isinstance(explainer.model_, GraphModel)
        assert explainer.model_.module is not net and not explainer.model_.module.training
        res = explainer.explain(X)
        with torch.no_grad():
            expected = net.eval()(torch.as_tensor(X)).numpy()
        net.train()
        np.testing.assert_allclose(res.predictions, expected, rtol=0, atol=1e-15)
        assert net.training and all(p.requires_grad for p in net.parameters())
    logits = KernelSHAP(random_state=0, ignore_last_act=True).fit(net, BACKGROUND)
    assert isinstance(logits.model_, GraphModel)  # the graph finds the last activation


def test_exact_range_gives_exact_shapley_values_for_a_torch_model():
    import torch
    from torch import nn

    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(M, 8), nn.Tanh(), nn.Linear(8, 2)).double()

    def f(a):
        with torch.no_grad():
            return net(torch.as_tensor(a)).numpy()

    exact = np.stack([brute_force_shapley(x, f) for x in X])
    for sampling in ("shap", "stratified"):
        explainer = KernelSHAP(limit_ref=None, sampling=sampling).fit(net, BACKGROUND)
        np.testing.assert_allclose(explainer.explain(X).values, exact, atol=1e-12)
        assert explainer.n_coalitions_ == 2**M - 2
