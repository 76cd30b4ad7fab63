"""Explanation-quality metrics: known answers, batching, scorers."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from sklearn.datasets import load_wine
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.preprocessing import StandardScaler
from skorch import NeuralNetClassifier
from torch import nn

from sknn_explain import Gradient, IntegratedGradients, SmoothGrad
from sknn_explain import metrics as M
from sknn_explain.metrics._checks import as_generator
from sknn_explain.transformer import AttributionTransformer, TabularMLP

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:torch.*")


# ---------------------------------------------------------------------------------- linear model
@pytest.fixture(scope="module")
def linear():
    """f(Z) = Z @ W + b with 3 outputs; exact attributions for target t: (x - r) * W[:, t]."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(25, 6))
    W = rng.normal(size=(6, 3))
    b = rng.normal(size=3)
    target = rng.integers(0, 3, size=25)
    ref = X.mean(axis=0)
    exact = (X - ref) * W[:, target].T
    return X, W, b, target, ref, exact


def _f(W, b):
    return lambda Z: Z @ W + b


def test_deletion_and_insertion_curves_match_the_formula(linear):
    X, W, b, t, ref, exact = linear
    fractions, dele = M.deletion_curve(_f(W, b), X, exact, target=t, reference=ref)
    _, ins = M.insertion_curve(_f(W, b), X, exact, target=t, reference=ref)
    np.testing.assert_allclose(fractions, np.arange(7) / 6)
    fx = (X @ W + b)[np.arange(25), t]
    direction = np.sign(exact.sum(axis=1))  # sign of f(x) - f(r)
    assert (direction > 0).any() and (direction < 0).any()
    order = np.argsort(-exact * direction[:, None], axis=1, kind="stable")
    removed = np.c_[np.zeros(25), np.cumsum(np.take_along_axis(exact, order, 1), axis=1)]
    np.testing.assert_allclose(dele, fx[:, None] - removed, atol=1e-12)
    f_ref = fx - exact.sum(axis=1)
    np.testing.assert_allclose(ins, f_ref[:, None] + removed, atol=1e-12)
    # normalised AUCs: pooled trapezoid areas over |f(x) - f(r)|
    d = fx - f_ref
    area = np.trapezoid((dele - f_ref[:, None]) * np.sign(d)[:, None], fractions, axis=1)
    expected = area.sum() / np.abs(d).sum()
    auc = M.deletion_auc(_f(W, b), X, exact, target=t, reference=ref)
    assert auc == pytest.approx(expected, abs=1e-12)
    assert M.insertion_auc(_f(W, b), X, exact, target=t, reference=ref) == pytest.approx(
        1 - auc, abs=1e-12
    )
    # n_steps groups features: 3 steps of 2 features
    fr3, d3 = M.deletion_curve(_f(W, b), X, exact, target=t, reference=ref, n_steps=3)
    np.testing.assert_allclose(fr3, [0, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(d3, dele[:, ::2], atol=1e-12)


@pytest.mark.parametrize("sign", [1, -1])
def test_exact_attributions_minimise_deletion_over_all_orders(linear, sign):
    X, W, b, t, ref, exact = linear
    i = int(np.flatnonzero(np.sign(exact.sum(axis=1)) == sign)[0])  # f(x) above / below f(r)
    x, a, t = X[i:i + 1], exact[i:i + 1], t[i:i + 1]
    orders = np.array(list(itertools.permutations(range(6))))  # 720 orderings
    fake = np.empty((len(orders), 6))
    np.put_along_axis(fake, orders, np.arange(6, 0, -1)[None, :].astype(float), axis=1)
    xs = np.repeat(x, len(orders), axis=0)
    fractions, curves = M.deletion_curve(
        _f(W, b), xs, fake, target=np.full(len(orders), t[0]), reference=ref
    )
    areas = sign * np.trapezoid(curves, fractions, axis=1)
    best = sign * np.trapezoid(
        M.deletion_curve(_f(W, b), x, a, target=t, reference=ref)[1][0], fractions
    )
    assert best <= areas.min() + 1e-12
    # insertion: exact is the best too
    _, ins = M.insertion_curve(_f(W, b), xs, fake, target=np.full(len(orders), t[0]),
                               reference=ref)
    best_ins = sign * np.trapezoid(
        M.insertion_curve(_f(W, b), x, a, target=t, reference=ref)[1][0], fractions
    )
    assert best_ins >= (sign * np.trapezoid(ins, fractions, axis=1)).max() - 1e-12


def test_faithfulness_and_infidelity_of_exact_attributions(linear):
    X, W, b, t, ref, exact = linear
    f = _f(W, b)
    kw = dict(target=t, reference=ref, random_state=0)
    assert M.faithfulness_correlation(f, X, exact, **kw) == pytest.approx(1.0, abs=1e-12)
    rng = np.random.default_rng(1)
    noise = rng.normal(size=X.shape)
    assert M.faithfulness_correlation(f, X, noise, **kw) < 0.5
    assert M.infidelity(f, X, exact, **kw) < 1e-20
    assert M.infidelity(f, X, noise, **kw) > 0.1
    # twice the exact attributions: wrong scale, fixed by the optimal rescaling
    assert M.infidelity(f, X, 2 * exact, **kw) > 0.1
    assert M.infidelity(f, X, 2 * exact, normalize=True, **kw) < 1e-20
    # plain gradients are exact under noise perturbations
    gradient = W[:, t].T
    assert M.infidelity(f, X, gradient, perturbation="noise", **kw) < 1e-20
    assert M.infidelity(f, X, exact, perturbation="noise", **kw) > 0.01


def test_infidelity_matches_a_slow_reference():
    rng = np.random.default_rng(2)
    X, w = rng.normal(size=(4, 3)), rng.normal(size=3)

    def f(Z):
        return np.tanh(Z @ w)

    A = rng.normal(size=(4, 3))
    value = M.infidelity(f, X, A, perturbation="noise", n_perturbations=5, noise_scale=0.3,
                         random_state=7)
    # same draws as the metric: one normal array (n, T, p) from the seeded generator
    noise = as_generator(7).standard_normal((4, 5, 3)) * (0.3 * X.std(axis=0))
    errors = [
        [(noise[i, k] @ A[i] - (f(X[i:i + 1])[0] - f(X[i:i + 1] - noise[i, k])[0])) ** 2
         for k in range(5)]
        for i in range(4)
    ]
    assert value == pytest.approx(np.mean(errors), rel=1e-12)


def test_completeness_error_known_values():
    A = np.array([[1.0, 2.0], [0.5, 0.5]])
    assert M.completeness_error(A, [3.0, 1.0]) == pytest.approx(0.0)
    assert M.completeness_error(A, [3.0, 2.0]) == pytest.approx(1.0 / 5.0)
    assert M.completeness_error(A, [3.0, 2.0], sample_weight=[1, 0]) == pytest.approx(0.0)
    with pytest.warns(RuntimeWarning, match="every decomposition goal is 0"):
        assert np.isnan(M.completeness_error(A, [0.0, 0.0]))
    with pytest.raises(ValueError, match="goal must have shape"):
        M.completeness_error(A, [1.0])


def test_sparseness_known_values_and_formula():
    assert M.sparseness(np.array([[0.0, 0, 0, 5]])) == pytest.approx(0.75)
    assert M.sparseness(np.array([[2.0, -2, 2, 2]])) == pytest.approx(0.0)
    assert M.sparseness(np.zeros((2, 3))) == 0.0
    A = np.random.default_rng(0).normal(size=(7, 9))
    # Gini as mean absolute difference: sum_ij |a_i - a_j| / (2 p^2 mean|a|)
    expected = [
        np.abs(np.abs(a)[:, None] - np.abs(a)[None, :]).sum() / (2 * 9 * np.abs(a).sum())
        for a in A
    ]
    assert M.sparseness(A) == pytest.approx(np.mean(expected), rel=1e-12)


def test_max_sensitivity_known_values():
    w = np.array([1.0, -2.0, 0.5])
    X = np.random.default_rng(0).normal(size=(6, 3))
    assert M.max_sensitivity(lambda Z, t: np.tile(w, (len(Z), 1)), X, random_state=0) == 0.0

    def tanh_grad(Z, target):
        return w * (1 - np.tanh(Z @ w) ** 2)[:, None]

    value = M.max_sensitivity(tanh_grad, X, radius=0.3, n_perturbations=4, random_state=5)
    delta = as_generator(5).uniform(-1, 1, size=(6, 4, 3)) * (0.3 * X.std(axis=0))
    slow = []
    for i in range(6):
        a = tanh_grad(X[i:i + 1], None)[0]
        slow.append(max(
            np.linalg.norm(tanh_grad(X[i:i + 1] + delta[i, k], None)[0] - a) / np.linalg.norm(a)
            for k in range(4)
        ))
    assert value == pytest.approx(np.mean(slow), rel=1e-12)
    unnormalised = M.max_sensitivity(tanh_grad, X, radius=0.3, n_perturbations=4,
                                     normalize=False, norm=np.inf, random_state=5)
    assert unnormalised > 0
    # all-zero attributions that move are infinitely sensitive
    assert M.max_sensitivity(lambda Z, t: Z - X.mean(0) if len(Z) > 6 else 0 * Z, X,
                             random_state=0) == np.inf


# ---------------------------------------------------------------------------------- mechanics
def test_model_calls_are_batched(linear):
    X, W, b, t, ref, exact = linear
    calls = []

    def f(Z):
        calls.append(len(Z))
        return Z @ W + b

    M.deletion_curve(f, X, exact, target=t, batch_size=70)
    # one call for f(x) and f(reference) (ordering direction), then 10 samples x 7 points
    assert calls == [50, 70, 70, 35]
    calls.clear()
    M.faithfulness_correlation(f, X, exact, target=t, n_subsets=10, random_state=0)
    assert calls == [25 * 11]  # default batch: everything in one call
    calls.clear()
    M.infidelity(f, X, exact, target=t, n_perturbations=4, batch_size=1, random_state=0)
    assert calls == [5] * 25  # at least one whole sample per call


def test_reference_per_sample_and_default(linear):
    X, W, b, t, ref, exact = linear
    f = _f(W, b)
    default = M.deletion_curve(f, X, exact, target=t)[1]
    given = M.deletion_curve(f, X, exact, target=t, reference=np.tile(ref, (25, 1)))[1]
    np.testing.assert_allclose(default, given)
    zeros = M.deletion_curve(f, X, exact, target=t, reference=np.zeros(6))[1]
    np.testing.assert_allclose(zeros[:, -1], b[t])


def test_input_validation(linear):
    X, W, b, t, ref, exact = linear
    f = _f(W, b)
    with pytest.raises(ValueError, match="pass target"):
        M.deletion_auc(f, X, exact)
    with pytest.raises(ValueError, match="out of range"):
        M.deletion_auc(f, X, exact, target=5)
    with pytest.raises(ValueError, match="attributions have shape"):
        M.deletion_auc(f, X, exact[:, :3], target=t)
    with pytest.raises(ValueError, match="reference must have shape"):
        M.insertion_auc(f, X, exact, target=t, reference=np.zeros(4))
    with pytest.raises(ValueError, match="NaN"):
        M.sparseness(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="2-D"):
        M.sparseness(np.ones(3))
    with pytest.raises(ValueError, match="perturbation must be"):
        M.infidelity(f, X, exact, target=t, perturbation="blur")
    with pytest.raises(ValueError, match="subset_size"):
        M.faithfulness_correlation(f, X, exact, target=t, subset_size=7)
    with pytest.raises(ValueError, match="n_steps"):
        M.deletion_curve(f, X, exact, target=t, n_steps=0)
    with pytest.raises(ValueError, match="explain_fn returned shape"):
        M.max_sensitivity(lambda Z, t: Z[:, :2], X)
    with pytest.raises(ValueError, match="sample_weight"):
        M.sparseness(exact, sample_weight=[1.0])
    with pytest.warns(RuntimeWarning, match="cannot be normalised"):
        assert np.isnan(M.deletion_auc(lambda Z: np.ones(len(Z)), X, exact))


# ---------------------------------------------------------------------------------- with models
@pytest.fixture(scope="module")
def wine():
    X, y = load_wine(return_X_y=True)
    rows = np.random.default_rng(0).choice(len(y), 90, replace=False)
    return StandardScaler().fit_transform(X[rows]), y[rows]


def _net(module, **module_kw):
    return NeuralNetClassifier(
        module, optimizer=torch.optim.Adam, lr=0.02, max_epochs=30, train_split=None,
        callbacks="disable", verbose=0, criterion=nn.CrossEntropyLoss, **module_kw,
    )


def test_gradient_x_input_is_perfectly_complete_on_a_linear_net(wine):
    X, y = wine
    net = _net(nn.Linear, module__in_features=13, module__out_features=3, module__bias=False)
    tr = AttributionTransformer(
        net, Gradient(times_input=True, dtype="double"), scoring="neg_completeness_error",
        random_state=0,
    ).fit(X, y)
    assert abs(tr.score(X)) < 1e-12
    # with a bias Gradient x Input still meets its own goal f(x) - f(0)
    biased = _net(nn.Linear, module__in_features=13, module__out_features=3)
    tr_b = AttributionTransformer(biased, Gradient(times_input=True, dtype="double"),
                                  scoring="neg_completeness_error", random_state=0).fit(X, y)
    assert abs(tr_b.score(X)) < 1e-12
    # plain gradients have no goal: measured against f(x) - f(mean), they are not complete
    tr_b.set_params(explainer=Gradient(dtype="double")).fit(X, y)
    rows = tr_b.explained_rows(X)
    out = tr_b.explained_output(np.vstack([X, tr_b.reference_]))
    goal = out[np.arange(len(X)), rows.target] - out[-1, rows.target]
    assert tr_b.score(X) == pytest.approx(-M.completeness_error(rows.values, goal))
    assert tr_b.score(X) < -0.1


@pytest.fixture(scope="module")
def transformer(wine):
    X, y = wine
    net = _net(TabularMLP, module__n_features=13, module__n_outputs=3)
    return AttributionTransformer(net, IntegratedGradients(n=32), random_state=0).fit(X, y)


def test_random_attributions_score_worse_than_integrated_gradients(wine, transformer):
    X, _ = wine
    rows = transformer.explained_rows(X)
    random = np.random.default_rng(0).normal(size=rows.values.shape)
    kw = dict(target=rows.target, reference=transformer.reference_)
    f = transformer.explained_output
    ig_del = M.deletion_auc(f, rows.X, rows.values, **kw)
    assert ig_del < M.deletion_auc(f, rows.X, random, **kw) - 0.2
    assert M.insertion_auc(f, rows.X, rows.values, **kw) > M.insertion_auc(
        f, rows.X, random, **kw) + 0.2
    assert M.faithfulness_correlation(f, rows.X, rows.values, random_state=0, **kw) > 0.8
    assert M.faithfulness_correlation(f, rows.X, random, random_state=0, **kw) < 0.3
    assert M.infidelity(f, rows.X, rows.values, random_state=0, **kw) < M.infidelity(
        f, rows.X, random, random_state=0, **kw)
    # the scorer is the negated metric, on the transformer's reference
    scorer = M.get_explanation_scorer("neg_deletion_auc")
    assert scorer(transformer, X) == pytest.approx(-ig_del)
    assert transformer.score(X) == pytest.approx(-ig_del)


def test_every_scorer_runs_and_is_signed(wine, transformer):
    X, _ = wine
    names = M.get_explanation_scorer_names()
    assert names == sorted([
        "aopc", "irof", "faithfulness_correlation", "insertion_auc", "neg_completeness_error",
        "neg_deletion_auc", "neg_infidelity", "neg_max_sensitivity", "sparseness",
    ])
    rows = transformer.explained_rows(X)
    for name in names:
        value = M.get_explanation_scorer(name)(transformer, X)
        assert np.isfinite(value), name
        assert (value <= 0) == name.startswith("neg_"), (name, value)
    sens = M.get_explanation_scorer("neg_max_sensitivity")(transformer, X)
    assert sens == pytest.approx(-M.max_sensitivity(
        rows.explain_fn, rows.X, rows.values, target=rows.target, scale=transformer.scale_,
        random_state=0,
    ))
    # explain_fn reproduces the transformer's own attributions
    np.testing.assert_allclose(rows.explain_fn(rows.X, rows.target), rows.values, rtol=1e-6)
    # fixed random_state: the same score twice
    scorer = M.make_explanation_scorer("faithfulness_correlation", n_subsets=8)
    assert scorer(transformer, X) == scorer(transformer, X)


def test_scorer_sample_weight_and_all_targets(wine, transformer):
    X, _ = wine
    scorer = M.get_explanation_scorer("neg_deletion_auc")
    w = np.r_[np.ones(40), np.zeros(50)]
    assert scorer(transformer, X, sample_weight=w) == pytest.approx(scorer(transformer, X[:40]))
    tr_all = transformer.__sklearn_clone__().set_params(target="all", prefit=True,
                                                        estimator=transformer.estimator_)
    tr_all.fit(X)
    rows = tr_all.explained_rows(X)
    assert rows.X.shape == (90 * 3, 13)
    np.testing.assert_array_equal(rows.target, np.tile([0, 1, 2], 90))
    expected = M.deletion_auc(tr_all.explained_output, rows.X, rows.values,
                              target=rows.target, reference=tr_all.reference_)
    assert scorer(tr_all, X) == pytest.approx(-expected)


def test_scorers_in_a_grid_search(wine, transformer):
    X, _ = wine
    scoring = {n: M.get_explanation_scorer(n) for n in ("neg_deletion_auc", "sparseness")}
    grid = GridSearchCV(
        AttributionTransformer(transformer.estimator_, SmoothGrad(random_state=0), prefit=True),
        {"explainer__noise_level": [0.1, 1.0], "explainer__n": [4]},
        scoring=scoring, refit="neg_deletion_auc", cv=KFold(2),
    ).fit(X)
    scores = grid.cv_results_["mean_test_neg_deletion_auc"]
    assert grid.best_index_ == int(np.argmax(scores))
    assert np.isfinite(grid.cv_results_["mean_test_sparseness"]).all()


def test_scorer_factory_errors(transformer):
    with pytest.raises(ValueError, match="unknown metric"):
        M.make_explanation_scorer("accuracy")
    with pytest.raises(TypeError, match="set by the scorer"):
        M.make_explanation_scorer("deletion_auc", target=0)
    with pytest.raises(ValueError, match="unknown explanation scorer"):
        M.get_explanation_scorer("deletion_auc")  # lower is better: the name is neg_...
    with pytest.raises(TypeError, match="AttributionTransformer"):
        M.get_explanation_scorer("sparseness")(Gradient(), np.zeros((2, 13)))
    assert repr(M.make_explanation_scorer("insertion_auc", n_steps=4)) == (
        "ExplanationScorer('insertion_auc', n_steps=4)"
    )


def test_dataframe_X_keeps_feature_names_for_the_model():
    """A pipeline fitted on a DataFrame gets DataFrames back: no feature-name warnings."""
    import warnings

    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(40, 4)), columns=["a", "b", "c", "d"])
    y = (X["a"] + X["b"] > 0).astype(int)
    pipe = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    A = rng.normal(size=X.shape)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "X does not have valid feature names" would raise
        values = [
            M.deletion_auc(pipe.predict_proba, X, A, target=1),
            M.insertion_auc(pipe.predict_proba, X, A, target=1),
            M.faithfulness_correlation(pipe.predict_proba, X, A, target=1, random_state=0),
            M.infidelity(pipe.predict_proba, X, A, target=1, random_state=0),
        ]
    # the same numbers as with the bare array (the columns are only names)
    plain = M.deletion_auc(lambda Z: pipe.predict_proba(pd.DataFrame(Z, columns=X.columns)),
                                 X.to_numpy(), A, target=1)
    assert np.isfinite(values).all() and values[0] == plain
