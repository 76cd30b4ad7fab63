"""AttributionTransformer(importance="permutation"): scikit-learn's permutation importance."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import make_classification, make_regression
from sklearn.feature_selection import SelectFromModel
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from skorch import NeuralNetClassifier
from torch import nn

from sknn_explain import Gradient
from sknn_explain.transformer import AttributionTransformer, TabularMLP

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

BAD = (ValueError, TypeError)


@pytest.fixture(scope="module")
def informative():
    """Columns 0-2 carry the label, columns 3-7 are noise."""
    X, y = make_classification(
        n_samples=120, n_features=8, n_informative=3, n_redundant=0, n_repeated=0,
        shuffle=False, random_state=0,
    )
    return X, y


def test_permutation_importance_equals_sklearn_on_pipeline(informative):
    X, y = informative
    tr = AttributionTransformer(
        explainer=Gradient(), importance="permutation", n_repeats=4, random_state=3
    ).fit(X, y)
    expected = permutation_importance(tr.estimator_, X, y, n_repeats=4, random_state=3)
    np.testing.assert_array_equal(tr.feature_importances_, expected.importances_mean)
    # cached and not the attribution importance
    assert tr.feature_importances_ is tr.feature_importances_
    attribution = tr.set_params(importance="attribution").fit(X, y).feature_importances_
    assert not np.allclose(attribution, expected.importances_mean)


def test_permutation_importance_regression_and_fit_transform():
    X, y = make_regression(n_samples=80, n_features=5, n_informative=2, random_state=1)
    tr = AttributionTransformer(explainer=Gradient(), importance="permutation", n_repeats=3,
                                random_state=0)
    tr.fit_transform(X, y)  # must not fill the importances with attributions
    expected = permutation_importance(tr.estimator_, X, y, n_repeats=3, random_state=0)
    np.testing.assert_array_equal(tr.feature_importances_, expected.importances_mean)


def test_permutation_importance_skorch_uses_encoded_labels(informative):
    X, y = informative
    labels = np.array(["a", "b"])[y]
    net = NeuralNetClassifier(
        TabularMLP, module__n_features=8, module__n_outputs=2, criterion=nn.CrossEntropyLoss,
        optimizer=torch.optim.Adam, lr=0.02, max_epochs=20, train_split=None,
        callbacks="disable", verbose=0,
    )
    tr = AttributionTransformer(net, Gradient(), importance="permutation", n_repeats=2,
                                random_state=0).fit(X, labels)
    expected = permutation_importance(
        tr.estimator_, X.astype(np.float32), y, n_repeats=2, random_state=0
    )
    np.testing.assert_array_equal(tr.feature_importances_, expected.importances_mean)
    assert tr.feature_importances_[:3].min() > tr.feature_importances_[3:].max()


def test_select_from_model_with_permutation_importance(informative):
    X, y = informative
    selector = SelectFromModel(
        AttributionTransformer(explainer=Gradient(), importance="permutation", n_repeats=5,
                               random_state=0),
        threshold="mean",
    )
    pipe = make_pipeline(selector, LogisticRegression()).fit(X, y)
    fitted = pipe[0].estimator_
    ref = permutation_importance(fitted.estimator_, X, y, n_repeats=5, random_state=0)
    expected = ref.importances_mean >= ref.importances_mean.mean()
    np.testing.assert_array_equal(pipe[0].get_support(), expected)
    assert expected[:3].all()  # the informative columns are kept
    assert pipe[0].transform(X).shape[1] == expected.sum() < 8


def test_default_importance_is_attribution(informative):
    X, y = informative
    tr = AttributionTransformer(explainer=Gradient(), random_state=0)
    assert tr.get_params()["importance"] == "attribution"
    tr.fit(X, y)
    np.testing.assert_allclose(tr.feature_importances_, np.abs(tr.transform(X)).mean(axis=0))


@pytest.mark.parametrize(
    "params, name",
    [({"importance": "perm"}, "importance"), ({"importance": None}, "importance"),
     ({"n_repeats": 0}, "n_repeats"), ({"n_repeats": 2.5}, "n_repeats")],
)
def test_bad_importance_params_fail_at_fit(informative, params, name):
    X, y = informative
    tr = AttributionTransformer(explainer=Gradient(), random_state=0, **params)
    with pytest.raises(BAD, match=f"'{name}' parameter of AttributionTransformer"):
        tr.fit(X, y)


def test_permutation_importance_needs_y_and_a_score(informative):
    X, y = informative
    est = make_pipeline(StandardScaler(), MLPClassifier((4,), max_iter=50, random_state=0))
    est.fit(X, y)
    tr = AttributionTransformer(est, Gradient(), prefit=True, importance="permutation")
    tr.fit(X)
    with pytest.raises(ValueError, match="fitted without y"):
        tr.feature_importances_  # noqa: B018
    module = nn.Sequential(nn.Linear(8, 2))
    tr = AttributionTransformer(module, Gradient(), target="all", prefit=True,
                                importance="permutation")
    with pytest.raises(TypeError, match="score method"):
        tr.fit(X, y).feature_importances_  # noqa: B018
