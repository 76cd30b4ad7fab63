"""Explainers on converted models: sklearn MLPs / Pipelines, lazy conversion, fallback; scalers
folded exactly, the decomposition goal of the explained outputs, skorch's last activation and
feature names checked against the model (the converter QA's findings)."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from _estimators import quiet_fit
from _torch_models import assert_unchanged, cnn, mlp, snapshot
from torch import nn

from sknn_explain import ExpectedGradients, Gradient, IntegratedGradients
from sknn_explain._model import TorchModel
from sknn_explain.convert import GraphModel, UnsupportedLayerError, VerificationError, convert


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4)) * [1.0, 3.0, 10.0, 0.5] + [0.0, 2.0, -5.0, 1.0]
    y = np.array(["a", "b", "c"])[(X[:, 0] > 0).astype(int) + (X[:, 1] > 2)]
    return pd.DataFrame(X, columns=["age", "income", "debt", "rate"]), y


@pytest.fixture(scope="module")
def pipe(data):
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    df, y = data
    return quiet_fit(make_pipeline(
        StandardScaler(), MLPClassifier(hidden_layer_sizes=(8,), activation="tanh",
                                        max_iter=200, random_state=0)), df, y)


def _finite_difference(f, X: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """(n, p, k) central differences of f: (n, p) -> (n, k)."""
    cols = []
    for j in range(X.shape[1]):
        e = np.zeros(X.shape[1])
        e[j] = h
        cols.append((f(X + e) - f(X - e)) / (2 * h))
    return np.stack(cols, axis=1)


def _numpy_logits(est, X: np.ndarray) -> np.ndarray:
    """sklearn's MLP forward pass without the output activation, written out in numpy."""
    acts = {"tanh": np.tanh, "relu": lambda z: np.maximum(z, 0),
            "logistic": lambda z: 1 / (1 + np.exp(-z)), "identity": lambda z: z}
    h = X
    for i, (w, b) in enumerate(zip(est.coefs_, est.intercepts_)):
        h = h @ w + b
        if i < len(est.coefs_) - 1:
            h = acts[est.activation](h)
    return h


def test_gradient_of_fitted_mlp_equals_finite_differences(data):
    from sklearn.neural_network import MLPClassifier

    df, y = data
    X = df.to_numpy()
    est = quiet_fit(MLPClassifier(hidden_layer_sizes=(6, 5), max_iter=100, random_state=0),
                       X, y)
    probs = Gradient(dtype="double", ignore_last_act=False).fit(est, X).explain(X[:5])
    fd = _finite_difference(est.predict_proba, X[:5])
    assert probs.values.shape == (5, 4, 3)
    assert np.abs(probs.values - fd).max() < 1e-7
    assert np.allclose(probs.predictions, est.predict_proba(X[:5]), atol=1e-12)
    # default ignore_last_act=True: gradients of the logits (softmax dropped, as innsight)
    logits = Gradient(dtype="double").fit(est, X).explain(X[:5])
    fd = _finite_difference(lambda z: _numpy_logits(est, z), X[:5])
    assert np.abs(logits.values - fd).max() < 1e-7
    assert logits.output_names == [["a", "b", "c"]]


def test_pipeline_attributions_in_original_feature_space(pipe, data):
    df, _ = data
    explainer = Gradient(dtype="double", ignore_last_act=False, space="raw").fit(pipe, df)
    assert isinstance(explainer.model_, GraphModel)
    assert explainer.model_.input_names == [[["age", "income", "debt", "rate"]]]
    res = explainer.explain(df.iloc[:4], output_label="b")
    fd = _finite_difference(lambda z: pipe.predict_proba(pd.DataFrame(z, columns=df.columns)),
                            df.to_numpy()[:4])
    assert np.abs(res.values[..., 0] - fd[..., 1]).max() < 1e-7
    assert list(res.to_frame()["feature"].cat.categories) == list(df.columns)
    # the scaler is folded in: attributions differ from those w.r.t. the scaled inputs
    scaled = pipe[0].transform(df.iloc[:4])
    inner = Gradient(dtype="double", ignore_last_act=False).fit(pipe[-1], scaled).explain(
        scaled, output_label="b")
    assert np.allclose(res.values, inner.values / pipe[0].scale_[None, :, None])


def test_intgrad_and_expgrad_on_pipeline_satisfy_completeness(pipe, data):
    df, _ = data
    ig = IntegratedGradients(n=1000, dtype="double").fit(pipe, df).explain(df.iloc[:3])
    assert np.allclose(ig.decomp_sum, ig.decomp_goal, atol=1e-3)
    eg = ExpectedGradients(n=20, random_state=0, dtype="double").fit(pipe, df).explain(
        df.iloc[:3])
    assert eg.values.shape == (3, 4, 3)


def test_binary_mlp_single_output_named_positive_class(data):
    from sklearn.neural_network import MLPClassifier

    df, y = data
    est = quiet_fit(MLPClassifier(hidden_layer_sizes=(4,), max_iter=100, random_state=0),
                       df.to_numpy(), y == "a")
    res = Gradient(dtype="double", ignore_last_act=False).fit(est).explain(df.to_numpy()[:3])
    assert res.output_names == [[True]]
    assert np.allclose(res.predictions[:, 0], est.predict_proba(df.to_numpy()[:3])[:, 1])
    logit = Gradient(dtype="double").fit(est).explain(df.to_numpy()[:3])
    fd = _finite_difference(lambda z: _numpy_logits(est, z), df.to_numpy()[:3])
    assert np.abs(logit.values - fd).max() < 1e-7


def test_skorch_binary_classifier():
    from skorch import NeuralNetBinaryClassifier

    torch.manual_seed(0)
    X = np.random.default_rng(1).normal(size=(30, 3)).astype(np.float32)
    yb = (X[:, 0] > 0).astype(np.float32)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 1)

        def forward(self, x):
            return self.lin(x).squeeze(-1)

    net = NeuralNetBinaryClassifier(Net, max_epochs=2, train_split=None, verbose=0).fit(X, yb)
    res = Gradient(ignore_last_act=False).fit(net, X).explain(X[:4])
    assert np.allclose(res.predictions[:, 0], net.predict_proba(X[:4])[:, 1], atol=1e-6)
    logit = Gradient().fit(net, X).explain(X[:4])
    assert np.allclose(logit.values[..., 0], net.module_.lin.weight.detach().numpy())


def test_lazy_conversion_when_the_shape_is_unknown_at_fit():
    model = cnn()
    explainer = Gradient(dtype="double").fit(model)  # no X_ref: a CNN's shape is unknown
    assert explainer.model_.pending and explainer.model_.n_inputs == 1
    x = torch.randn(3, 3, 8, 8)
    res = explainer.explain(x)
    assert explainer.model_.converted and explainer.model_.input_shapes == [(3, 8, 8)]
    ref = torch.autograd.functional.jacobian(lambda t: model.double()(t).sum(0), x.double())
    assert np.allclose(res.values, ref.permute(1, 2, 3, 4, 0).numpy(), atol=1e-10)
    restored = pickle.loads(pickle.dumps(explainer))
    assert np.array_equal(restored.explain(x).values, res.values)


def test_pending_explainer_pickles_and_reports_input_errors():
    explainer = Gradient().fit(cnn())
    restored = pickle.loads(pickle.dumps(explainer))
    assert restored.model_.pending
    with pytest.raises(ValueError, match="failed on input"):
        restored.explain(torch.randn(2, 5, 8, 8))  # the user's error, not a conversion error
    assert restored.model_.pending
    assert restored.explain(torch.randn(2, 3, 8, 8)).values.shape == (2, 3, 8, 8, 10)


class LSTMNet(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.encoder = nn.Module()
        self.encoder.rnn = nn.RNNCell(3, 4)  # unsupported
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return torch.softmax(self.head(self.encoder.rnn(x[:, -1])), dim=-1)


class NeedsGraph(Gradient):
    """Stands in for a propagation explainer (LRP, DeepLift): the graph is required."""

    _requires_graph = True


def test_unsupported_model_falls_back_for_gradients_and_warns_on_ignore_last_act():
    model = LSTMNet()
    x = torch.randn(4, 5, 3)
    with pytest.warns(UserWarning, match="ignore_last_act=True could not be honoured"):
        explainer = Gradient().fit(model, x)
    assert isinstance(explainer.model_, TorchModel)
    assert "nn.RNNCell at 'encoder.rnn'" in explainer.model_.conversion_error
    res = Gradient(ignore_last_act=False).fit(model, x).explain(x)
    xr = x.clone().requires_grad_()
    (g,) = torch.autograd.grad(model(xr)[:, 1].sum(), xr)
    assert np.allclose(res.values[..., 1], g.numpy(), atol=1e-6)
    with pytest.raises(UnsupportedLayerError, match=r"nn\.RNNCell at 'encoder\.rnn'"):
        NeedsGraph().fit(model, x)


def test_no_warning_when_the_fallback_can_drop_the_last_activation():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2), nn.Softmax(dim=1))
    model[1] = nn.RNNCell(4, 4)  # unconvertible, but the Sequential's softmax can be dropped
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        explainer = Gradient().fit(model, torch.randn(2, 3))
    assert explainer.model_.removed_activation == "Softmax"


class BatchDependentCNN(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 2, 3)

    def forward(self, x):
        return self.conv(x).flatten(1) * x.shape[0]  # batch size baked into the graph


def test_lazy_verification_failure_falls_back_or_raises():
    x = torch.randn(2, 1, 5, 5)
    explainer = Gradient().fit(BatchDependentCNN())
    res = explainer.explain(x)  # conversion fails on the first call: plain copy used
    assert not explainer.model_.converted and "differs by" in explainer.model_.conversion_error
    xr = x.clone().requires_grad_()
    (g,) = torch.autograd.grad(BatchDependentCNN()(xr)[:, 0].sum(), xr)
    assert np.allclose(res.values[..., 0], g.numpy(), atol=1e-5)
    strict = NeedsGraph().fit(BatchDependentCNN())
    with pytest.raises(VerificationError, match="differs by"):
        strict.explain(x)


def test_converted_model_honours_ignore_last_act_and_dtype():
    model = mlp(softmax=True)
    before = snapshot(model)
    explainer = Gradient(dtype="double").fit(model)
    adapter = explainer.model_
    assert adapter.converted and adapter.removed_activation == "softmax"
    assert adapter.graph.outputs != adapter.full_graph.outputs
    assert all(b.dtype == torch.float64 for b in adapter.graph.buffers())
    x = torch.randn(3, 5)
    logits = model[:-1].double()(x.double())
    assert np.allclose(explainer.explain(x).predictions, logits.detach().numpy())
    model.float()
    assert_unchanged(model, before)
    assert adapter.output_names([10]) == [[f"Y{j}" for j in range(1, 11)]]


def test_graph_and_dict_models_can_be_explained():
    from sknn_explain.convert import convert

    graph = convert(mlp(n_out=3), output_names=["u", "v", "w"])
    res = Gradient().fit(graph).explain(np.ones((2, 5)), output_label="v")
    assert res.output_names == [["v"]]
    d = graph.to_dict()
    res2 = Gradient().fit(d).explain(np.ones((2, 5)), output_label="v")
    assert np.allclose(res.values, res2.values)


# ------------------------------------------------------------------ scikit-learn sources
# (former tests/test_qa_converter.py: the converter QA's findings on sklearn / skorch
# models and names)
@pytest.fixture(scope="module")
def tab():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3)) * [1.0, 10.0, 100.0] + [0.0, 5.0, -50.0]
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 5)
    return X, y


def _fd(f, X: np.ndarray) -> np.ndarray:
    cols = []
    for j in range(X.shape[1]):
        h = 1e-6 * max(1.0, np.abs(X[:, j]).max())
        e = np.zeros(X.shape[1])
        e[j] = h
        cols.append((f(X + e) - f(X - e)) / (2 * h))
    return np.stack(cols, axis=1)


@pytest.mark.parametrize("scalers", [
    lambda: [_sk("StandardScaler", with_mean=False)],
    lambda: [_sk("StandardScaler", with_std=False)],
    lambda: [_sk("RobustScaler", with_centering=False)],
    lambda: [_sk("RobustScaler", with_scaling=False, quantile_range=(10.0, 90.0))],
    lambda: [_sk("MinMaxScaler", feature_range=(-2, 3))],
    lambda: ["passthrough", _sk("StandardScaler"), _sk("MaxAbsScaler")],
], ids=["std-no-mean", "std-no-std", "robust-no-center", "robust-no-scale", "minmax",
        "chain"])
# non-regression: converter QA finding — scaler flags are folded exactly
def test_scaler_flags_are_folded_exactly(tab, scalers):
    """StandardScaler(with_mean=False) keeps a fitted mean_ it never subtracts (regression:
    the converter used to subtract it and the conversion failed verification)."""
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline

    X, y = tab
    pipe = quiet_fit(make_pipeline(*scalers(), MLPClassifier(
        (5,), activation="logistic", max_iter=100, random_state=0)), X, y)
    res = Gradient(dtype="double", ignore_last_act=False, space="raw").fit(pipe).explain(X[:4])
    ref = _fd(pipe.predict_proba, X[:4])
    assert np.abs(res.values - ref).max() < 1e-6 * np.abs(ref).max()


def _sk(name: str, **kwargs):
    import sklearn.preprocessing as pre

    return getattr(pre, name)(**kwargs)


def _mlp_logits(est, X: np.ndarray) -> np.ndarray:
    acts = {"tanh": np.tanh, "relu": lambda z: np.maximum(z, 0)}
    h = X
    for i, (w, b) in enumerate(zip(est.coefs_, est.intercepts_)):
        h = h @ w + b
        if i < len(est.coefs_) - 1:
            h = acts[est.activation](h)
    return h


# non-regression: converter QA finding — integrated gradients goal uses the explained outputs
@pytest.mark.parametrize("kind", ["binary", "multiclass", "regressor"])
def test_integrated_gradients_goal_uses_the_explained_outputs(tab, kind):
    """pred and decomp_goal follow ignore_last_act: logits with True, probabilities (the
    estimator's own predict_proba) with False, and IG sums to that goal."""
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    X, y = tab
    Xs = X / [1.0, 10.0, 100.0]
    if kind == "regressor":
        est = quiet_fit(MLPRegressor(hidden_layer_sizes=(6,), activation="tanh", max_iter=200,
                                      random_state=0), Xs, Xs[:, 0] * 2)
    else:
        labels = np.array(["lo", "mid", "hi"])[y] if kind == "multiclass" else np.array(
            ["no", "yes"])[(y > 0).astype(int)]
        est = quiet_fit(MLPClassifier((6,), activation="tanh", max_iter=200, random_state=0),
                         Xs, labels)
    ref_row = Xs[:1] * 0.5
    for ila in (True, False):
        res = IntegratedGradients(n=400, dtype="double", ignore_last_act=ila).fit(
            est, ref_row).explain(Xs[:5])
        if ila or kind == "regressor":
            f = lambda z: _mlp_logits(est, z)  # noqa: E731
        elif kind == "binary":
            f = lambda z: est.predict_proba(z)[:, 1:]  # noqa: E731
        else:
            f = est.predict_proba
        np.testing.assert_allclose(res.predictions, f(Xs[:5]), atol=1e-10)
        np.testing.assert_allclose(res.decomp_goal, f(Xs[:5]) - f(ref_row), atol=1e-10)
        assert np.abs(res.decomp_sum - res.decomp_goal).max() < 5e-3
    if kind == "binary":
        assert res.output_names == [["yes"]]
    if kind == "multiclass":
        by_label = Gradient().fit(est).explain(Xs[:3], output_label=["mid", "hi"])
        by_idx = Gradient().fit(est).explain(Xs[:3], output_idx=[
            list(est.classes_).index("mid"), list(est.classes_).index("hi")])
        assert by_label.output_names == [["mid", "hi"]]
        np.testing.assert_array_equal(by_label.values, by_idx.values)


class _SoftmaxNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.seq = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3), nn.Softmax(dim=-1))

    def forward(self, x):
        return self.seq(x)


# non-regression: converter QA finding — skorch last activation is dropped once
@pytest.mark.parametrize("setup", ["nll-softmax-module", "cross-entropy-logits"])
def test_skorch_last_activation_is_dropped_once(setup):
    """NLLLoss + a module ending in Softmax (skorch's identity nonlinearity) and
    CrossEntropyLoss + a logits module (skorch's softmax) both explain logits by default
    and skorch's predict_proba with ignore_last_act=False."""
    from skorch import NeuralNetClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 4)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    torch.manual_seed(0)
    if setup == "nll-softmax-module":
        net = NeuralNetClassifier(_SoftmaxNet, criterion=nn.NLLLoss, max_epochs=1,
                                  train_split=None, verbose=0)
    else:
        net = NeuralNetClassifier(nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)),
                                  criterion=nn.CrossEntropyLoss, max_epochs=1,
                                  train_split=None, verbose=0)
    net.fit(X, y)
    proba = net.predict_proba(X[:5]).astype(np.float64)
    logits = Gradient(dtype="double").fit(net, X).explain(X[:5])
    probs = Gradient(dtype="double", ignore_last_act=False).fit(net, X).explain(X[:5])
    np.testing.assert_allclose(probs.predictions, proba, atol=1e-6)
    log_ratio = np.log(proba) - np.log(proba[:, :1])  # logits up to a per-row constant
    np.testing.assert_allclose(logits.predictions - logits.predictions[:, :1], log_ratio,
                               atol=1e-5)
    assert not np.allclose(logits.predictions.sum(1), 1.0)


# non-regression: converter QA finding — x ref columns must match the models feature names
def test_x_ref_columns_must_match_the_models_feature_names(tab):
    """A Pipeline fitted on a DataFrame knows its column order: an X_ref with shuffled
    columns used to give a silently wrong baseline / wrong names."""
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = tab
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    pipe = quiet_fit(make_pipeline(StandardScaler(), MLPClassifier(
        (4,), max_iter=50, random_state=0)), df, y)
    shuffled = df[["c", "b", "a"]]
    with pytest.raises(ValueError, match=r"X_ref has feature names \['c', 'b', 'a'\]"):
        IntegratedGradients(space="raw").fit(pipe, shuffled)
    with pytest.raises(ValueError, match=r"X_ref has the pipeline's columns in another order"):
        IntegratedGradients().fit(pipe, shuffled)  # network space: the scaler runs first
    with pytest.raises(ValueError, match=r"X_ref has feature names \['c', 'b', 'a'\]"):
        convert(pipe, X_ref=shuffled)
    ig = IntegratedGradients(dtype="double", space="raw").fit(pipe, df[:5])
    np.testing.assert_allclose(ig.x_ref_[0].numpy(), X[:5].mean(0, keepdims=True))
    assert list(ig.feature_names_in_) == ["a", "b", "c"]
    assert convert(pipe, X_ref=df).input_names == [[["a", "b", "c"]]]
