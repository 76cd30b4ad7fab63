"""Kernel SHAP / LIME on a scikit-learn Pipeline ending in a skorch net (#20).

The pipeline's transformers run with ``transform`` and then the private copy of the net's
module, ``batch_size`` rows per forward pass, instead of ``Pipeline.predict_proba`` (which
makes skorch feed the network batches of its training ``batch_size``). Pinned here: the
numbers are ``predict_proba``'s, the user's pipeline is untouched, and the module runs
``ceil(rows / batch_size)`` times.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from _torch_models import assert_unchanged, snapshot
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from sknn_explain import LIME, KernelSHAP
from sknn_explain.explainers import _predict_fn
from sknn_explain.explainers._predict_fn import SklearnModel, SkorchPipelineModel

skorch = pytest.importorskip("skorch")

N_FEATURES = 5


def _data(dtype):
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(80, N_FEATURES)).astype(dtype),
                     columns=[f"x{i}" for i in range(N_FEATURES)])
    y = (X["x0"] + X["x1"] * X["x2"] > 0).astype(np.int64).to_numpy()
    return X, y


def _classifier_pipeline(dtype=np.float32):
    """StandardScaler + skorch classifier predicting 8 rows per forward pass (its training
    batch size): ``predict_proba`` on thousands of perturbed rows is many tiny passes."""
    X, y = _data(dtype)
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(N_FEATURES, 16), nn.ReLU(), nn.Dropout(0.2),
                           nn.Linear(16, 3))
    if dtype == np.float64:
        module = module.double()
    net = skorch.NeuralNetClassifier(
        module, criterion=nn.CrossEntropyLoss, max_epochs=3, batch_size=8, train_split=None,
        verbose=0)
    y3 = y + (X["x3"].to_numpy() > 1)  # three classes
    return make_pipeline(StandardScaler(), net).fit(X, y3), X


def _slow(monkeypatch):
    """The previous path: every model call is ``Pipeline.predict_proba``."""
    monkeypatch.setattr(_predict_fn, "_skorch_final_step", lambda model, method: None)


@pytest.mark.parametrize("cls", [KernelSHAP, LIME])
def test_uses_the_private_module_not_predict_proba(cls):
    pipe, X = _classifier_pipeline()
    explainer = cls(random_state=0).fit(pipe, X[:10])
    assert type(explainer.model_) is SkorchPipelineModel
    assert explainer.model_.net is not pipe[-1]
    assert explainer.model_.net.module_ is not pipe[-1].module_


@pytest.mark.parametrize(("dtype", "atol"), [(np.float32, 1e-6), (np.float64, 1e-12)])
def test_numbers_are_predict_probas(monkeypatch, dtype, atol):
    pipe, X = _classifier_pipeline(dtype)
    rng = np.random.default_rng(1)
    rows = pd.DataFrame(rng.normal(size=(500, N_FEATURES)).astype(dtype), columns=X.columns)
    adapter = _predict_fn.as_predict_model(pipe)
    adapter.input_dtype = np.dtype(dtype)
    fast = adapter([torch.tensor(rows.to_numpy(), dtype=torch.float64)])[0].numpy()
    # predict_proba feeds the net 8 rows at a time, the adapter all 500 at once
    np.testing.assert_allclose(fast, pipe.predict_proba(rows), rtol=0, atol=atol)

    kw = {"random_state": 0, "dtype": "double"}
    new = {c: c(**kw).fit(pipe, X[:10]).explain(X[:3]) for c in (KernelSHAP, LIME)}
    _slow(monkeypatch)
    for cls, res in new.items():
        explainer = cls(**kw).fit(pipe, X[:10])
        assert type(explainer.model_) is SklearnModel
        old = explainer.explain(X[:3])
        np.testing.assert_allclose(res.values, old.values, rtol=0, atol=10 * atol)
        np.testing.assert_allclose(res.predictions, old.predictions, rtol=0, atol=atol)


def test_users_pipeline_is_unchanged():
    pipe, X = _classifier_pipeline()
    pipe[-1].module_.train()  # as left by training; the explainer must not switch it
    before = snapshot(pipe[-1].module_)
    params = pipe.get_params(deep=True)
    scaler = pipe[0].mean_.copy(), pipe[0].scale_.copy()
    for cls in (KernelSHAP, LIME):
        cls(random_state=0).fit(pipe, X[:10]).explain(X[:4])
    assert_unchanged(pipe[-1].module_, before)
    after = pipe.get_params(deep=True)
    assert after.keys() == params.keys()
    # skorch builds its default callbacks anew on every get_params
    assert all(after[k] is v or after[k] == v for k, v in params.items()
               if "__callbacks__" not in k)
    assert pipe[-1].module_.training  # not switched to eval
    np.testing.assert_array_equal(pipe[0].mean_, scaler[0])
    np.testing.assert_array_equal(pipe[0].scale_, scaler[1])


@pytest.mark.parametrize("cls", [KernelSHAP, LIME])
def test_module_runs_once_per_batch_size_rows(cls):
    pipe, X = _classifier_pipeline()
    n_ref, n_rows, batch = 10, 3, 200  # batch: a multiple of n_ref (whole backgrounds)
    kw = {"n_samples": 300, "random_state": 0, "batch_size": batch}
    explainer = cls(**kw).fit(pipe, X[:n_ref])
    calls = []
    explainer.model_.net.module_.register_forward_hook(
        lambda module, args, out: calls.append(args[0].shape[0]))
    explainer.explain(X[:n_rows])
    if cls is KernelSHAP:
        perturbed = n_rows * explainer.n_coalitions_ * n_ref
    else:  # LIME: one baseline row per perturbation
        perturbed = n_rows * 300
    # the perturbed rows in full batches (skorch's predict_proba: ceil(rows / 8) passes),
    # plus the explained rows once and the one-row pass that sizes the outputs
    big = [c for c in calls if c > n_rows]
    assert len(big) == math.ceil(perturbed / batch)
    assert sum(big) == perturbed and max(big) <= batch
    assert len(calls) - len(big) <= 2


def test_nets_that_predict_their_own_way_keep_predict_proba():
    class Scaled(skorch.NeuralNetClassifier):
        def infer(self, x, **fit_params):
            return 2 * super().infer(x, **fit_params)

    X, y = _data(np.float32)
    net = Scaled(nn.Sequential(nn.Linear(N_FEATURES, 2)), max_epochs=1, train_split=None,
                 verbose=0)
    pipe = make_pipeline(StandardScaler(), net).fit(X, y)
    assert type(_predict_fn.as_predict_model(pipe)) is SklearnModel
    labels = _predict_fn.as_predict_model(pipe, response_method="predict")
    assert type(labels) is SklearnModel  # a classifier's predict is its labels


def _to_tensor(X):
    return torch.as_tensor(np.asarray(X, dtype=np.float32))


def test_transformed_data_other_than_arrays_goes_through_predict_proba():
    from sklearn.preprocessing import FunctionTransformer

    pipe, X = _classifier_pipeline()
    pipe.steps.insert(1, ("tensor", FunctionTransformer(_to_tensor)))  # skorch takes tensors
    adapter = _predict_fn.as_predict_model(pipe)
    assert type(adapter) is SkorchPipelineModel
    adapter.input_dtype = np.dtype(np.float32)
    out = adapter([torch.tensor(X.to_numpy()[:20], dtype=torch.float64)])[0].numpy()
    np.testing.assert_allclose(out, pipe.predict_proba(X[:20]), rtol=0, atol=1e-6)
