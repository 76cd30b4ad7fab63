"""Pipelines with a ColumnTransformer / encoders in front of the network (issue #11).

Every explainer takes the raw mixed-type DataFrame, the pipeline's preprocessing runs as
preprocessing, the network is explained on its output, and the attributions are summed per
original column (``level="encoded"`` keeps one value per encoded feature).
"""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.impute import SimpleImputer
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

import sknn_explain as skx
from sknn_explain._groups import ColumnGroups, sum_groups
from sknn_explain._prepare import prepare_model

NUM = ["age", "income"]
CAT = ["city", "kind", "flag"]
COLUMNS = ["age", "city", "income", "flag", "kind"]


def _frame(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "age": rng.normal(40, 10, n),
        "city": rng.choice(["Paris", "Oslo", "Rome"], n).astype(object),
        "income": rng.normal(5, 2, n),
        "flag": rng.random(n) > 0.5,
        "kind": pd.Categorical(rng.choice(["x", "y"], n)),
    })


def _target(df: pd.DataFrame) -> np.ndarray:
    return ((df["age"] > 40).astype(int) + (df["city"] == "Paris").astype(int)).to_numpy()


def _fit_quiet(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X, y)


@pytest.fixture(scope="module")
def data():
    return _frame()


@pytest.fixture(scope="module")
def pipe(data):
    ct = ColumnTransformer([("num", StandardScaler(), NUM), ("cat", OneHotEncoder(), CAT)])
    net = MLPClassifier((8,), max_iter=200, random_state=0)
    return _fit_quiet(Pipeline([("ct", ct), ("mlp", net)]), data, _target(data))


METHODS = {
    "gradient_x_input": lambda: skx.Gradient(times_input=True, dtype="double"),
    "integrated_gradients": lambda: skx.IntegratedGradients(n=200, dtype="double"),
    "deeplift": lambda: skx.DeepLift(dtype="double"),
    "deepshap": lambda: skx.DeepSHAP(dtype="double"),
    "lrp": lambda: skx.LRP(dtype="double"),
}
EXACT = {"deeplift", "deepshap"}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_per_column_attributions_sum_the_encoded_ones(method, pipe, data):
    res = METHODS[method]().fit(pipe, data[:20]).explain(data[:5])
    groups = prepare_model(pipe).column_groups
    values, encoded = res.to_numpy(), res.to_numpy(level="encoded")
    assert values.shape == (5, len(COLUMNS), 3)
    assert encoded.shape == (5, len(groups.encoded_names), 3)
    assert res.input_names == [[COLUMNS]]
    assert res.encoded_names == groups.encoded_names
    np.testing.assert_allclose(values, sum_groups(encoded, groups.groups, axis=1), atol=1e-12)
    # one-hot block of "city" (3 categories) summed into one column
    city = [i for i, n in enumerate(res.encoded_names) if n.startswith("cat__city_")]
    assert len(city) == 3
    np.testing.assert_allclose(values[:, 1], encoded[:, city].sum(axis=1), atol=1e-12)
    # grouping keeps the sum: decomp_sum is the same in both views
    np.testing.assert_allclose(res.decomp_sum, res.encoded.decomp_sum, atol=1e-12)
    if method in EXACT:
        np.testing.assert_allclose(res.decomp_sum, res.decomp_goal, atol=1e-8)
    elif method == "integrated_gradients":
        np.testing.assert_allclose(res.decomp_sum, res.decomp_goal, atol=5e-3)
    # raw inputs (original view) and encoded inputs (encoded view)
    assert res.inputs.dtype == object and res.inputs[0, 1] == data["city"].iloc[0]
    np.testing.assert_allclose(res.encoded.inputs, pipe[:-1].transform(data[:5]), atol=0)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_encoded_view_equals_the_network_on_pre_encoded_data(method, pipe, data):
    """An independent route: the last step explained on ``pipe[:-1].transform(X)``."""
    res = METHODS[method]().fit(pipe, data[:20]).explain(data[:5])
    pre = pipe[:-1]
    direct = METHODS[method]().fit(pipe[-1], pre.transform(data[:20])).explain(
        pre.transform(data[:5]))
    np.testing.assert_allclose(res.to_numpy(level="encoded"), direct.to_numpy(), atol=1e-10)
    np.testing.assert_allclose(res.predictions, direct.predictions, atol=1e-12)


def test_baseline_of_a_categorical_column_is_the_mean_of_its_one_hot_block(pipe, data):
    ex = skx.IntegratedGradients(dtype="double").fit(pipe, data[:20])
    enc = pipe[:-1].transform(data[:20])
    baseline = ex.reference_ if hasattr(ex, "reference_") else None
    res = ex.explain(data[:2])
    # the decomposition goal is f(x) - f(mean of the encoded X_ref)
    net = pipe[-1]
    f_ref = net.predict_proba(enc.mean(axis=0, keepdims=True))
    logit = np.log(f_ref)  # softmax is removed (ignore_last_act): compare differences
    goal = res.decomp_goal
    assert goal.shape == (2, 3)
    assert baseline is None or np.asarray(baseline).shape[-1] == enc.shape[1]
    diff = (goal - goal[:, :1])[0]
    pred = res.predictions
    np.testing.assert_allclose((pred - pred[:, :1])[0] - diff, (logit - logit[:, :1])[0],
                               atol=1e-8)


def test_nested_pipelines_imputer_drop_and_indicator_grouping():
    rng = np.random.default_rng(1)
    df = _frame(80, seed=1)
    df["note"] = rng.choice(["u", "v"], 80)
    df.loc[3, "age"] = np.nan
    df.loc[5, "city"] = np.nan
    ct = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(add_indicator=True), StandardScaler()), NUM),
        ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"),
                              OneHotEncoder(drop="first")), ["city"]),
        ("ord", OrdinalEncoder(), ["kind", "flag"]),
        ("gone", "drop", ["note"]),
    ])
    net = MLPRegressor(hidden_layer_sizes=(6,), max_iter=100, random_state=0)
    pipe = _fit_quiet(make_pipeline(ct, net), df, df["income"].fillna(0).to_numpy())
    groups = prepare_model(pipe).column_groups
    assert groups.names == list(df.columns)
    enc = groups.encoded_names
    assert [enc[i] for i in groups.groups[0]] == [
        "num__age", "num__missingindicator_age"]
    assert [enc[i] for i in groups.groups[1]] == ["cat__city_Pa", "cat__city_Ro"] or len(
        groups.groups[1]) == 2
    assert groups.groups[list(df.columns).index("note")] == []
    res = skx.DeepLift(dtype="double").fit(pipe, df[10:40]).explain(df[:8])
    assert res.values.shape == (8, 6, 1)
    assert np.all(res.values[:, 5] == 0)  # the dropped column: attribution 0
    assert np.isfinite(res.values).all()  # the NaN rows are imputed by the pipeline
    np.testing.assert_allclose(res.decomp_sum, res.decomp_goal, atol=1e-8)


def test_many_to_many_block_becomes_one_group_or_a_clear_error(data):
    ct = ColumnTransformer([("pca", PCA(2), NUM), ("cat", OneHotEncoder(), CAT)])
    pipe = _fit_quiet(make_pipeline(ct, MLPClassifier((5,), max_iter=50, random_state=0)),
                      data, _target(data))
    res = skx.DeepLift(dtype="double").fit(pipe, data[:20]).explain(data[:3])
    assert res.input_names[0][0] == ["pca(age, income)", "city", "flag", "kind"]
    assert res.inputs[0, 0] == (data["age"].iloc[0], data["income"].iloc[0])
    np.testing.assert_allclose(res.decomp_sum, res.decomp_goal, atol=1e-8)
    shared = ColumnTransformer([("pca", PCA(2), NUM), ("num", StandardScaler(), ["age"]),
                                ("cat", OneHotEncoder(), CAT)])
    pipe2 = _fit_quiet(make_pipeline(shared, MLPClassifier((5,), max_iter=50, random_state=0)),
                       data, _target(data))
    with pytest.raises(ValueError, match="'pca'.*age"):
        skx.Gradient().fit(pipe2, data[:10])


def test_skorch_net_as_last_step_float32_net_double_explainer(data):
    from skorch import NeuralNetClassifier

    ct = ColumnTransformer([("num", StandardScaler(), NUM), ("cat", OneHotEncoder(), CAT)])
    enc = ct.fit(data).transform(data).astype(np.float32)
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(enc.shape[1], 8), torch.nn.ReLU(),
                                 torch.nn.Linear(8, 3))
    net = NeuralNetClassifier(module, max_epochs=3, lr=0.1, criterion=torch.nn.CrossEntropyLoss,
                              train_split=None, verbose=0)
    net.fit(enc, _target(data))
    pipe = Pipeline([("ct", ct), ("to32", _float32()), ("net", net)])
    for cls in (skx.IntegratedGradients, skx.DeepSHAP):
        res = cls(dtype="double").fit(pipe, data[:20]).explain(data[:4])
        direct = cls(dtype="double").fit(net, pipe[:-1].transform(data[:20])).explain(
            pipe[:-1].transform(data[:4]))
        np.testing.assert_allclose(res.to_numpy(level="encoded"), direct.to_numpy(), atol=1e-10)
        assert res.input_names[0][0] == COLUMNS
    np.testing.assert_allclose(res.decomp_sum, res.decomp_goal, atol=1e-8)


def _float32():
    from sklearn.preprocessing import FunctionTransformer

    return FunctionTransformer(np.float32).fit(np.zeros((1, 1)))


def _snapshot(obj) -> bytes:
    return pickle.dumps(obj)


def test_unknown_category_is_named_and_nothing_is_mutated(pipe, data):
    before = _snapshot(pipe)
    ex = skx.IntegratedGradients(dtype="double").fit(pipe, data[:20])
    bad = data[:3].copy()
    bad["city"] = bad["city"].astype(object)
    bad.loc[bad.index[1], "city"] = "Berlin"
    with pytest.raises(ValueError, match=r"column 'city' has value\(s\) \['Berlin'\]"):
        ex.explain(bad)
    assert _snapshot(pipe) == before


def test_unknown_category_with_handle_unknown_ignore_gives_an_all_zero_block(data):
    ct = ColumnTransformer([("num", StandardScaler(), NUM),
                            ("cat", OneHotEncoder(handle_unknown="ignore"), CAT)])
    pipe = _fit_quiet(make_pipeline(ct, MLPClassifier((5,), max_iter=50, random_state=0)),
                      data, _target(data))
    bad = data[:3].copy()
    bad.loc[bad.index[0], "city"] = "Berlin"
    res = skx.DeepLift(dtype="double").fit(pipe, data[:20]).explain(bad)
    assert res.inputs[0, 1] == "Berlin"
    np.testing.assert_allclose(res.decomp_sum, res.decomp_goal, atol=1e-8)


@pytest.mark.parametrize("change, match", [
    (lambda df: df.drop(columns=["income"]), r"missing column\(s\) \['income'\]"),
    (lambda df: df[["city", "age", "income", "flag", "kind"]], "another order.*'age'"),
    (lambda df: df.assign(extra=1.0), r"column\(s\) \['extra'\]"),
])
def test_missing_reordered_or_extra_columns_are_named(pipe, data, change, match):
    before = _snapshot(pipe)
    ex = skx.Gradient(dtype="double").fit(pipe, data[:10])
    with pytest.raises(ValueError, match=match):
        ex.explain(change(data[:3]))
    with pytest.raises(ValueError, match=match):
        skx.DeepLift().fit(pipe, change(data[:10]))
    assert _snapshot(pipe) == before


def test_unsupported_last_step_is_named(data):
    from sklearn.linear_model import LogisticRegression

    ct = ColumnTransformer([("num", StandardScaler(), NUM), ("cat", OneHotEncoder(), CAT)])
    pipe = _fit_quiet(Pipeline([("ct", ct), ("clf", LogisticRegression())]), data,
                      _target(data))
    with pytest.raises(ValueError, match="LogisticRegression.*'clf'"):
        skx.Gradient().fit(pipe, data[:10])


def test_scaler_only_pipelines_keep_the_folded_raw_space(data):
    X = data[NUM].to_numpy()
    net = MLPRegressor(hidden_layer_sizes=(4,), max_iter=50, random_state=0)
    pipe = _fit_quiet(make_pipeline(StandardScaler(), net), X, X[:, 0])
    prepared = prepare_model(pipe, "raw")
    assert prepared.preprocess is None and prepared.net is pipe
    network = prepare_model(pipe)  # the default: the scaler runs first, one group per column
    assert network.preprocess is not None and network.net is pipe[-1]
    assert [list(g) for g in network.column_groups.groups] == [[j] for j in range(X.shape[1])]
    res = skx.Gradient(space="raw").fit(pipe, X[:5]).explain(X[:2])
    assert res.to_numpy(level="encoded") is not None
    np.testing.assert_array_equal(res.to_numpy(level="encoded"), res.values)


def test_column_groups_validate_and_sum():
    with pytest.raises(ValueError, match="more than one column"):
        ColumnGroups(["a", "b"], [[0, 1], [1]], ["x", "y"])
    g = ColumnGroups(["a", "b", "c"], [[0, 2], [], [1]], ["e0", "e1", "e2"])
    v = np.arange(12.0).reshape(2, 3, 2)
    out = g.sum(v, axis=1)
    np.testing.assert_array_equal(out[:, 0], v[:, 0] + v[:, 2])
    np.testing.assert_array_equal(out[:, 1], 0)


def test_level_is_checked(pipe, data):
    res = skx.Gradient().fit(pipe, data[:5]).explain(data[:2])
    with pytest.raises(ValueError, match="level must be"):
        res.to_numpy(level="raw")
    frame = res.to_frame(level="encoded")
    assert set(frame["feature"].astype(str)) == set(res.encoded_names)
    assert set(res.to_frame()["feature"].astype(str)) == set(COLUMNS)


# ---------------------------------------------------------------------- item 6
def _binary_net():
    from skorch import NeuralNetBinaryClassifier

    torch.manual_seed(0)
    X = torch.randn(40, 4).numpy()
    y = (X[:, 0] > 0).astype(np.float32)
    module = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 1),
                                 torch.nn.Flatten(0))
    net = NeuralNetBinaryClassifier(module, max_epochs=2, train_split=None, verbose=0)
    return net.fit(X, y), X


def test_binary_skorch_net_same_outputs_through_graph_and_fallback():
    """One convention: a single unit, P(classes_[1]), named classes_[1], on both paths."""
    from sknn_explain._model import as_model
    from sknn_explain.convert.adapters import _fallback_model
    from sknn_explain.convert.adapters import prepare_model as adapt

    net, X = _binary_net()
    xs = [torch.as_tensor(X[:5], dtype=torch.float64)]
    for ignore in (False, True):
        graph = adapt(net, ignore_last_act=ignore, dtype=torch.float64,
                      device=torch.device("cpu"))
        fallback = _fallback_model(net, ignore, torch.float64, torch.device("cpu"), False)
        plain = as_model(net, ignore_last_act=ignore, dtype=torch.float64,
                         device=torch.device("cpu"))
        g, f, p = graph(xs)[0], fallback(xs)[0], plain(xs)[0]
        assert g.shape == f.shape == p.shape == (5, 1)
        torch.testing.assert_close(g, f, atol=1e-12, rtol=0)
        torch.testing.assert_close(g, p, atol=1e-12, rtol=0)
        assert graph.output_names([1]) == fallback.output_names([1]) == [[net.classes_[1]]]
    proba = net.predict_proba(X[:5])[:, 1]
    np.testing.assert_allclose(f.numpy()[:, 0] if ignore is False else proba, proba,
                               atol=1e-6)
    out = adapt(net, ignore_last_act=False, dtype=torch.float64,
                device=torch.device("cpu"))(xs)[0]
    np.testing.assert_allclose(out.numpy()[:, 0], proba, atol=1e-6)


def test_other_gradient_methods_and_global_connection_weights(pipe, data):
    for ex in (skx.SmoothGrad(n=5, random_state=0, dtype="double"),
               skx.ExpectedGradients(n=10, random_state=0, dtype="double")):
        res = ex.fit(pipe, data[:20]).explain(data[:3])
        assert res.values.shape == (3, len(COLUMNS), 3)
    cw = skx.ConnectionWeights(dtype="double").fit(pipe, data[:5])
    glob = cw.explain()
    groups = prepare_model(pipe).column_groups
    assert glob.input_names == [[COLUMNS]]
    np.testing.assert_allclose(
        glob.values, sum_groups(glob.to_numpy(level="encoded"), groups.groups, axis=1))
    assert cw.n_features_in_ == len(COLUMNS)
    assert list(cw.feature_names_in_) == COLUMNS
