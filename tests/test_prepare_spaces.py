"""Issue 16: explain where the network's inputs live (``space="network"``, the default) or in
the raw units of a pipeline's scalers (``space="raw"``)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_breast_cancer
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

import sknn_explain as skx
from sknn_explain import metrics


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    X, y = X[::3], y[::3]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = make_pipeline(StandardScaler(), MinMaxScaler(feature_range=(-1, 1)),
                             MLPClassifier((16,), max_iter=300, random_state=0)).fit(X, y)
    scaled = pipe[:-1].transform(X)
    return X, scaled, pipe


COORDINATE_METHODS = {
    "gradient": lambda **k: skx.Gradient(dtype="double", **k),
    "gradient_x_input": lambda **k: skx.Gradient(times_input=True, dtype="double", **k),
    "smoothgrad": lambda **k: skx.SmoothGrad(n=8, noise_level=0.05, times_input=True,
                                             random_state=0, dtype="double", **k),
    "lrp": lambda **k: skx.LRP(rule_name="epsilon", dtype="double", **k),
    "connection_weights": lambda **k: skx.ConnectionWeights(times_input=True, dtype="double",
                                                            **k),
}


@pytest.mark.parametrize("name", sorted(COORDINATE_METHODS))
def test_network_space_equals_the_network_on_pre_scaled_data(cancer, name):
    X, scaled, pipe = cancer
    make = COORDINATE_METHODS[name]
    through = make().fit(pipe, X[:40]).explain(X[:7])
    direct = make().fit(pipe[-1], scaled[:40]).explain(scaled[:7])
    np.testing.assert_allclose(through.values, direct.values, rtol=1e-10, atol=1e-12)
    assert through.input_space == "network"
    np.testing.assert_array_equal(through.inputs, X[:7])  # the user's raw values are shown
    raw = make(space="raw").fit(pipe, X[:40]).explain(X[:7])
    assert raw.input_space == "raw"
    if name == "lrp":  # the folded scalers keep the "pass" rule: relevance passes unchanged
        np.testing.assert_allclose(raw.values, through.values, rtol=1e-10, atol=1e-12)
    else:  # a different question, on purpose
        assert not np.allclose(raw.values, through.values)


BASELINE_METHODS = {
    "integrated_gradients": lambda **k: skx.IntegratedGradients(n=16, dtype="double", **k),
    "expected_gradients": lambda **k: skx.ExpectedGradients(n=8, random_state=0,
                                                           dtype="double", **k),
    "deeplift": lambda **k: skx.DeepLift(dtype="double", **k),
    "deepshap": lambda **k: skx.DeepSHAP(limit_ref=10, random_state=0, dtype="double", **k),
}


@pytest.mark.parametrize("name", sorted(BASELINE_METHODS))
def test_baseline_methods_are_identical_in_both_spaces(cancer, name):
    X, _, pipe = cancer
    make = BASELINE_METHODS[name]
    network = make().fit(pipe, X[:30]).explain(X[:6])
    raw = make(space="raw").fit(pipe, X[:30]).explain(X[:6])
    np.testing.assert_allclose(network.values, raw.values, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(network.decomp_goal, raw.decomp_goal, rtol=1e-10)


def test_kernel_shap_on_the_pipeline_equals_the_network_on_scaled_data(cancer):
    X, scaled, pipe = cancer
    cols = [0, 1, 2, 3, 4, 5]  # few features keep Kernel SHAP exact and fast

    def through(Z):
        full = np.tile(X[:1], (len(Z), 1))
        full[:, cols] = Z
        return pipe.predict_proba(full)

    def direct(Z):
        full = np.tile(scaled[:1], (len(Z), 1))
        full[:, cols] = Z
        return pipe[-1].predict_proba(full)

    a = skx.KernelSHAP(random_state=0).fit(through, X[:20, cols]).explain(X[20:23, cols])
    b = skx.KernelSHAP(random_state=0).fit(direct, scaled[:20, cols]).explain(
        scaled[20:23, cols])
    np.testing.assert_allclose(a.values, b.values, atol=1e-10)


def test_smoothgrad_noise_is_scaled_per_feature_by_the_reference_range():
    """For f(x) = sum x^2, SmoothGrad x Input has expectation 2 x^2 + 2 sd^2 per feature."""

    class Square(torch.nn.Module):
        def forward(self, x):
            return (x * x).sum(dim=1, keepdim=True)

    rng = np.random.default_rng(0)
    ref = rng.normal(size=(200, 3)) * np.array([0.01, 1.0, 100.0])
    x = np.zeros((1, 3))
    level = 0.1
    res = skx.SmoothGrad(n=4000, noise_level=level, times_input=True, random_state=0,
                         dtype="double").fit(Square(), ref).explain(x)
    sd2 = res.values[0, :, 0] / 2
    expected = (level * (ref.max(0) - ref.min(0))) ** 2
    np.testing.assert_allclose(sd2, expected, rtol=0.1)
    batch = skx.SmoothGrad(n=4000, noise_level=level, times_input=True, random_state=0,
                           noise_scale="batch", dtype="double").fit(Square(), ref).explain(
        np.array([[0.0, 0.0, 1.0]]))
    one_sd2 = (level * 1.0) ** 2  # innsight: the range of the explained batch, all features
    np.testing.assert_allclose(batch.values[0, :2, 0] / 2, one_sd2, rtol=0.1)


def test_faithfulness_through_the_pipeline_matches_the_pre_scaled_network(cancer):
    X, scaled, pipe = cancer
    rows = slice(0, 60)
    for make in (COORDINATE_METHODS["gradient_x_input"], COORDINATE_METHODS["smoothgrad"]):
        a_pipe = make().fit(pipe, X).explain(X[rows]).values[..., 0]
        a_net = make().fit(pipe[-1], scaled).explain(scaled[rows]).values[..., 0]
        f_pipe = metrics.faithfulness_correlation(
            lambda Z: pipe.predict_proba(Z)[:, 1], X[rows], a_pipe, random_state=0)
        f_net = metrics.faithfulness_correlation(
            lambda Z: pipe[-1].predict_proba(Z)[:, 1], scaled[rows], a_net, random_state=0)
        assert abs(f_pipe - f_net) < 0.05


def test_space_raw_refuses_preprocessing_that_cannot_be_folded():
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder

    df = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "c": ["x", "y", "x", "y"]})
    ct = ColumnTransformer([("n", StandardScaler(), ["a"]), ("c", OneHotEncoder(), ["c"])])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = make_pipeline(ct, MLPClassifier((2,), max_iter=20, random_state=0)).fit(
            df, [0, 1, 0, 1])
    with pytest.raises(ValueError, match="space='network'"):
        skx.Gradient(space="raw").fit(pipe, df)
    with pytest.raises(ValueError, match="'space' parameter"):
        skx.Gradient(space="encoded").fit(pipe, df)


def test_goal_and_plots_say_which_space(cancer):
    import matplotlib.pyplot as plt

    X, _, pipe = cancer
    res = skx.IntegratedGradients(n=8).fit(pipe, X[:20]).explain(X[:2])
    assert "network inputs" in res.goal_description
    grid = res.plot(data_idx=0)
    assert "network inputs" in grid.axes.flat[0].get_title()
    raw = skx.IntegratedGradients(n=8, space="raw").fit(pipe, X[:20]).explain(X[:2])
    assert "raw inputs" in raw.plot_global().axes.flat[0].get_title()
    plt.close("all")


def test_gridsearch_over_smoothgrad_noise_is_meaningful(cancer):
    """The README example: the grid's scores differ, and random attributions score worse
    than every grid point."""
    from sklearn.model_selection import GridSearchCV

    from sknn_explain.metrics import get_explanation_scorer

    X, _, pipe = cancer
    search = GridSearchCV(
        skx.AttributionTransformer(pipe, skx.SmoothGrad(times_input=True, random_state=0),
                                   prefit=True),
        {"explainer__noise_level": [0.05, 0.3, 1.0], "explainer__n": [10]},
        scoring=get_explanation_scorer("neg_deletion_auc"), cv=3,
    ).fit(X)
    scores = search.cv_results_["mean_test_score"]
    assert np.ptp(scores) > 0.01  # the tuned parameter changes the explanation's quality
    best = search.best_estimator_
    rows = best.explained_rows(X)
    rng = np.random.default_rng(0)
    random_scores = [
        -metrics.deletion_auc(best.explained_output, rows.X, rng.normal(size=rows.values.shape),
                              target=rows.target, reference=best.reference_)
        for _ in range(5)
    ]
    assert max(random_scores) < scores.min()
