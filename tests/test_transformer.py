"""AttributionTransformer: sklearn conventions, targets, GridSearchCV, SelectFromModel."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from _torch_models import assert_unchanged, snapshot
from sklearn.base import clone
from sklearn.datasets import load_wine
from sklearn.exceptions import NotFittedError
from sklearn.feature_selection import SelectFromModel
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks
from skorch import NeuralNetBinaryClassifier, NeuralNetClassifier, NeuralNetRegressor
from torch import nn

from sknn_explain import (
    ExpectedGradients,
    Gradient,
    IntegratedGradients,
    SmoothGrad,
)
from sknn_explain.metrics import get_explanation_scorer
from sknn_explain.transformer import AttributionTransformer, TabularMLP

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:torch.*")


def _net(n_features=13, n_outputs=3, cls=NeuralNetClassifier, epochs=30, **kw):
    kw.setdefault("criterion", nn.CrossEntropyLoss if cls is NeuralNetClassifier else None)
    if kw["criterion"] is None:
        del kw["criterion"]
    return cls(
        TabularMLP, module__n_features=n_features, module__n_outputs=n_outputs,
        optimizer=torch.optim.Adam, lr=0.02, max_epochs=epochs, train_split=None,
        callbacks="disable", verbose=0, **kw,
    )


@pytest.fixture(scope="module")
def wine():
    X, y = load_wine(return_X_y=True)
    rng = np.random.default_rng(0)
    rows = rng.choice(len(y), 90, replace=False)
    return StandardScaler().fit_transform(X[rows]), y[rows]


@pytest.fixture(scope="module")
def fitted_net(wine):
    X, y = wine
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return _net().fit(X.astype(np.float32), y.astype(np.int64))


# ---------------------------------------------------------------------------------- conventions
@parametrize_with_checks(
    [
        # double precision: float32 matmuls round differently for different batch sizes
        # (~1e-6 relative), which check_methods_subset_invariance (rtol 1e-7) would flag
        AttributionTransformer(explainer=IntegratedGradients(n=8, dtype="double")),
        AttributionTransformer(explainer=Gradient(times_input=True, dtype="double"), target="all"),
    ],
    # no expected failures: every check passes
)
def test_sklearn_compatible(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        check(estimator)


def test_clone_pickle_and_set_output(wine, fitted_net):
    X, y = wine
    tr = AttributionTransformer(fitted_net, Gradient(times_input=True), prefit=True).fit(X)
    params = clone(tr).get_params()
    assert params["prefit"] is True and params["explainer"].times_input is True
    restored = pickle.loads(pickle.dumps(tr))
    np.testing.assert_array_equal(restored.transform(X[:7]), tr.transform(X[:7]))
    np.testing.assert_array_equal(restored.feature_importances_, tr.feature_importances_)

    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(13)], index=np.arange(100, 190))
    tr_all = AttributionTransformer(fitted_net, Gradient(), target="all", prefit=True).fit(df)
    out = tr_all.set_output(transform="pandas").transform(df.iloc[:5])
    assert isinstance(out, pd.DataFrame)
    assert list(out.index) == list(range(100, 105))
    assert list(out.columns[:4]) == ["f0__0", "f0__1", "f0__2", "f1__0"]
    assert list(out.columns) == list(tr_all.get_feature_names_out())


def test_unfitted_and_bad_parameters(wine, fitted_net):
    X, y = wine
    tr = AttributionTransformer(fitted_net, prefit=True)
    assert not hasattr(tr, "feature_importances_")
    with pytest.raises(NotFittedError):
        tr.transform(X)
    with pytest.raises(ValueError, match="requires y to be passed"):
        AttributionTransformer().fit(X)
    with pytest.raises(ValueError, match="prefit=True needs a fitted estimator"):
        AttributionTransformer(prefit=True).fit(X)
    with pytest.raises(NotFittedError, match="not fitted"):
        AttributionTransformer(_net(), prefit=True).fit(X)
    with pytest.raises(TypeError, match="Explainer"):
        AttributionTransformer(fitted_net, explainer=LogisticRegression(), prefit=True).fit(X)
    with pytest.raises(ValueError, match="not one of the classes"):
        AttributionTransformer(fitted_net, target=7, prefit=True).fit(X)
    with pytest.raises(ValueError, match="max_reference"):
        AttributionTransformer(fitted_net, prefit=True, max_reference=0).fit(X)
    with pytest.raises(ValueError, match="unknown explanation scorer"):
        AttributionTransformer(fitted_net, prefit=True, scoring="accuracy").fit(X)
    with pytest.raises(ValueError, match="1 class"):
        AttributionTransformer(_net(), random_state=0).fit(X[:5], np.zeros(5, dtype=int))
    with pytest.raises(ValueError, match="expecting 13 features"):
        AttributionTransformer(fitted_net, prefit=True).fit(X).transform(X[:, :5])


# ---------------------------------------------------------------------------------- targets
def test_predicted_and_all_gather_the_right_columns(wine, fitted_net):
    X, _ = wine
    reference = Gradient(times_input=True).fit(fitted_net).explain(X, output_idx=[0, 1, 2])
    values = reference.values  # (n, 13, 3)
    predicted = reference.predictions.argmax(axis=1)
    np.testing.assert_array_equal(predicted, fitted_net.predict(X.astype(np.float32)))

    tr = AttributionTransformer(fitted_net, Gradient(times_input=True), prefit=True).fit(X)
    np.testing.assert_allclose(tr.transform(X), values[np.arange(len(X)), :, predicted],
                               rtol=1e-6)
    tr.set_params(target="all").fit(X)
    np.testing.assert_allclose(tr.transform(X), values.reshape(len(X), -1), rtol=1e-6)
    assert tr.get_feature_names_out()[-1] == "x12__2"
    np.testing.assert_allclose(tr.feature_importances_, np.abs(values).mean(axis=(0, 2)),
                               rtol=1e-6)
    tr.set_params(target=1).fit(X)
    np.testing.assert_allclose(tr.transform(X), values[..., 1], rtol=1e-6)
    np.testing.assert_allclose(
        tr.explained_output(X), fitted_net.forward(X.astype(np.float32)).numpy(), rtol=1e-6
    )


def test_string_labels_default_estimator_and_label_target(wine):
    X, y = wine
    labels = np.array(["barolo", "grignolino", "barbera"])[y]
    tr = AttributionTransformer(explainer=Gradient(), target="barbera", random_state=0)
    out = tr.fit_transform(X, labels)
    assert tr.classes_.tolist() == ["barbera", "barolo", "grignolino"]
    assert tr.output_names_ == ["barbera", "barolo", "grignolino"]
    assert out.shape == X.shape
    logits_grad = Gradient().fit(tr.estimator_).explain(X, output_idx=[0]).values[..., 0]
    np.testing.assert_allclose(out, logits_grad, rtol=1e-6)
    # same seed, same network; torch's global RNG is left alone
    state = torch.random.get_rng_state()
    again = clone(tr).fit_transform(X, labels)
    assert torch.equal(state, torch.random.get_rng_state())
    np.testing.assert_array_equal(out, again)


def test_single_logit_binary_classifier(wine):
    X, y = wine
    keep = y < 2
    Xb, yb = X[keep], np.where(y[keep] == 1, "yes", "no")
    net = _net(n_outputs=1, cls=NeuralNetBinaryClassifier)
    tr = AttributionTransformer(net, Gradient(times_input=True), target="all", random_state=0)
    # "all" drops class 0's columns: they would be the exact negatives of class 1's
    out = tr.fit_transform(Xb, yb)
    assert out.shape == (len(Xb), 13) and tr.output_names_ == ["no", "yes"]
    assert tr.get_feature_names_out()[:2].tolist() == ["x0__yes", "x1__yes"]
    assert tr.feature_importances_.shape == (13,)
    np.testing.assert_allclose(
        tr.set_params(target="yes").fit(Xb, yb).transform(Xb), out, rtol=1e-6)
    np.testing.assert_allclose(  # class 0 = negated logit
        tr.set_params(target="no").fit(Xb, yb).transform(Xb), -out, rtol=1e-6)
    tr.set_params(target="predicted").fit(Xb, yb)
    logit = tr.estimator_.forward(Xb.astype(np.float32)).numpy().reshape(-1)
    pos = logit > 0
    np.testing.assert_allclose(tr.transform(Xb)[pos], out[pos], rtol=1e-6)
    np.testing.assert_allclose(tr.transform(Xb)[~pos], -out[~pos], rtol=1e-6)
    np.testing.assert_array_equal(tr.estimator_.predict(Xb.astype(np.float32)), pos.astype(int))


def test_binary_sklearn_mlp_predicted_class_matches_predict(wine):
    X, y = wine
    keep = y < 2
    Xb, yb = X[keep], np.where(y[keep] == 1, "yes", "no")
    tr = AttributionTransformer(explainer=Gradient(times_input=True), random_state=0)
    out = tr.fit_transform(Xb, yb)
    rows = tr.explained_rows(Xb)
    np.testing.assert_array_equal(np.asarray(tr.output_names_)[rows.target],
                                  tr.estimator_.predict(Xb))
    both = Gradient(times_input=True).fit(tr.estimator_).explain(Xb, output_idx=[0]).values
    sign = np.where(rows.target == 1, 1.0, -1.0)[:, None]
    np.testing.assert_allclose(out, sign * both[..., 0], rtol=1e-6)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_regression_targets(wine):
    X, _ = wine
    rng = np.random.default_rng(1)
    y2 = np.c_[X[:, 0] - 2 * X[:, 3], X[:, 5]] + 0.1 * rng.normal(size=(len(X), 2))
    tr = AttributionTransformer(explainer=IntegratedGradients(n=16), target="all", random_state=0)
    out = tr.fit_transform(X, y2)
    assert not hasattr(tr, "classes_")
    assert tr.output_names_ == ["Y1", "Y2"] and out.shape == (len(X), 26)
    assert tr.set_params(target=1).fit(X, y2).transform(X).shape == X.shape
    with pytest.raises(ValueError, match="target='predicted' needs a classifier"):
        tr.set_params(target="predicted").fit(X, y2)
    single = AttributionTransformer(
        _net(n_outputs=1, cls=NeuralNetRegressor), IntegratedGradients(n=16), random_state=0
    ).fit(X, y2[:, 0])
    importances = single.feature_importances_
    assert set(np.argsort(importances)[-2:]) == {0, 3}  # y depends on features 0 and 3


# ---------------------------------------------------------------------------------- batching
@pytest.mark.parametrize("explainer", [Gradient(times_input=True), IntegratedGradients(n=10)])
def test_transform_whole_batch_equals_chunks(wine, fitted_net, explainer):
    X, _ = wine
    tr = AttributionTransformer(fitted_net, explainer, target="all", prefit=True).fit(X)
    whole = tr.transform(X)
    chunks = np.vstack([tr.transform(X[i:i + 17]) for i in range(0, len(X), 17)])
    np.testing.assert_allclose(chunks, whole, rtol=1e-6, atol=1e-7)
    small = clone(tr).set_params(explainer__batch_size=7).fit(X).transform(X)
    np.testing.assert_allclose(small, whole, rtol=1e-6, atol=1e-7)


def test_stochastic_explainer_is_reproducible(wine, fitted_net):
    X, _ = wine
    tr = AttributionTransformer(fitted_net, SmoothGrad(n=5, random_state=3), prefit=True).fit(X)
    np.testing.assert_array_equal(tr.transform(X), tr.transform(X))


def test_max_reference_subsets_the_reference(wine, fitted_net):
    X, _ = wine
    tr = AttributionTransformer(
        fitted_net, ExpectedGradients(n=4, random_state=0), prefit=True, max_reference=20,
        random_state=0,
    ).fit(X)
    assert tr.explainer_.data_ref_[0].shape == (20, 13)
    np.testing.assert_allclose(tr.reference_, X.mean(axis=0))


def test_prefit_leaves_the_network_alone(wine, fitted_net):
    X, _ = wine
    before = snapshot(fitted_net.module_)
    tr = AttributionTransformer(fitted_net, IntegratedGradients(n=5), prefit=True).fit(X)
    tr.transform(X)
    tr.score(X)
    assert tr.estimator_ is fitted_net
    assert_unchanged(fitted_net.module_, before)


# ---------------------------------------------------------------------------------- sklearn tools
def test_pipeline_with_downstream_classifier(wine):
    X, y = wine
    pipe = make_pipeline(
        StandardScaler(),
        AttributionTransformer(_net(), IntegratedGradients(n=8), random_state=0),
        LogisticRegression(max_iter=500),
    ).fit(X, y)
    assert pipe.score(X, y) > 0.9
    # explanation scorers find the transformer inside the pipeline
    direct = pipe[1].score(pipe[0].transform(X))
    assert get_explanation_scorer("neg_deletion_auc")(pipe, X, y) == pytest.approx(direct)


def test_gridsearch_picks_by_explanation_score(wine, fitted_net):
    X, _ = wine
    base = AttributionTransformer(fitted_net, Gradient(), prefit=True,
                                  scoring="neg_completeness_error")
    grid = GridSearchCV(
        base,
        {"explainer": [Gradient(), Gradient(times_input=True), IntegratedGradients(n=32)]},
        cv=KFold(3),
    ).fit(X)
    # only IntegratedGradients decomposes f(x) - f(mean): it wins on completeness
    assert isinstance(grid.best_params_["explainer"], IntegratedGradients)
    scores = grid.cv_results_["mean_test_score"]
    assert grid.best_index_ == int(np.argmax(scores)) and scores.max() > -0.05
    # the cv scores are the transformer's own score on each validation fold
    folds = list(KFold(3).split(X))
    manual = np.mean([
        clone(base).set_params(explainer=Gradient()).fit(X[tr]).score(X[te])
        for tr, te in folds
    ])
    assert scores[0] == pytest.approx(manual)


def test_gridsearch_over_nested_explainer_params(wine, fitted_net):
    X, _ = wine
    scoring = {
        "deletion": get_explanation_scorer("neg_deletion_auc"),
        "insertion": get_explanation_scorer("insertion_auc"),
    }
    grid = GridSearchCV(
        AttributionTransformer(fitted_net, SmoothGrad(times_input=True, random_state=0),
                               prefit=True),
        {"explainer__n": [2, 8], "explainer__noise_level": [0.05, 2.0]},
        scoring=scoring, refit="deletion", cv=KFold(2),
    ).fit(X)
    res = pd.DataFrame(grid.cv_results_)
    assert len(res) == 4 and res["mean_test_insertion"].notna().all()
    assert grid.best_index_ == int(res["mean_test_deletion"].to_numpy().argmax())
    assert grid.best_estimator_.explainer_.n == grid.best_params_["explainer__n"]
    # huge noise blurs the explanation: worse deletion than a small noise level
    by_noise = res.groupby("param_explainer__noise_level")["mean_test_deletion"].mean()
    assert by_noise[0.05] > by_noise[2.0]


def test_select_from_model_keeps_most_important_features():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 8))
    y = (X[:, 2] - 1.5 * X[:, 5] > 0).astype(int)
    tr = AttributionTransformer(
        _net(n_features=8, n_outputs=2, epochs=60), IntegratedGradients(n=16), random_state=0
    )
    selector = SelectFromModel(tr, max_features=2, threshold=-np.inf).fit(X, y)
    assert np.flatnonzero(selector.get_support()).tolist() == [2, 5]
    importances = selector.estimator_.feature_importances_
    top = set(np.argsort(importances)[-2:])
    assert top == {2, 5}
    # lazily computed importances equal the mean |attribution| of the training data
    np.testing.assert_allclose(
        importances, np.abs(selector.estimator_.transform(X)).mean(axis=0), rtol=1e-6
    )
    # fit_transform fills the same importances without a second pass
    fresh = clone(tr)
    fresh.fit_transform(X, y)
    np.testing.assert_allclose(fresh._importances, importances, rtol=1e-6)


def test_clone_shares_a_prefit_or_frozen_estimator(wine, fitted_net):
    from sklearn.frozen import FrozenEstimator

    X, _ = wine
    tr = AttributionTransformer(fitted_net, Gradient(), prefit=True)
    assert clone(tr).estimator is fitted_net  # still fitted: searches can refit the clone
    assert clone(tr.set_params(prefit=False)).estimator is not fitted_net
    frozen = AttributionTransformer(FrozenEstimator(fitted_net), Gradient()).fit(X)
    assert frozen.estimator_ is fitted_net
    np.testing.assert_array_equal(
        frozen.transform(X), tr.set_params(prefit=True).fit(X).transform(X)
    )


def test_attribution_transformer_on_a_raw_mixed_dataframe_pipeline():
    """fit/transform take the raw DataFrame; names and importances are per original column."""
    import pandas as pd
    from palmerpenguins import load_penguins
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_selection import SelectFromModel
    from sklearn.impute import SimpleImputer
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder
    from sklearn.preprocessing import StandardScaler as Scaler

    df = load_penguins().dropna(subset=["sex"]).reset_index(drop=True).iloc[::3]
    cols = ["island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g",
            "sex"]
    X, y = df[cols], df["species"].to_numpy()
    pre = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(), Scaler()), cols[1:5]),
        ("cat", OneHotEncoder(handle_unknown="ignore"), ["island", "sex"]),
    ])
    pipe = make_pipeline(pre, MLPClassifier((8,), max_iter=300, random_state=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tr = AttributionTransformer(pipe, IntegratedGradients(n=8, dtype="double"),
                                    random_state=0).set_output(transform="pandas")
        out = tr.fit_transform(X, y)
    assert isinstance(out, pd.DataFrame) and out.columns.tolist() == cols
    assert out.index.equals(X.index)
    assert tr.get_feature_names_out().tolist() == cols
    np.testing.assert_allclose(tr.feature_importances_, np.abs(out.to_numpy()).mean(0))
    # the same numbers as the explainer on the fitted pipeline, predicted class per row
    direct = IntegratedGradients(n=8, dtype="double").fit(tr.estimator_, X).explain(X)
    pred = np.searchsorted(tr.classes_, tr.estimator_.predict(X))
    np.testing.assert_allclose(out.to_numpy(), direct.values[np.arange(len(X)), :, pred],
                               atol=1e-10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        selector = SelectFromModel(
            AttributionTransformer(pipe, IntegratedGradients(n=8), random_state=0),
            max_features=2, threshold=-np.inf).fit(X, y)
    assert set(selector.get_feature_names_out()) <= set(cols)
    assert len(selector.get_feature_names_out()) == 2
    with pytest.raises(ValueError, match="non-numeric"):
        tr.score(X)
    with pytest.raises(TypeError, match="same columns"):
        tr.transform(X.to_numpy())
