"""Tests of the model-agnostic explainers LIME and KernelSHAP.

References: exact Shapley values by brute force from the definition (interventional value
function over an independent background), ``shap.KernelExplainer`` and
``sklearn.linear_model.Ridge`` fitted on the same perturbations.
"""

from __future__ import annotations

import copy
import itertools
import math
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sknn_explain._segmentation import build_feature_map, grid_segments
from sknn_explain.explainers.agnostic import (
    LIME,
    KernelSHAP,
    kernel_shap_coalitions,
    lime_perturbations,
    weighted_ridge,
)
from sknn_explain.explainers.base import random_streams

torch.set_num_threads(1)


# ---------------------------------------------------------------------------- helpers
def brute_force_shapley(f, x, background, labels=None):
    """Exact Shapley values of v(S) = mean_b f(x_S, b_rest), straight from the definition.

    ``x`` (P,), ``background`` (nb, P) flattened; ``labels`` (P,) maps elements to players.
    Returns ``(M, K)``.
    """
    p = x.shape[0]
    labels = np.arange(p) if labels is None else np.asarray(labels)
    m = labels.max() + 1
    value = {}
    for r in range(m + 1):
        for subset in itertools.combinations(range(m), r):
            on = np.isin(labels, subset)
            rows = np.where(on[None, :], x[None, :], background)
            value[subset] = np.asarray(f(rows), dtype=np.float64).reshape(len(rows), -1).mean(0)
    phi = np.zeros((m, len(value[()])))
    for i in range(m):
        others = [j for j in range(m) if j != i]
        for r in range(m):
            for subset in itertools.combinations(others, r):
                weight = math.factorial(r) * math.factorial(m - r - 1) / math.factorial(m)
                with_i = tuple(sorted((*subset, i)))
                phi[i] += weight * (value[with_i] - value[subset])
    return phi


def vectorised_exact_shapley(f, x, background, m):
    """Same definition, vectorised over all 2^M coalitions (for M up to ~14)."""
    codes = np.arange(2**m)
    z = ((codes[:, None] >> np.arange(m)) & 1).astype(bool)
    rows = np.where(z[:, None, :], x[None, None, :], background[None])
    v = np.asarray(f(rows.reshape(-1, m))).reshape(2**m, len(background), -1).mean(1)
    size = z.sum(1)
    phi = np.zeros((m, v.shape[1]))
    for i in range(m):
        without = ~z[:, i]
        s = size[without]
        w = np.array([math.factorial(k) * math.factorial(m - k - 1) / math.factorial(m) for k in s])
        phi[i] = (w[:, None] * (v[codes[without] | (1 << i)] - v[codes[without]])).sum(0)
    return phi


def torch_fn(module):
    def f(a):
        with torch.no_grad():
            return module(torch.as_tensor(a, dtype=torch.float64)).numpy()

    return f


def make_mlp(n_in, n_out=2, seed=0, hidden=8):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(n_in, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, n_out)
    ).double()


@pytest.fixture(scope="module")
def tabular():
    rng = np.random.default_rng(0)
    return rng.normal(size=(4, 5)), rng.normal(size=(7, 5))


# ---------------------------------------------------------------------------- Kernel SHAP
def test_kernelshap_equals_brute_force_shapley_torch(tabular):
    X, B = tabular
    net = make_mlp(5)
    res = KernelSHAP().fit(net, B).explain(X)
    expected = np.stack([brute_force_shapley(torch_fn(net), x, B) for x in X])
    assert res.values.shape == (4, 5, 2)
    assert np.abs(res.values - expected).max() < 1e-6
    f = torch_fn(net)
    np.testing.assert_allclose(res.predictions, f(X), atol=1e-12)
    np.testing.assert_allclose(res.decomp_goal, f(X) - f(B).mean(0), atol=1e-12)
    np.testing.assert_allclose(res.decomp_sum, res.decomp_goal, atol=1e-12)


def test_kernelshap_equals_brute_force_random_forest():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(80, 4))
    y = np.where(X[:, 0] + X[:, 1] * X[:, 2] > 0, "yes", "no")
    forest = RandomForestClassifier(n_estimators=8, max_depth=4, random_state=0).fit(X, y)
    B = X[:6]
    res = KernelSHAP().fit(forest, B).explain(X[10:13])
    assert res.output_names == [["no", "yes"]]
    expected = np.stack([brute_force_shapley(forest.predict_proba, x, B) for x in X[10:13]])
    assert np.abs(res.values - expected).max() < 1e-6
    np.testing.assert_allclose(res.predictions, forest.predict_proba(X[10:13]))


def test_kernelshap_exact_with_logit_link(tabular):
    X, B = tabular
    net = torch.nn.Sequential(make_mlp(5, 3), torch.nn.Softmax(dim=1))
    res = KernelSHAP(link="logit").fit(net, B).explain(X)
    f = torch_fn(net)

    def logit_of_mean(rows):  # value function on the link scale: link(mean_b f)
        return f(rows)

    # brute force on the logit of the background mean
    p = X.shape[1]
    for a, x in enumerate(X[:2]):
        values = {}
        for r in range(p + 1):
            for subset in itertools.combinations(range(p), r):
                on = np.isin(np.arange(p), subset)
                mean = logit_of_mean(np.where(on, x, B)).mean(0)
                values[subset] = np.log(mean / (1 - mean))
        phi = np.zeros((p, 3))
        for i in range(p):
            others = [j for j in range(p) if j != i]
            for r in range(p):
                for subset in itertools.combinations(others, r):
                    w = math.factorial(r) * math.factorial(p - r - 1) / math.factorial(p)
                    phi[i] += w * (values[tuple(sorted((*subset, i)))] - values[subset])
        assert np.abs(res.values[a] - phi).max() < 1e-6
    px, pb = f(X), f(B).mean(0)
    goal = np.log(px / (1 - px)) - np.log(pb / (1 - pb))
    np.testing.assert_allclose(res.decomp_goal, goal, atol=1e-10)
    np.testing.assert_allclose(res.decomp_sum, goal, atol=1e-10)
    assert "logit" in repr(res)
    # ignore_last_act explains the scores before the softmax instead
    raw = KernelSHAP(ignore_last_act=True).fit(net, B).explain(X)
    np.testing.assert_allclose(raw.predictions, torch_fn(net[0])(X), atol=1e-12)
    np.testing.assert_allclose(raw.decomp_sum, raw.decomp_goal, atol=1e-12)


def test_kernelshap_agrees_with_shap_exact_regime(tabular):
    shap = pytest.importorskip("shap")
    X, B = tabular
    net = make_mlp(5, 3)
    ours = KernelSHAP().fit(net, B).explain(X).values
    explainer = shap.KernelExplainer(torch_fn(net), B)
    theirs = np.asarray(explainer.shap_values(X, l1_reg=False, silent=True))
    assert theirs.shape == ours.shape
    assert np.abs(ours - theirs).max() < 1e-6


def test_kernelshap_sampled_agrees_with_shap_within_sampling_error():
    shap = pytest.importorskip("shap")
    m = 12
    rng = np.random.default_rng(3)
    B = rng.normal(size=(4, m))
    X = rng.normal(size=(3, m))
    net = make_mlp(m, 1, seed=3, hidden=6)
    f = torch_fn(net)
    exact = np.stack([vectorised_exact_shapley(f, x, B, m) for x in X])
    # our exact mode is the brute-force value
    ours_exact = KernelSHAP().fit(net, B).explain(X).values
    assert np.abs(ours_exact - exact).max() < 1e-6
    # sampled: 300 of the 4094 coalitions
    n_coal = 300
    ours = np.stack([
        KernelSHAP(n_samples=n_coal, random_state=s).fit(net, B).explain(X).values
        for s in range(4)
    ])
    np.random.seed(0)  # noqa: NPY002 - shap draws from the global numpy state
    explainer = shap.KernelExplainer(f, B)
    theirs = np.stack([
        np.asarray(explainer.shap_values(X, nsamples=n_coal, l1_reg=False, silent=True))
        for _ in range(4)
    ])
    err_ours = np.sqrt(((ours - exact) ** 2).mean())
    err_shap = np.sqrt(((theirs - exact) ** 2).mean())
    scale = np.sqrt((exact**2).mean())
    assert err_ours < 0.25 * scale  # informative estimate
    assert 0.5 * err_shap < err_ours < 2.0 * err_shap  # same estimator, same noise level
    # mean over repeats converges to the same value for both
    assert np.sqrt(((ours.mean(0) - theirs.mean(0)) ** 2).mean()) < 2 * err_shap
    # efficiency holds exactly even when sampled
    res = KernelSHAP(n_samples=n_coal, random_state=0).fit(net, B).explain(X)
    np.testing.assert_allclose(res.decomp_sum, res.decomp_goal, atol=1e-12)


def test_kernelshap_efficiency_float_sampled_and_multi_output():
    rng = np.random.default_rng(4)
    B, X = rng.normal(size=(20, 20)), rng.normal(size=(3, 20))
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(20, 10), torch.nn.ReLU(), torch.nn.Linear(10, 4))
    res = KernelSHAP(random_state=0, dtype="float", limit_ref=10).fit(net, B).explain(
        X, output_idx=[1, 3]
    )
    assert res.values.shape == (3, 20, 2) and res.values.dtype == np.float32
    np.testing.assert_allclose(res.decomp_sum, res.decomp_goal, rtol=1e-5, atol=1e-5)


def test_kernelshap_background_subsample_is_seeded():
    rng = np.random.default_rng(5)
    B, X = rng.normal(size=(50, 4)), rng.normal(size=(2, 4))
    net = make_mlp(4)
    a = KernelSHAP(limit_ref=10, random_state=1).fit(net, B)
    b = KernelSHAP(limit_ref=10, random_state=1).fit(net, B)
    assert a.data_ref_[0].shape == (10, 4)
    assert torch.equal(a.data_ref_[0], b.data_ref_[0])
    f = torch_fn(net)
    used = a.data_ref_[0].numpy()
    res = a.explain(X)
    np.testing.assert_allclose(res.decomp_goal, f(X) - f(used).mean(0), atol=1e-12)
    assert KernelSHAP(limit_ref=None).fit(net, B).data_ref_[0].shape == (50, 4)


def test_coalitions_follow_shap_scheme():
    rng = np.random.default_rng(0)
    z, w, exact = kernel_shap_coalitions(6, 10_000, rng)
    assert exact and z.shape == (62, 6) and np.isclose(w.sum(), 1)
    z, w, exact = kernel_shap_coalitions(10, 200, rng)
    assert not exact and z.shape == (200, 10) and np.isclose(w.sum(), 1)
    sizes = z.sum(1)
    assert sizes.min() >= 1 and sizes.max() <= 9
    assert len({row.tobytes() for row in z}) == len(z)  # no duplicate rows
    # size 1 and 9 are enumerated completely (with their complements)
    assert (sizes == 1).sum() == 10 and (sizes == 9).sum() == 10
    # sampled rows come in complement pairs (the budget may cut the very last pair)
    rows = {row.tobytes() for row in z}
    assert all((~row).tobytes() in rows for row in z[:-1][sizes[:-1] <= 4])


# ---------------------------------------------------------------------------- LIME
def test_lime_recovers_linear_coefficients_torch(tabular):
    X, B = tabular
    torch.manual_seed(0)
    lin = torch.nn.Linear(5, 3).double()
    res = LIME(n_samples=500, random_state=0).fit(lin, B).explain(X)
    w = lin.weight.detach().numpy()
    expected = (X - B.mean(0))[:, :, None] * w.T[None]
    assert res.values.shape == (4, 5, 3)
    assert np.abs(res.values - expected).max() < 1e-3
    assert res.decomp_goal is None
    np.testing.assert_allclose(res.predictions, torch_fn(lin)(X), atol=1e-12)


def test_lime_recovers_linear_coefficients_sklearn():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(60, 6))
    y = X @ rng.normal(size=(6, 2)) + 0.3
    lin = LinearRegression().fit(X, y)
    res = LIME(n_samples=400, random_state=1).fit(lin, X).explain(X[:5])
    expected = (X[:5] - X.mean(0))[:, :, None] * lin.coef_.T[None]
    assert np.abs(res.values - expected).max() < 1e-3


def test_lime_sample_baseline_recovers_coefficients_in_expectation():
    rng = np.random.default_rng(6)
    B = rng.normal(size=(40, 4))
    X = rng.normal(size=(2, 4))
    coef = np.array([1.5, -1.0, 0.5, 2.0])
    lin = LinearRegression().fit(B, B @ coef)
    res = LIME(n_samples=4000, baseline="sample", random_state=0).fit(lin, B).explain(X)
    expected = (X - B.mean(0)) * coef
    assert np.abs(res.values[..., 0] - expected).max() < 0.1 * np.abs(expected).max()


def test_lime_surrogate_equals_sklearn_ridge_on_same_perturbations():
    rng = np.random.default_rng(7)
    B, X = rng.normal(size=(30, 6)), rng.normal(size=(2, 6))
    net = make_mlp(6, 2, seed=7)
    f = torch_fn(net)
    lime = LIME(n_samples=200, kernel_width=0.4, alpha=0.5, random_state=3).fit(net, B)
    res = lime.explain(X)
    z, w = lime_perturbations(6, 200, 0.4, random_streams(3, 2)[0])
    ref = B.mean(0)
    for a, x in enumerate(X):
        y = f(np.where(z, x, ref))
        for k in range(2):
            ridge = Ridge(alpha=0.5).fit(z.astype(float), y[:, k], sample_weight=w)
            np.testing.assert_allclose(res.values[a, :, k], ridge.coef_, atol=1e-8)
    # feature selection against a sklearn-based reference (lime's procedures)
    y = f(np.where(z, X[0], ref))[:, 0]
    zf = z.astype(float)

    def score(cols):
        ridge = Ridge(alpha=0.5).fit(zf[:, cols], y, sample_weight=w)
        return ridge.score(zf[:, cols], y, sample_weight=w), ridge.coef_

    chosen = []
    for _ in range(3):  # greedy forward selection by weighted R^2
        cand = [j for j in range(6) if j not in chosen]
        chosen.append(max(cand, key=lambda j: score(chosen + [j])[0]))
    expected = np.zeros(6)
    expected[sorted(chosen)] = score(sorted(chosen))[1]
    got = weighted_ridge(z, w, y[:, None], alpha=0.5, feature_selection="forward", n_features=3)
    np.testing.assert_allclose(got[:, 0], expected, atol=1e-8)
    full = Ridge(alpha=0.5).fit(zf, y, sample_weight=w).coef_
    top = sorted(np.argsort(-np.abs(full))[:3])
    expected = np.zeros(6)
    expected[top] = score(top)[1]
    got = weighted_ridge(
        z, w, y[:, None], alpha=0.5, feature_selection="highest_weights", n_features=3
    )
    np.testing.assert_allclose(got[:, 0], expected, atol=1e-8)


@pytest.mark.parametrize("selection", ["forward", "highest_weights", "auto"])
def test_lime_feature_selection_picks_largest_effects(selection):
    rng = np.random.default_rng(8)
    B = rng.normal(size=(30, 6))
    coef = np.array([0.01, 3.0, -0.02, -2.0, 0.03, 0.0])
    lin = LinearRegression().fit(B, B @ coef)
    x = B.mean(0, keepdims=True) + 1.0
    res = LIME(n_samples=600, feature_selection=selection, n_features=2, random_state=0)
    values = res.fit(lin, B).explain(x).values[0, :, 0]
    assert set(np.flatnonzero(values)) == {1, 3}
    np.testing.assert_allclose(values[[1, 3]], coef[[1, 3]], atol=0.1)


def test_lime_kernel_weights():
    z, w = lime_perturbations(4, 50, 0.25, np.random.default_rng(0))
    assert z[0].all() and (~z[1:]).any(1).all()
    d = 1 - np.sqrt(z.sum(1) / 4)
    np.testing.assert_allclose(w, np.sqrt(np.exp(-(d**2) / 0.25**2)))


# ---------------------------------------------------------------------------- reproducibility
@pytest.mark.parametrize("cls", [LIME, KernelSHAP])
def test_reproducible_with_random_state(cls):
    rng = np.random.default_rng(9)
    B, X = rng.normal(size=(10, 16)), rng.normal(size=(4, 16))
    net = make_mlp(16, 2, seed=9)
    kw = dict(n_samples=100) if cls is LIME else dict(n_samples=60)
    a = cls(random_state=5, **kw).fit(net, B).explain(X).values
    b = cls(random_state=5, **kw).fit(net, B).explain(X).values
    c = cls(random_state=6, **kw).fit(net, B).explain(X).values
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    # independent of batch composition and chunking
    part = cls(random_state=5, batch_size=7, **kw).fit(net, B).explain(X[2:]).values
    np.testing.assert_allclose(part, a[2:], atol=1e-12)


# ---------------------------------------------------------------------------- model types
def test_sklearn_classifier_with_dataframe_names_and_pipeline():
    rng = np.random.default_rng(10)
    df = pd.DataFrame(rng.normal(size=(60, 4)), columns=["age", "bmi", "bp", "s1"])
    y = (df["age"] - df["bmi"] > 0).map({True: "sick", False: "healthy"})
    pipe = make_pipeline(StandardScaler(), LogisticRegression()).fit(df, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "X does not have valid feature names" warnings
        res = KernelSHAP().fit(pipe, df.iloc[:8]).explain(df.iloc[:3])
        lres = LIME(n_samples=50, random_state=0).fit(pipe, df.iloc[:8]).explain(
            df.iloc[:3].to_numpy()
        )
    assert res.output_names == [["healthy", "sick"]]
    assert res.input_names == [[["age", "bmi", "bp", "s1"]]]
    assert lres.input_names == [[["age", "bmi", "bp", "s1"]]]
    np.testing.assert_allclose(res.predictions, pipe.predict_proba(df.iloc[:3]))
    np.testing.assert_allclose(res.decomp_sum, res.decomp_goal, atol=1e-12)
    frame = res.to_frame()
    assert set(frame["feature"].unique()) == {"age", "bmi", "bp", "s1"}
    # decision_function: one column named after the positive class
    dres = KernelSHAP(response_method="decision_function").fit(pipe, df.iloc[:8]).explain(
        df.iloc[:2]
    )
    assert dres.output_names == [["sick"]]
    np.testing.assert_allclose(dres.predictions[:, 0], pipe.decision_function(df.iloc[:2]))


def test_sklearn_regressor_and_plain_function():
    rng = np.random.default_rng(11)
    X = rng.normal(size=(40, 3))
    forest = RandomForestClassifier(n_estimators=5, random_state=0)
    lin = LinearRegression().fit(X, X @ [1.0, 2.0, 3.0])
    res = KernelSHAP().fit(lin, X[:10]).explain(X[:2])
    assert res.output_names == [["Y1"]]
    # linear model: exact Shapley value is coef * (x - mean background)
    np.testing.assert_allclose(
        res.values[..., 0], lin.coef_ * (X[:2] - X[:10].mean(0)), atol=1e-10
    )
    fres = KernelSHAP().fit(np.tanh, X[:10]).explain(X[:2])
    assert fres.values.shape == (2, 3, 3)
    expected = brute_force_shapley(np.tanh, X[0], X[:10])
    assert np.abs(fres.values[0] - expected).max() < 1e-10
    with pytest.raises(ValueError, match="not fitted"):
        KernelSHAP().fit(forest, X)


def test_torch_and_skorch_models_are_not_mutated():
    skorch = pytest.importorskip("skorch")
    rng = np.random.default_rng(12)
    X = rng.normal(size=(40, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    net = skorch.NeuralNetClassifier(
        module, max_epochs=2, lr=0.1, train_split=None, verbose=0,
    ).fit(X, y)
    res = KernelSHAP().fit(net, X[:5]).explain(X[:3])
    np.testing.assert_allclose(res.predictions, net.predict_proba(X[:3]), atol=1e-6)
    np.testing.assert_allclose(res.decomp_sum, res.decomp_goal, atol=1e-10)
    # a plain module in training mode with hooks: explained, not changed
    torch.manual_seed(1)
    user = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Dropout(0.5)).train()
    user[0].weight.requires_grad_(True)
    before = copy.deepcopy(user.state_dict())
    lres = LIME(n_samples=50, random_state=0).fit(user, X[:5]).explain(X[:2])
    assert user.training and user[0].weight.requires_grad
    assert all(torch.equal(before[k], v) for k, v in user.state_dict().items())
    # the private copy ran in eval mode: dropout off, deterministic predictions
    np.testing.assert_allclose(
        lres.predictions, user.eval()(torch.as_tensor(X[:2])).detach().numpy(), atol=1e-6
    )


def test_multi_input_torch_model():
    class TwoInputs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(3, 4)
            self.b = torch.nn.Linear(2, 4)

        def forward(self, x1, x2):
            return torch.tanh(self.a(x1)) * self.b(x2)

    torch.manual_seed(0)
    net = TwoInputs().double()
    rng = np.random.default_rng(13)
    B = [rng.normal(size=(6, 3)), rng.normal(size=(6, 2))]
    X = [rng.normal(size=(2, 3)), rng.normal(size=(2, 2))]
    res = KernelSHAP().fit(net, B).explain(X)
    v1, v2 = res.values

    def f(rows):
        with torch.no_grad():
            return net(torch.as_tensor(rows[:, :3]), torch.as_tensor(rows[:, 3:])).numpy()

    expected = brute_force_shapley(f, np.hstack([X[0][0], X[1][0]]), np.hstack(B))
    assert np.abs(np.vstack([v1[0], v2[0]]) - expected).max() < 1e-10
    np.testing.assert_allclose(res.decomp_sum, res.decomp_goal, atol=1e-12)


# ---------------------------------------------------------------------------- images / segments
def make_conv(channels=2):
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(channels, 3, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
        torch.nn.Linear(3 * 6 * 6, 2),
    ).double()


def test_image_grid_segments_exact_shapley():
    rng = np.random.default_rng(14)
    B, X = rng.normal(size=(3, 2, 6, 6)), rng.normal(size=(2, 2, 6, 6))
    net = make_conv()
    res = KernelSHAP(segment_size=(2, 3)).fit(net, B).explain(X)
    assert res.values.shape == (2, 2, 6, 6, 2)
    labels = grid_segments((2, 6, 6), (2, 3))
    assert labels.max() == 5  # 3 x 2 cells shared by both channels

    def f(rows):
        with torch.no_grad():
            return net(torch.as_tensor(rows.reshape(-1, 2, 6, 6))).numpy()

    for a in range(2):
        phi = brute_force_shapley(f, X[a].ravel(), B.reshape(3, -1), labels.ravel())
        per_element = phi[labels.ravel()] / 12  # each cell: 2 channels x 2 x 3 pixels
        assert np.abs(res.values[a].reshape(-1, 2) - per_element).max() < 1e-10
        # summed over a segment, the attributions give the segment's Shapley value
        sums = np.stack([res.values[a][labels == s].sum(0) for s in range(6)])
        np.testing.assert_allclose(sums, phi, atol=1e-10)
    np.testing.assert_allclose(res.decomp_sum, res.decomp_goal, atol=1e-12)
    # channels-last data gives the same attributions, channels last
    last = KernelSHAP(segment_size=(2, 3), channels_first=False).fit(
        net, np.moveaxis(B, 1, -1)
    ).explain(np.moveaxis(X, 1, -1))
    np.testing.assert_allclose(last.values, np.moveaxis(res.values, 1, -2), atol=1e-12)


def test_lime_on_images_with_custom_segments_and_sklearn_on_flat_pixels():
    rng = np.random.default_rng(15)
    imgs = rng.normal(size=(60, 1, 4, 4))
    y = (imgs[:, 0, :2].sum((1, 2)) > 0).astype(int)
    clf = LogisticRegression().fit(imgs.reshape(60, -1), y)
    seg = np.repeat(np.arange(4), 4).reshape(4, 4)  # rows as segments (spatial shape)
    res = LIME(n_samples=300, segments=seg, random_state=0).fit(clf, imgs[:10]).explain(imgs[:2])
    assert res.values.shape == (2, 1, 4, 4, 2)
    for a in range(2):  # constant within each row segment
        assert np.allclose(res.values[a, 0], res.values[a, 0, :, :1])
    shap_res = KernelSHAP(segment_size=2).fit(clf, imgs[:10]).explain(imgs[:2])
    assert shap_res.values.shape == (2, 1, 4, 4, 2)
    np.testing.assert_allclose(shap_res.decomp_sum, shap_res.decomp_goal, atol=1e-12)
    np.testing.assert_allclose(shap_res.predictions, clf.predict_proba(imgs[:2].reshape(2, -1)))


def test_grouped_tabular_columns():
    rng = np.random.default_rng(16)
    B, X = rng.normal(size=(5, 4)), rng.normal(size=(1, 4))
    net = make_mlp(4)
    res = KernelSHAP(segments=[0, 0, 1, 2]).fit(net, B).explain(X)
    phi = brute_force_shapley(torch_fn(net), X[0], B, [0, 0, 1, 2])
    np.testing.assert_allclose(res.values[0, :2].sum(0), phi[0], atol=1e-10)
    np.testing.assert_allclose(res.values[0, 2:], phi[1:], atol=1e-10)
    # a single feature takes the whole difference, spread over its columns
    one = KernelSHAP(segments=[3, 3, 3, 3]).fit(net, B).explain(X)
    np.testing.assert_allclose(one.values[0], np.repeat(one.decomp_goal / 4, 4, axis=0))
    lone = LIME(n_samples=20, alpha=0.0, segments=[0, 0, 0, 0], verbose=True).fit(net, B).explain(X)
    f = torch_fn(net)
    np.testing.assert_allclose(lone.values[0].sum(0), f(X)[0] - f(B.mean(0, keepdims=True))[0])


class _Predictor:
    """Not an sklearn estimator, just something with predict (duck typing)."""

    def predict(self, rows):
        return rows[:, 0] * rows[:, 1]


def test_masked_rows_are_exact_copies_of_sample_or_background():
    rng = np.random.default_rng(18)
    B, X = rng.normal(size=(4, 6)) * 1e3, rng.normal(size=(2, 6)) * 1e-3
    seen = []

    def record(rows):
        seen.append(rows.copy())
        return rows.sum(1)

    KernelSHAP(n_samples=30, random_state=0, dtype="float").fit(record, B).explain(X)
    rows = np.vstack(seen[2:]).astype(np.float32)  # skip the ref-mean and shape probes
    pool = np.vstack([X, B]).astype(np.float32)
    assert all(np.isin(rows[:, j], pool[:, j]).all() for j in range(6))


def test_duck_typed_predictor():
    rng = np.random.default_rng(17)
    B, X = rng.normal(size=(5, 3)), rng.normal(size=(2, 3))
    res = KernelSHAP().fit(_Predictor(), B).explain(X)
    expected = brute_force_shapley(_Predictor().predict, X[1], B)
    np.testing.assert_allclose(res.values[1], expected, atol=1e-12)


def test_grid_segments_layout():
    labels = grid_segments((1, 5, 4), 2)
    assert labels.shape == (1, 5, 4) and labels.max() == 5  # 3 x 2 cells, last row smaller
    assert (labels[0, 4] == [4, 4, 5, 5]).all()
    assert grid_segments((3, 16, 16)).max() == 63  # default: 8 x 8 cells
    assert (grid_segments((2, 10))[0] == grid_segments((2, 10))[1]).all()
    np.testing.assert_array_equal(grid_segments((7,)), np.arange(7))
    fmap = build_feature_map([(3,), (1, 4)], [None, [5, 5, 9, 9]])
    assert fmap.n_features == 5 and list(fmap.sizes) == [1, 1, 1, 2, 2]


# ---------------------------------------------------------------------------- API / errors
def test_pickle_clone_and_params(tabular):
    X, B = tabular
    exp = KernelSHAP(n_samples=30, random_state=0).fit(make_mlp(5), B)
    again = pickle.loads(pickle.dumps(exp))
    np.testing.assert_array_equal(again.explain(X).values, exp.explain(X).values)
    params = clone(LIME(kernel_width=0.5)).get_params()
    assert params["kernel_width"] == 0.5 and params["dtype"] == "double"
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(B, [0, 1] * 3 + [0])
    fitted = pickle.loads(pickle.dumps(LIME(n_samples=20).fit(forest, B)))
    assert fitted.explain(X).values.shape == (4, 5, 2)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: KernelSHAP(n_samples=0), "n_samples"),
        (lambda: KernelSHAP(n_samples="many"), "n_samples"),
        (lambda: KernelSHAP(link="probit"), "link"),
        (lambda: KernelSHAP(limit_ref=0), "limit_ref"),
        (lambda: KernelSHAP(segment_size=0), "segment_size"),
        (lambda: KernelSHAP(segments=np.zeros(4, dtype=int)), "segments has shape"),
        (lambda: KernelSHAP(segments=np.zeros(5)), "integer labels"),
        (lambda: LIME(kernel_width=0), "kernel_width"),
        (lambda: LIME(alpha=-1.0), "alpha"),
        (lambda: LIME(n_samples=1), "n_samples"),
        (lambda: LIME(n_features=0), "n_features"),
        (lambda: LIME(feature_selection="lasso"), "feature_selection"),
        (lambda: LIME(baseline="zeros"), "baseline"),
        (lambda: LIME(response_method="predict_log_proba"), "response_method"),
    ],
)
def test_bad_parameters(tabular, make, match):
    _, B = tabular
    with pytest.raises((ValueError, TypeError), match=match):
        make().fit(make_mlp(5), B)


def test_bad_models_and_data(tabular):
    X, B = tabular
    net = make_mlp(5)
    with pytest.raises(TypeError, match="cannot explain a str"):
        KernelSHAP().fit("model", B)
    with pytest.raises(ValueError, match="needs reference data"):
        KernelSHAP().fit(net)
    with pytest.raises(ValueError, match="5 features"):
        KernelSHAP().fit(net, B).explain(X[:, :3])
    with pytest.raises(ValueError, match="NaN"):
        LIME().fit(net, B).explain(np.full((1, 5), np.nan))
    with pytest.raises(ValueError, match="link='logit' needs probabilities"):
        KernelSHAP(link="logit").fit(net, B).explain(X)
    with pytest.raises(ValueError, match="n_samples=3"):
        KernelSHAP(n_samples=3).fit(make_mlp(16), np.zeros((2, 16))).explain(np.ones((1, 16)))
    lin = LinearRegression().fit(B, B[:, 0])
    with pytest.raises(ValueError, match="ignore_last_act"):
        KernelSHAP(ignore_last_act=True).fit(lin, B)
    with pytest.raises(ValueError, match="fitted with 5"):
        KernelSHAP().fit(lin, np.zeros((3, 4)))
    with pytest.raises(ValueError, match="no method 'predict_proba'"):
        KernelSHAP(response_method="predict_proba").fit(lin, B)
    with pytest.raises(ValueError, match="response_method applies"):
        KernelSHAP(response_method="predict").fit(net, B)
    df = pd.DataFrame(B, columns=list("abcde"))
    named = LinearRegression().fit(df, B[:, 0])
    with pytest.raises(ValueError, match="same columns"):
        KernelSHAP().fit(named, df[list("edcba")])
    labels = RandomForestClassifier(n_estimators=2, random_state=0).fit(B, list("xyxyxyx"))
    with pytest.raises(ValueError, match="class labels"):
        KernelSHAP(response_method="predict").fit(labels, B).explain(X)


def test_float32_pipeline_ending_in_a_skorch_net_is_called_in_float32():
    """A Pipeline(StandardScaler, skorch net) fitted on float32 only runs on float32 data."""
    import pandas as pd
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from skorch import NeuralNetClassifier
    from torch import nn

    import sknn_explain as skx

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(60, 4)).astype(np.float32), columns=list("abcd"))
    y = (X["a"] > 0).astype(np.int64).to_numpy()
    torch.manual_seed(0)
    net = NeuralNetClassifier(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)),
                              max_epochs=2, train_split=None, verbose=0)
    pipe = make_pipeline(StandardScaler(), net).fit(X, y)
    for explainer in (skx.KernelSHAP(random_state=0), skx.LIME(n_samples=200, random_state=0)):
        res = explainer.fit(pipe, X[:20]).explain(X[:3])
        np.testing.assert_allclose(res.predictions, pipe.predict_proba(X[:3]), rtol=1e-6)
    shap_res = skx.KernelSHAP(random_state=0).fit(pipe, X[:20]).explain(X[:3])
    np.testing.assert_allclose(shap_res.decomp_sum, shap_res.decomp_goal, atol=1e-6)


def test_long_runs_warn_with_their_cost_unless_verbose(monkeypatch):
    import warnings

    import sknn_explain as skx
    from sknn_explain.explainers.agnostic import _estimator as agnostic

    monkeypatch.setattr(agnostic, "LONG_RUN_ROWS", 100)
    X = np.random.default_rng(0).normal(size=(30, 4))
    w = np.arange(1.0, 5.0)

    def f(Z):
        return Z @ w

    explainer = skx.KernelSHAP(random_state=0).fit(f, X[:10])
    with pytest.warns(UserWarning, match=r"about 420 rows \(3 rows x 14 coalitions x 10 "):
        explainer.explain(X[:3])
    with pytest.warns(UserWarning, match=r"LIME will evaluate the model on about 600 rows"):
        skx.LIME(n_samples=200, random_state=0).fit(f, X).explain(X[:3])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        explainer.set_params(verbose=True).explain(X[:3])  # a progress bar instead


def test_surrogate_solves_run_numpy_blas_on_one_thread_and_restore_it():
    """Kernel SHAP's / LIME's small solves run numpy's BLAS on one thread (threadpoolctl;
    a second thread's spin-waiting starved torch's next model call on small machines) and
    leave its thread count as it was, also when a solve raises."""
    from threadpoolctl import ThreadpoolController

    from sknn_explain.explainers.agnostic import _solvers

    controller = ThreadpoolController()
    blas = [c for c in controller.select(user_api="blas").lib_controllers]
    if not blas:
        pytest.skip("numpy has no BLAS that threadpoolctl can control here")
    before = [c.num_threads for c in blas]
    seen = []

    def spy(z, w, y, total):
        seen.append([c.num_threads for c in ThreadpoolController().select(
            user_api="blas").lib_controllers])
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        _solvers._one_blas_thread(spy)(None, None, None, None)
    assert seen == [[1] * len(blas)]
    assert [c.num_threads for c in ThreadpoolController().select(
        user_api="blas").lib_controllers] == before
    z = np.array([[1, 0], [0, 1], [1, 1]])
    phi = _solvers.constrained_wls(z, np.ones(3), np.array([[1.0], [2.0], [3.0]]),
                                   np.array([3.0]))
    np.testing.assert_allclose(phi[:, 0], [1.0, 2.0], atol=1e-12)
    assert [c.num_threads for c in ThreadpoolController().select(
        user_api="blas").lib_controllers] == before
    with _solvers.single_threaded_blas():  # nested: entered once, restored by the outer
        with _solvers.single_threaded_blas():
            pass
        assert [c.num_threads for c in ThreadpoolController().select(
            user_api="blas").lib_controllers] == [1] * len(blas)
    assert [c.num_threads for c in ThreadpoolController().select(
        user_api="blas").lib_controllers] == before


_FORWARD_ROWS: list[int] = []


class _CountingNet(torch.nn.Module):
    """Records the rows of every forward call (a module-level list: the private copy
    shares it)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 2)

    def forward(self, x):
        _FORWARD_ROWS.append(x.shape[0])
        return self.lin(x)


def test_kernel_shap_sizes_outputs_from_the_reference_predictions():
    """fit's predictions on X_ref give the output widths: explain runs no one-row sizing
    forward for inputs of X_ref's shape (and another shape still gets one)."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    ks = KernelSHAP(n_samples=20, random_state=0).fit(_CountingNet(), rng.normal(size=(5, 4)))
    assert ks.output_dims_ == {((4,),): [2]}
    _FORWARD_ROWS.clear()
    res = ks.explain(rng.normal(size=(3, 4)).astype(np.float32))
    assert 1 not in _FORWARD_ROWS and res.values.shape == (3, 4, 2)
    assert res.output_names == [["Y1", "Y2"]]
