"""KernelSHAP and LIME on raw, mixed-type DataFrames in front of scikit-learn pipelines.

The explainers only swap values between rows, so strings, pandas categories, bools and
missing values that the pipeline encodes / imputes itself are explained per original column.
"""

from __future__ import annotations

import itertools
import math
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from sknn_explain import LIME, KernelSHAP

COLUMNS = ["age", "city", "tier", "member", "income"]


def _frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "age": rng.normal(40.0, 10.0, n),
        "city": rng.choice(["Oslo", "Rome", "Lima"], n).astype(object),
        "tier": pd.Categorical(rng.choice(["gold", "basic"], n), categories=["basic", "gold"]),
        "member": rng.random(n) > 0.5,
        "income": rng.normal(size=n),
    })
    df.loc[[2, 7], "income"] = np.nan  # imputed by the pipeline
    return df


def _pipeline(handle_unknown: str = "ignore") -> Pipeline:
    df = _frame(120)
    y = ((df["age"] > 40) ^ (df["city"] == "Oslo") ^ df["member"]).astype(int)
    ct = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(), StandardScaler()), ["age", "income"]),
        ("cat", OneHotEncoder(handle_unknown=handle_unknown), ["city", "tier", "member"]),
    ])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning of the tiny MLP
        return make_pipeline(
            ct, MLPClassifier(hidden_layer_sizes=(8,), max_iter=300, random_state=0)
        ).fit(df, y)


@pytest.fixture(scope="module")
def pipe() -> Pipeline:
    return _pipeline()


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame]:
    df = _frame(40, seed=1)
    df.loc[5, "income"] = np.nan
    return df.iloc[:8], df.iloc[5:9]  # X_ref (one NaN), X (NaN in its first row)


def _brute_force_shapley(f, x: pd.DataFrame, ref: pd.DataFrame) -> np.ndarray:
    """Shapley values of ``v(S) = mean_b f(x_S, b_rest)`` by enumerating all subsets."""
    cols = list(x.columns)
    m, n_bg = len(cols), len(ref)
    out = []
    for i in range(len(x)):
        v = {}
        for bits in itertools.product([False, True], repeat=m):
            frame = pd.DataFrame({
                c: (x[c].iloc[[i] * n_bg] if on else ref[c]).reset_index(drop=True)
                for c, on in zip(cols, bits)
            })
            v[bits] = f(frame).mean(0)
        phi = np.zeros((m, len(v[bits])))
        for j in range(m):
            for bits in v:
                if bits[j]:
                    continue
                s = sum(bits)
                weight = math.factorial(s) * math.factorial(m - s - 1) / math.factorial(m)
                with_j = tuple(b or k == j for k, b in enumerate(bits))
                phi[j] += weight * (v[with_j] - v[bits])
        out.append(phi)
    return np.stack(out)


def test_kernel_shap_mixed_frame_equals_brute_force_shapley(pipe, data):
    ref, X = data
    res = KernelSHAP(limit_ref=None, random_state=0).fit(pipe, ref).explain(X)
    expected = _brute_force_shapley(pipe.predict_proba, X, ref)
    assert res.values.shape == (len(X), len(COLUMNS), 2)
    np.testing.assert_allclose(res.values, expected, rtol=0, atol=1e-8)
    # efficiency against the pipeline itself: f(x) - mean f(X_ref)
    goal = pipe.predict_proba(X) - pipe.predict_proba(ref).mean(0)
    np.testing.assert_allclose(res.values.sum(1), goal, rtol=0, atol=1e-10)
    np.testing.assert_allclose(res.predictions, pipe.predict_proba(X), rtol=0, atol=1e-12)
    assert res.input_names == [[COLUMNS]]


def test_model_gets_the_users_columns_and_dtypes_without_warnings(pipe, data):
    ref, X = data
    seen = []

    def f(frame):
        assert isinstance(frame, pd.DataFrame)
        seen.append(frame.dtypes.copy())
        assert list(frame.columns) == COLUMNS
        return pipe.predict_proba(frame)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "X does not have valid feature names"
        KernelSHAP(random_state=0).fit(pipe, ref).explain(X)
        LIME(n_samples=50, baseline="sample", random_state=0).fit(pipe, ref).explain(X)
        KernelSHAP(random_state=0).fit(f, ref).explain(X)
    assert seen
    for dtypes in seen:
        assert dtypes["tier"] == X["tier"].dtype  # same categories
        assert dtypes["member"] == np.dtype(bool)
        assert dtypes["age"] == np.float64 and dtypes["income"] == np.float64
        assert not pd.api.types.is_numeric_dtype(dtypes["city"])


def test_values_and_missing_values_round_trip_exactly(pipe, data):
    ref, X = data
    frames = []

    def f(frame):
        frames.append(frame)
        return pipe.predict_proba(frame)

    KernelSHAP(limit_ref=None, random_state=0).fit(f, ref).explain(X)
    # fit evaluates the background, explain first X itself: both decoded bit for bit,
    # NaN included, with the user's dtypes
    pd.testing.assert_frame_equal(frames[0], ref.reset_index(drop=True))
    pd.testing.assert_frame_equal(frames[1], X.reset_index(drop=True))
    perturbed = pd.concat(frames[2:], ignore_index=True)
    assert perturbed["income"].isna().any()
    assert set(perturbed["city"]) <= set(ref["city"]) | set(X["city"])


def test_lime_mixed_frame_is_deterministic_and_refuses_mean_baseline(pipe, data):
    ref, X = data
    a = LIME(n_samples=200, baseline="sample", random_state=3).fit(pipe, ref).explain(X)
    b = LIME(n_samples=200, baseline="sample", random_state=3).fit(pipe, ref).explain(X)
    assert a.values.shape == (len(X), len(COLUMNS), 2)
    assert np.isfinite(a.values).all()
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_allclose(a.predictions, pipe.predict_proba(X), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="baseline='sample'"):
        LIME(random_state=0).fit(pipe, ref)


def test_inputs_keep_raw_values(pipe, data):
    ref, X = data
    res = KernelSHAP(random_state=0).fit(pipe, ref).explain(X)
    assert res.inputs.dtype == object
    assert list(res.inputs[:, 1]) == list(X["city"])
    assert list(res.inputs[:, 2]) == list(X["tier"].astype(object))
    assert np.isnan(res.inputs[0, 4])
    with pytest.raises(ValueError):
        res.inputs[0, 0] = 1.0  # read-only like every Attribution.inputs


def test_numeric_frame_with_missing_values_keeps_float_inputs():
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(60, 3)), columns=["a", "b", "c"])
    df.loc[[1, 4], "b"] = np.nan
    y = (df["a"] > 0).astype(int)
    model = make_pipeline(SimpleImputer(), StandardScaler(), MLPClassifier(
        hidden_layer_sizes=(4,), max_iter=50, random_state=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(df, y)
    res = KernelSHAP(random_state=0).fit(model, df[:10]).explain(df[:5])
    assert res.inputs.dtype == np.float64 and np.isnan(res.inputs[1, 1])
    goal = model.predict_proba(df[:5]) - model.predict_proba(df[:10]).mean(0)
    np.testing.assert_allclose(res.values.sum(1), goal, rtol=0, atol=1e-10)


def test_pipeline_is_bit_identical_afterwards(data):
    ref, X = data
    model = _pipeline()
    before = pickle.dumps(model)
    KernelSHAP(random_state=0).fit(model, ref).explain(X)
    LIME(n_samples=30, baseline="sample", random_state=0).fit(model, ref).explain(X)
    with pytest.raises(ValueError):
        KernelSHAP(random_state=0).fit(model, ref).explain(X[COLUMNS[::-1]])
    assert pickle.dumps(model) == before


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda X: X.drop(columns="tier"), r"no column\(s\) \['tier'\]"),
        (lambda X: X.assign(extra=1.0), r"unexpected column\(s\) \['extra'\]"),
        (lambda X: X[["city", "age", "tier", "member", "income"]], "another order.*'city'"),
    ],
    ids=["missing", "extra", "reordered"],
)
def test_column_mismatch_names_the_column(pipe, data, change, match):
    ref, X = data
    explainer = KernelSHAP(random_state=0).fit(pipe, ref)
    with pytest.raises(ValueError, match=match):
        explainer.explain(change(X))


def test_array_instead_of_frame_is_refused(pipe, data):
    ref, X = data
    explainer = LIME(n_samples=20, baseline="sample").fit(pipe, ref)
    with pytest.raises(TypeError, match="must be a DataFrame with the same columns"):
        explainer.explain(X.to_numpy())


def test_unknown_category_names_the_column_and_value(data):
    ref, X = data
    strict = _pipeline(handle_unknown="error")
    before = pickle.dumps(strict)
    X_new = X.copy()
    X_new.loc[X_new.index[1], "city"] = "Paris"
    explainer = KernelSHAP(random_state=0).fit(strict, ref)
    with pytest.raises(ValueError, match=r"column 'city': \['Paris'\]"):
        explainer.explain(X_new)
    assert pickle.dumps(strict) == before
    # the fitted explainer still works and still knows only X_ref's values
    assert "Paris" not in explainer.raw_columns_.uniques[1]
    explainer.explain(X)


def test_unknown_category_ignored_by_the_pipeline_is_explained(pipe, data):
    ref, X = data
    X_new = X.copy()
    X_new["tier"] = X_new["tier"].cat.add_categories(["platinum"])
    X_new.loc[X_new.index[0], "tier"] = "platinum"
    X_new.loc[X_new.index[2], "city"] = "Paris"
    explainer = KernelSHAP(random_state=0).fit(pipe, ref)
    res = explainer.explain(X_new)
    goal = pipe.predict_proba(X_new) - pipe.predict_proba(ref).mean(0)
    np.testing.assert_allclose(res.values.sum(1), goal, rtol=0, atol=1e-10)
    assert res.inputs[0, 2] == "platinum" and res.inputs[2, 1] == "Paris"
    assert "Paris" not in explainer.raw_columns_.uniques[1]


def test_fitted_explainer_pickles_and_explains_the_same(pipe, data):
    ref, X = data
    explainer = KernelSHAP(random_state=0).fit(pipe, ref)
    again = pickle.loads(pickle.dumps(explainer))
    np.testing.assert_array_equal(explainer.explain(X).values, again.explain(X).values)


def test_palmer_penguins_pipeline():
    from palmerpenguins import load_penguins
    from sklearn.ensemble import RandomForestClassifier

    df = load_penguins()
    features = ["island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm",
                "body_mass_g", "sex"]
    X, y = df[features], df["species"]
    numeric = features[1:5]
    ct = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(), StandardScaler()), numeric),
        ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"),
                              OneHotEncoder(handle_unknown="ignore")), ["island", "sex"]),
    ])
    model = make_pipeline(ct, RandomForestClassifier(n_estimators=10, random_state=0)).fit(X, y)
    rows = X.iloc[[0, 3, 150]]  # row 3 has no measurements and no sex
    assert rows.isna().any(axis=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = KernelSHAP(limit_ref=15, random_state=0).fit(model, X.sample(40, random_state=0))
        att = res.explain(rows)
        lime = LIME(n_samples=100, baseline="sample", random_state=0).fit(model, X[:40])
        lime_att = lime.explain(rows)
    assert att.values.shape == (3, 6, 3)
    assert att.output_names == [["Adelie", "Chinstrap", "Gentoo"]]
    ref_rows = X.sample(40, random_state=0).iloc[np.sort(
        np.random.default_rng(np.random.SeedSequence(0).spawn(2)[0]).choice(
            40, size=15, replace=False))]
    np.testing.assert_allclose(att.decomp_sum, att.decomp_goal, rtol=0, atol=1e-10)
    goal = model.predict_proba(rows) - model.predict_proba(ref_rows).mean(0)
    np.testing.assert_allclose(att.decomp_goal, goal, rtol=0, atol=1e-10)
    assert list(att.inputs[:, 0]) == list(rows["island"])
    assert np.isfinite(lime_att.values).all()
