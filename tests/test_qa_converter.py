"""QA of the converter: gradients through converted graphs equal the original module's, in
double precision, for every supported layer; ignore_last_act on every model source; scalers
folded exactly (with_mean / with_centering flags); names checked against the model."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sknn_explain import Gradient, IntegratedGradients
from sknn_explain.convert import GraphModel, convert


def _quiet_fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X, y)


def _jacobian(model: nn.Module, xs: list[torch.Tensor], k: int) -> list[np.ndarray]:
    """Autograd reference: per input, (n, *shape, k) gradients of the first k outputs."""
    leaves = [x.clone().requires_grad_(True) for x in xs]
    out = model(*leaves)
    out = (out[0] if isinstance(out, tuple) else out).reshape(xs[0].shape[0], -1)
    cols = [torch.autograd.grad(out[:, j].sum(), leaves, retain_graph=True) for j in range(k)]
    return [torch.stack([c[i] for c in cols], -1).numpy() for i in range(len(xs))]


def _assert_graph_gradient(model: nn.Module, shape: tuple[int, ...], k: int = 3) -> None:
    torch.manual_seed(1)
    model = model.double().eval()
    x = torch.randn(4, *shape, dtype=torch.float64)
    explainer = Gradient(dtype="double", ignore_last_act=False).fit(model, x)
    assert isinstance(explainer.model_, GraphModel) and explainer.model_.converted, (
        getattr(explainer.model_, "conversion_error", None))
    n_out = model(x).reshape(4, -1).shape[1]
    k = min(k, n_out)
    res = explainer.explain(x, output_idx=list(range(k)))
    (ref,) = _jacobian(model, [x], k)
    np.testing.assert_allclose(res.values, ref, atol=1e-10)
    np.testing.assert_allclose(res.predictions, model(x).reshape(4, -1)[:, :k].detach().numpy(),
                               atol=1e-10)


def _bn(cls, n: int, affine: bool = True) -> nn.Module:
    bn = cls(n, affine=affine)
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2.0)
        if affine:
            bn.weight.uniform_(0.5, 2.0)
            bn.bias.uniform_(-1, 1)
    return bn


CONV_KWARGS = [
    dict(stride=2), dict(dilation=2, padding=2), dict(groups=2), dict(padding=1, stride=3),
    dict(padding=3, padding_mode="reflect"), dict(padding=2, padding_mode="replicate"),
    dict(padding=2, padding_mode="circular"), dict(padding="same"),
    dict(padding="same", dilation=2), dict(padding="valid", bias=False),
]


@pytest.mark.parametrize("kwargs", CONV_KWARGS, ids=lambda k: ",".join(f"{a}={b}" for a, b in
                                                                      k.items()))
@pytest.mark.parametrize("nd", [1, 2])
def test_conv_gradients_equal_torch(kwargs, nd):
    torch.manual_seed(0)
    conv = (nn.Conv1d if nd == 1 else nn.Conv2d)(4, 6, 4 if kwargs.get("padding") == "same"
                                                 else 3, **kwargs)
    shape = (4, 13) if nd == 1 else (4, 9, 10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's note on even kernels with padding="same"
        _assert_graph_gradient(nn.Sequential(conv, nn.Tanh(), nn.Flatten()), shape)


POOLS_1D = [
    nn.MaxPool1d(3, 2, 1), nn.MaxPool1d(3, 2, 1, ceil_mode=True), nn.MaxPool1d(2, dilation=2),
    nn.AvgPool1d(3, 2, 1), nn.AvgPool1d(3, 2, 1, ceil_mode=True, count_include_pad=False),
    nn.AdaptiveAvgPool1d(3), nn.AdaptiveMaxPool1d(5), nn.AdaptiveAvgPool1d(1),
]
POOLS_2D = [
    nn.MaxPool2d(3, 2, 1), nn.MaxPool2d((3, 2), (2, 1), (1, 0), ceil_mode=True),
    nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
    nn.AvgPool2d(3, 2, 1, divisor_override=2), nn.AvgPool2d(2, ceil_mode=True),
    nn.AdaptiveAvgPool2d((3, None)), nn.AdaptiveMaxPool2d((2, 3)), nn.AdaptiveAvgPool2d(1),
]


@pytest.mark.parametrize("pool", POOLS_1D + POOLS_2D, ids=repr)
def test_pooling_gradients_equal_torch(pool):
    torch.manual_seed(0)
    nd = 1 if "1d" in type(pool).__name__ else 2
    conv = nn.Conv1d(2, 3, 2) if nd == 1 else nn.Conv2d(2, 3, 2)
    shape = (2, 15) if nd == 1 else (2, 11, 10)
    _assert_graph_gradient(nn.Sequential(conv, pool, nn.Flatten()), shape)


ACTIVATIONS = [
    nn.GELU(), nn.GELU("tanh"), nn.SiLU(), nn.Softplus(beta=2.5, threshold=3.0),
    nn.LeakyReLU(0.3), nn.ELU(alpha=0.5), nn.Sigmoid(), nn.Tanh(), nn.ReLU(),
    nn.Softmax(dim=1), nn.LogSoftmax(dim=-1),
]


@pytest.mark.parametrize("act", ACTIVATIONS, ids=repr)
def test_activation_parameters_survive_conversion(act):
    torch.manual_seed(0)
    # the second activation makes the explained output nonlinear even when the first is linear
    # for these inputs; both carry the module's own parameters (slope, beta, alpha, dim)
    _assert_graph_gradient(nn.Sequential(nn.Linear(5, 6), act, nn.Linear(6, 4), act), (5,))


@pytest.mark.parametrize("name,model,shape", [
    ("bn1d", lambda: nn.Sequential(nn.Linear(5, 6), _bn(nn.BatchNorm1d, 6), nn.ReLU(),
                                   nn.Linear(6, 2)), (5,)),
    ("bn1d-signal", lambda: nn.Sequential(nn.Conv1d(2, 3, 2), _bn(nn.BatchNorm1d, 3),
                                          nn.Flatten()), (2, 6)),
    ("bn1d-no-affine", lambda: nn.Sequential(nn.Conv1d(2, 3, 2),
                                             _bn(nn.BatchNorm1d, 3, affine=False),
                                             nn.Flatten()), (2, 6)),
    ("bn2d-flatten2", lambda: nn.Sequential(nn.Conv2d(2, 3, 2), _bn(nn.BatchNorm2d, 3),
                                            nn.Flatten(2), nn.Flatten()), (2, 5, 5)),
    ("flatten(1,2)", lambda: nn.Sequential(nn.Conv2d(2, 3, 2), nn.Flatten(1, 2),
                                           nn.Flatten()), (2, 5, 5)),
    ("flatten(-2,-1)", lambda: nn.Sequential(nn.Conv2d(2, 3, 2), nn.Flatten(-2, -1),
                                             nn.Flatten()), (2, 5, 5)),
    ("unflatten", lambda: nn.Sequential(nn.Conv2d(2, 3, 2), nn.Unflatten(1, (1, 3)),
                                        nn.Flatten()), (2, 5, 5)),
    ("zeropad", lambda: nn.Sequential(nn.ZeroPad2d((1, 2, 0, 3)), nn.Conv2d(2, 2, 2),
                                      nn.Flatten()), (2, 5, 5)),
    ("reflectpad", lambda: nn.Sequential(nn.ReflectionPad2d(2), nn.Conv2d(2, 2, 2),
                                         nn.Flatten()), (2, 5, 5)),
    ("replicatepad", lambda: nn.Sequential(nn.ReplicationPad1d((1, 3)), nn.Conv1d(2, 2, 2),
                                           nn.Flatten()), (2, 6)),
    ("circularpad", lambda: nn.Sequential(nn.CircularPad2d(1), nn.Conv2d(2, 2, 2),
                                          nn.Flatten()), (2, 5, 5)),
    ("constantpad", lambda: nn.Sequential(nn.ConstantPad1d(2, 0.7), nn.Conv1d(2, 2, 2),
                                          nn.Tanh(), nn.Flatten()), (2, 6)),
])
def test_normalisation_reshape_and_padding_gradients_equal_torch(name, model, shape):
    torch.manual_seed(0)
    _assert_graph_gradient(model(), shape)


class _Fn(nn.Module):
    """A module whose forward is one of the functional expressions below."""

    def __init__(self, fn) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fn = fn
        self.lin = nn.Linear(4, 3)
        self.conv = nn.Conv2d(2, 3, 3, padding=1)
        self.p = nn.Parameter(torch.randn(4))
        self.w = nn.Parameter(torch.randn(1, 3, 1, 1))

    def forward(self, x):
        return self.fn(self, x)


TABULAR_FUNCTIONS = {
    "2 - x": lambda s, x: s.lin(2 - x),
    "add(x, p, alpha)": lambda s, x: s.lin(torch.add(x, s.p, alpha=2)),
    "add(p, x, alpha)": lambda s, x: s.lin(torch.add(s.p, x, alpha=3)),
    "sub(p, x, alpha)": lambda s, x: s.lin(torch.sub(s.p, x, alpha=3)),
    "sub(x, tanh x, alpha)": lambda s, x: s.lin(torch.sub(x, torch.tanh(x), alpha=0.5)),
    "x.sub(p, alpha)": lambda s, x: s.lin(x.sub(s.p, alpha=2)),
    "x.add(tanh x, alpha)": lambda s, x: s.lin(x.add(torch.tanh(x), alpha=3)),
    "x * p": lambda s, x: s.lin(x * s.p),
    "x / (|p| + 1)": lambda s, x: s.lin(x / (s.p.abs() + 1)),
    "-x": lambda s, x: s.lin(-x),
    "x + x": lambda s, x: s.lin(x + x),
    "x + arange": lambda s, x: s.lin(x + torch.arange(4.0, dtype=x.dtype)),
    "view(size(0), -1)": lambda s, x: s.lin(x.view(x.size(0), -1)),
    "unsqueeze/squeeze": lambda s, x: s.lin(x.unsqueeze(1).squeeze(1)),
    "cat(dim=-1)": lambda s, x: torch.cat([s.lin(x), torch.tanh(s.lin(x))], dim=-1),
    "F.linear kw": lambda s, x: F.linear(input=x, weight=s.lin.weight),
    "exp": lambda s, x: s.lin(torch.exp(x)),
    "log_softmax method": lambda s, x: s.lin(x).log_softmax(-1),
}
IMAGE_FUNCTIONS = {
    "mean((2, 3))": lambda s, x: s.conv(x).mean((2, 3)),
    "mean((-1, -2), keepdim)": lambda s, x: s.conv(x).mean((-1, -2), keepdim=True).flatten(1),
    "x * per-channel": lambda s, x: (s.conv(x) * s.w).flatten(1),
    "x + per-channel (3,1,1)": lambda s, x: (s.conv(x) + s.w[0]).flatten(1),
    "F.pad reflect": lambda s, x: s.conv(F.pad(x, (1, 2, 0, 1), mode="reflect")).flatten(1),
    "F.pad value": lambda s, x: s.conv(F.pad(x, (1, 1, 1, 1), value=0.5)).flatten(1),
    "F.conv2d same": lambda s, x: F.conv2d(x, s.conv.weight, s.conv.bias, padding="same",
                                           dilation=2).flatten(1),
    "F.conv2d tuples": lambda s, x: F.conv2d(x, s.conv.weight, None, (2, 1), (1, 0)).flatten(1),
    "F.max_pool2d": lambda s, x: F.max_pool2d(s.conv(x), 2, padding=1).flatten(1),
    "F.avg_pool2d ceil": lambda s, x: F.avg_pool2d(s.conv(x), 3, 2, 1, True, False).flatten(1),
    "F.avg_pool2d divisor": lambda s, x: F.avg_pool2d(s.conv(x), 2,
                                                      divisor_override=3).flatten(1),
    "F.adaptive_max_pool2d": lambda s, x: F.adaptive_max_pool2d(s.conv(x), (2, 1)).flatten(1),
    "F.batch_norm": lambda s, x: F.batch_norm(
        s.conv(x), s.w.detach().flatten() * 0.3, s.w.detach().flatten() ** 2 + 1,
        s.w.flatten(), None, False, 0.1, 1e-3).flatten(1),
    "softmax(dim=1)": lambda s, x: torch.softmax(s.conv(x), 1).flatten(1),
    "cat channels": lambda s, x: torch.cat([s.conv(x), x], 1).flatten(1),
    "view(n, 3, -1)": lambda s, x: s.conv(x).view(x.shape[0], 3, -1).flatten(1),
}


@pytest.mark.parametrize("name", list(TABULAR_FUNCTIONS))
def test_functional_tabular_expressions_gradients_equal_torch(name):
    _assert_graph_gradient(_Fn(TABULAR_FUNCTIONS[name]), (4,))


@pytest.mark.parametrize("name", list(IMAGE_FUNCTIONS))
def test_functional_image_expressions_gradients_equal_torch(name):
    _assert_graph_gradient(_Fn(IMAGE_FUNCTIONS[name]), (2, 5, 5))


class _TwoHeads(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Linear(4, 6)
        self.a = nn.Linear(6, 3)
        self.b = nn.Linear(6, 2)

    def forward(self, x):
        h = torch.tanh(self.body(x))
        return torch.softmax(self.a(h), dim=1), torch.sigmoid(self.b(h))


def test_ignore_last_act_on_every_output_layer_with_per_layer_output_idx():
    model = _TwoHeads().double().eval()
    x = torch.randn(5, 4, dtype=torch.float64)
    res = Gradient(dtype="double").fit(model, x).explain(x, output_idx=[[2, 0], [1]])
    logits = [model.a(torch.tanh(model.body(x))), model.b(torch.tanh(model.body(x)))]
    np.testing.assert_allclose(res.predictions[0], logits[0][:, [2, 0]].detach(), atol=1e-12)
    np.testing.assert_allclose(res.predictions[1], logits[1][:, [1]].detach(), atol=1e-12)
    xr = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model.b(torch.tanh(model.body(xr)))[:, 1].sum(), xr)
    np.testing.assert_allclose(res.values[1][..., 0], g.numpy(), atol=1e-12)
    kept = Gradient(dtype="double", ignore_last_act=False).fit(model, x).explain(
        x, output_idx=[None, [1]])
    np.testing.assert_allclose(kept.predictions, model(x)[1][:, [1]].detach(), atol=1e-12)


# ------------------------------------------------------------------ scikit-learn sources
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
def test_scaler_flags_are_folded_exactly(tab, scalers):
    """StandardScaler(with_mean=False) keeps a fitted mean_ it never subtracts (regression:
    the converter used to subtract it and the conversion failed verification)."""
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline

    X, y = tab
    pipe = _quiet_fit(make_pipeline(*scalers(), MLPClassifier(
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


@pytest.mark.parametrize("kind", ["binary", "multiclass", "regressor"])
def test_integrated_gradients_goal_uses_the_explained_outputs(tab, kind):
    """pred and decomp_goal follow ignore_last_act: logits with True, probabilities (the
    estimator's own predict_proba) with False, and IG sums to that goal."""
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    X, y = tab
    Xs = X / [1.0, 10.0, 100.0]
    if kind == "regressor":
        est = _quiet_fit(MLPRegressor(hidden_layer_sizes=(6,), activation="tanh", max_iter=200,
                                      random_state=0), Xs, Xs[:, 0] * 2)
    else:
        labels = np.array(["lo", "mid", "hi"])[y] if kind == "multiclass" else np.array(
            ["no", "yes"])[(y > 0).astype(int)]
        est = _quiet_fit(MLPClassifier((6,), activation="tanh", max_iter=200, random_state=0),
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


def test_x_ref_columns_must_match_the_models_feature_names(tab):
    """A Pipeline fitted on a DataFrame knows its column order: an X_ref with shuffled
    columns used to give a silently wrong baseline / wrong names."""
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = tab
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    pipe = _quiet_fit(make_pipeline(StandardScaler(), MLPClassifier(
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
