"""The explainer base class (``sknn_explain.explainers.base``): inputs, output selection,
errors, model safety, state, the sklearn protocol and layouts, on the gradient family; the
foreign QA's findings on the foundation are marked as non-regression tests."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from _torch_models import TwoInput, assert_unchanged, cnn, mlp, snapshot
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from torch import nn

from sknn_explain import (
    Attribution,
    ExpectedGradients,
    Gradient,
    IntegratedGradients,
    SmoothGrad,
    torch_expgrad,
    torch_grad,
    torch_intgrad,
    torch_smoothgrad,
)

ALL = [
    Gradient(),
    Gradient(times_input=True),
    SmoothGrad(n=4, random_state=0),
    IntegratedGradients(n=4),
    ExpectedGradients(n=4, random_state=0),
]
IDS = ["grad", "gradxinput", "smoothgrad", "intgrad", "expgrad"]
TIMES_INPUT_FAMILY = [
    Gradient(times_input=True),
    SmoothGrad(n=3, random_state=0, times_input=True),
    IntegratedGradients(n=4),
    ExpectedGradients(n=4, random_state=0),
]
TIMES_INPUT_IDS = ["gradxinput", "smoothgrad", "intgrad", "expgrad"]


@pytest.fixture
def tabular():
    torch.manual_seed(0)
    return mlp(softmax=True), np.random.default_rng(0).normal(size=(20, 5))


# ---------------------------------------------------------------- model safety
@pytest.mark.parametrize("explainer", ALL, ids=IDS)
def test_model_untouched_after_fit_and_explain(explainer, tabular):
    model, X = tabular
    model.train()  # a user model in training mode with a hook and a stale grad
    model[0].weight.grad = torch.ones_like(model[0].weight)
    model[2].weight.requires_grad_(False)
    handle = model.register_forward_hook(lambda *a: None)
    before = snapshot(model)
    clone(explainer).set_params(dtype="double").fit(model, X).explain(X[:3])
    assert_unchanged(model, before)
    handle.remove()


@pytest.mark.parametrize("explainer", ALL, ids=IDS)
def test_model_untouched_when_explain_raises(explainer, tabular):
    model, X = tabular
    before = snapshot(model)
    fitted = clone(explainer).fit(model, X)
    with pytest.raises(ValueError):
        fitted.explain(X[:, :3])
    with pytest.raises(ValueError):
        fitted.explain(X, output_idx=99)
    assert_unchanged(model, before)


def test_functional_api_restores_training_flag_also_on_error(tabular):
    model, X = tabular
    model.train()
    before = snapshot(model)
    torch_grad(model, torch.as_tensor(X[:2], dtype=torch.float32))
    assert_unchanged(model, before)
    with pytest.raises(ValueError, match="failed on input"):
        torch_grad(model, torch.zeros(2, 3))
    assert_unchanged(model, before)


def test_dropout_is_off_while_explaining():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 50), nn.Dropout(0.9), nn.Linear(50, 2)).train()
    X = torch.randn(6, 4)
    a = Gradient().fit(model).explain(X).values
    b = Gradient().fit(model).explain(X).values
    assert np.array_equal(a, b)
    assert model.training


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("bad", "error", "match"),
    [
        (np.zeros((3, 4)), ValueError, "has 4 features, but the explainer was fitted with 5"),
        (np.zeros((3, 5, 1)), ValueError, "rank"),
        (np.zeros(5), ValueError, r"reshape\(1, -1\)"),
        (np.array([[np.nan, 0, 0, 0, 0]]), ValueError, "1 NaN"),
        (np.array([[np.inf, 0, 0, 0, 0]]), ValueError, "infinite"),
        (np.zeros((0, 5)), ValueError, "empty"),
        (np.array([["a"] * 5]), TypeError, "dtype"),
        (pd.DataFrame({"a": [1.0], "b": ["x"], "c": [1], "d": [1], "e": [1]}), TypeError,
         "column 'b'"),
        (pd.Series([1.0, 2.0]), ValueError, "Series"),
    ],
    ids=["features", "rank", "1d", "nan", "inf", "empty", "strings", "df-column", "series"],
)
def test_bad_input_gives_clear_error(tabular, bad, error, match):
    model, X = tabular
    explainer = Gradient().fit(model, X)
    with pytest.raises(error, match=match):
        explainer.explain(bad)


def test_bad_reference_data_is_checked(tabular):
    model, X = tabular
    X_nan = X.copy()
    X_nan[2, 1] = np.nan
    with pytest.raises(ValueError, match="X_ref contains 1 NaN"):
        IntegratedGradients().fit(model, X_nan)
    with pytest.raises(ValueError, match="needs reference data"):
        ExpectedGradients().fit(model)


def test_unfitted_explainer_raises():
    with pytest.raises(ValueError, match="not fitted"):
        Gradient().explain(np.zeros((2, 5)))


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"dtype": "half"}, "dtype"),
        ({"device": "tpu"}, "device"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_hyperparameters(tabular, params, match):
    model, X = tabular
    with pytest.raises(ValueError, match=match):
        Gradient(**params).fit(model, X)
    with pytest.raises(ValueError, match="'n' parameter of SmoothGrad must be"):
        SmoothGrad(n=0).fit(model, X)
    with pytest.raises(ValueError, match="noise_level"):
        SmoothGrad(noise_level=-1).fit(model, X)


def test_not_a_model():
    with pytest.raises(TypeError, match="cannot explain a str"):
        Gradient().fit("model")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"output_idx": 10}, ValueError, r"out of range .* 10 node"),
        ({"output_idx": [0, 0]}, ValueError, "duplicates"),
        ({"output_idx": 1.5}, TypeError, "integers"),
        ({"output_label": "nope"}, ValueError, "unknown output_label 'nope'"),
        ({"output_idx": 0, "output_label": "Y1"}, ValueError, "not both"),
        ({"output_idx": [[0], [1]]}, ValueError, "2 output layers, but the model has 1"),
    ],
)
def test_bad_output_selection(tabular, kwargs, error, match):
    model, X = tabular
    with pytest.raises(error, match=match):
        Gradient().fit(model, X).explain(X[:2], **kwargs)


# ---------------------------------------------------------------- selection & names
def test_default_selects_first_ten_outputs():
    model = mlp(n_out=12)
    res = Gradient().fit(model).explain(torch.randn(2, 5))
    assert res.values.shape == (2, 5, 10)
    assert res.output_names == [[f"Y{i}" for i in range(1, 11)]]


def test_output_idx_and_label_select_the_same_columns(tabular):
    model, X = tabular
    full = Gradient().fit(model).explain(X)
    by_idx = Gradient().fit(model).explain(X, output_idx=[3, 1])
    by_label = Gradient().fit(model).explain(X, output_label=["Y4", "Y2"])
    assert np.array_equal(by_idx.values, full.values[..., [3, 1]])
    assert np.array_equal(by_label.values, by_idx.values)


def test_pandas_column_names_become_feature_names(tabular):
    model, X = tabular
    df = pd.DataFrame(X, columns=list("abcde"))
    explainer = Gradient().fit(model, df)
    assert list(explainer.feature_names_in_) == list("abcde")
    res = explainer.explain(X[:2])  # numpy at explain time keeps the fitted names
    assert res.input_names == [[list("abcde")]]
    frame = res.to_frame()
    assert list(frame["feature"].cat.categories) == list("abcde")
    with pytest.raises(ValueError, match="feature names"):
        explainer.explain(df.rename(columns={"a": "z"}))


def test_ignore_last_act_drops_trailing_softmax(tabular):
    model, X = tabular
    logits = model[:-1]
    with_act = Gradient(ignore_last_act=False).fit(model).explain(X).values
    without = Gradient().fit(model).explain(X).values
    ref = Gradient().fit(logits).explain(X).values
    assert np.allclose(without, ref)
    assert not np.allclose(with_act, ref)
    probs = Gradient(ignore_last_act=False).fit(model).explain(X).predictions
    assert np.allclose(probs.sum(1), 1, atol=1e-5)



# ---------------------------------------------------------------- skorch
@pytest.fixture(scope="module")
def skorch_net():
    from skorch import NeuralNetClassifier

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4)).astype(np.float32)
    y = np.array(["a", "b", "c"])[(X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)]
    from sklearn.preprocessing import LabelEncoder

    enc = LabelEncoder().fit(y)
    net = NeuralNetClassifier(
        nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)),
        criterion=nn.CrossEntropyLoss, max_epochs=3, train_split=None, verbose=0,
    )
    net.fit(X, enc.transform(y).astype(np.int64))
    return net, X


def test_skorch_net_with_class_names(skorch_net):
    net, X = skorch_net
    res = Gradient().fit(net, X).explain(X[:4], output_label=[2, 0])
    assert res.output_names == [[2, 0]]
    direct = Gradient().fit(net.module_, X).explain(X[:4], output_idx=[2, 0])
    assert np.allclose(res.values, direct.values)
    probs = Gradient(ignore_last_act=False).fit(net, X).explain(X[:4], output_idx=[0, 1, 2])
    assert np.allclose(probs.predictions, net.predict_proba(X[:4]), atol=1e-5)


def test_unfitted_skorch_net_raises():
    from skorch import NeuralNetClassifier

    net = NeuralNetClassifier(nn.Linear(4, 2))
    with pytest.raises(ValueError, match="not fitted"):
        Gradient().fit(net)


# ---------------------------------------------------------------- sklearn protocol
@pytest.mark.parametrize("explainer", ALL, ids=IDS)
def test_clone_pickle_and_repr(explainer, tabular):
    model, X = tabular
    est = clone(explainer)
    assert est.get_params() == explainer.get_params()
    assert type(est).__name__ in repr(est)
    fitted = est.fit(model, X)
    restored = pickle.loads(pickle.dumps(fitted))
    assert np.array_equal(restored.explain(X[:3]).values, fitted.explain(X[:3]).values)


def test_set_params_changes_result(tabular):
    model, X = tabular
    est = IntegratedGradients(n=2).fit(model, X)
    a = est.explain(X[:2]).values
    b = est.set_params(n=40).explain(X[:2]).values
    assert not np.allclose(a, b)


# ---------------------------------------------------------------- Attribution
def test_attribution_frame_and_repr(tabular):
    model, X = tabular
    res = IntegratedGradients(n=10).fit(model, X).explain(X[:3], output_idx=[0, 4])
    assert isinstance(res, Attribution)
    frame = res.to_frame()
    assert list(frame.columns) == [
        "data", "model_input", "model_output", "feature", "feature_2", "channel",
        "output_node", "value", "pred", "decomp_sum", "decomp_goal", "input_dimension",
        "index",
    ]
    assert len(frame) == 3 * 5 * 2
    row = frame[(frame["data"] == "data_2") & (frame["feature"] == "X3")
                & (frame["output_node"] == "Y5")]
    assert row["value"].item() == pytest.approx(res.values[1, 2, 1])
    assert row["pred"].item() == pytest.approx(res.predictions[1, 1])
    assert row["decomp_goal"].item() == pytest.approx(res.decomp_goal[1, 1])
    assert frame.groupby(["data", "output_node"], observed=True)["value"].sum().to_numpy() \
        == pytest.approx(res.decomp_sum.reshape(-1), rel=1e-5)
    text = repr(res)
    assert "IntegratedGradients" in text and "(3, 5, 2)" in text and "nan=0" in text
    assert isinstance(res.to_tensor(), torch.Tensor)


def test_signal_frame_uses_channel_and_position_names():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(2, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 6, 2))
    res = Gradient().fit(model).explain(torch.randn(2, 2, 8))
    frame = res.to_frame()
    assert set(frame["channel"]) == {"C1", "C2"}
    assert list(frame["feature"].cat.categories) == [f"L{i}" for i in range(1, 9)]
    assert frame["feature_2"].isna().all()
    assert (frame["input_dimension"] == 2).all()


def test_verbose_shows_a_progress_bar(tabular, capsys):
    model, X = tabular
    IntegratedGradients(n=5, batch_size=10, verbose=True).fit(model).explain(X)
    err = capsys.readouterr().err
    assert "IntegratedGradients" in err and "10/10" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error")
def test_cuda_without_gpu_is_a_clear_error(tabular):
    model, X = tabular
    with pytest.raises(ValueError, match="no CUDA device"):
        Gradient(device="cuda").fit(model, X)
    assert Gradient(device="auto").fit(model, X).device_.type == "cpu"


def test_skorch_net_in_pipeline_keeps_class_names_and_feature_space(skorch_net):
    import warnings

    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    net, X = skorch_net
    df = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    scaler = StandardScaler().fit(df)
    pipe = make_pipeline(scaler, net)  # net was trained on raw X; only the maths matter here
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "X does not have valid feature names" noise
        res = Gradient(dtype="double", space="raw").fit(pipe, df).explain(
            df.iloc[:3], output_label=[2])
    assert res.output_names == [[2]]
    assert res.input_names == [[["a", "b", "c", "d"]]]
    # chain rule through the folded scaler: d/dx f((x - m) / s) = f'((x - m) / s) / s
    inner = Gradient(dtype="double").fit(net.module_).explain(
        scaler.transform(df.iloc[:3]), output_idx=[2])
    assert np.allclose(res.values, inner.values / scaler.scale_[None, :, None], atol=1e-6)


def test_pipeline_and_gridsearch_misuse_point_to_attribution_transformer():
    """make_pipeline(scaler, explainer) and GridSearchCV(explainer) say what to use instead."""
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from sknn_explain import IntegratedGradients

    X, y = np.random.default_rng(0).normal(size=(20, 3)), np.arange(20) % 2
    with pytest.raises(TypeError, match="AttributionTransformer"):
        make_pipeline(StandardScaler(), IntegratedGradients()).fit(X, y)
    with pytest.raises(TypeError, match="takes the model to explain first"):
        IntegratedGradients().fit(torch.zeros(3, 3))
    with pytest.raises(TypeError, match="AttributionTransformer"):
        IntegratedGradients().score(X)
    search = GridSearchCV(IntegratedGradients(), {"n": [5, 10]}, cv=2, error_score="raise")
    with pytest.raises(TypeError, match="AttributionTransformer"):
        search.fit(X, y)


def test_to_frame_keeps_the_dataframe_index_for_joins(tabular):
    model, X = tabular
    df = pd.DataFrame(np.asarray(X[:4]), index=["a", "b", "c", "d"],
                      columns=[f"c{j}" for j in range(np.asarray(X).shape[1])])
    res = IntegratedGradients(n=5).fit(model, df).explain(df.iloc[1:3], output_idx=[0])
    frame = res.to_frame()
    assert set(frame["index"]) == {"b", "c"}
    joined = frame.merge(df, left_on="index", right_index=True)
    row = joined[(joined["index"] == "c") & (joined["feature"] == "c0")]
    assert row["c0"].item() == df.loc["c", "c0"]
    plain = IntegratedGradients(n=5).fit(model, X).explain(X[:3], output_idx=[0]).to_frame()
    assert sorted(set(plain["index"])) == [0, 1, 2]


# ------------------------------------------------ model safety: BatchNorm, buffers, dtypes
# (former tests/test_qa_foundation.py: the foundation QA's findings)
class _Untraceable(nn.Module):
    """Data-dependent control flow: torch.fx cannot trace it (gradient methods fall back)."""

    def __init__(self, n_in: int = 4, n_out: int = 3) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Linear(n_in, 6)
        self.bn = nn.BatchNorm1d(6)
        self.b = nn.Linear(6, n_out)

    def forward(self, x):
        h = self.bn(self.a(x))
        if h.sum() > 1e9:
            h = h * 2
        return self.b(torch.tanh(h))


class _Buffered(nn.Module):
    """BatchNorm + a float buffer + a frozen parameter, traceable."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Linear(4, 6)
        self.bn = nn.BatchNorm1d(6)
        self.b = nn.Linear(6, 3)
        self.register_buffer("offset", torch.linspace(-1, 1, 4))

    def forward(self, x):
        return self.b(torch.relu(self.bn(self.a(x - self.offset))))


# non-regression: foundation QA finding (named by the test)
@pytest.mark.parametrize("cls", [_Buffered, _Untraceable], ids=["converted", "fallback"])
def test_train_mode_batchnorm_statistics_survive_every_method(cls):
    torch.manual_seed(0)
    model = cls()
    X = torch.randn(16, 4)
    model.train()
    model(X)  # non-trivial running statistics
    model.a.weight.requires_grad_(False)
    before = snapshot(model)
    stats = [model.bn.running_mean.clone(), model.bn.running_var.clone(),
             model.bn.num_batches_tracked.clone()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for explainer in TIMES_INPUT_FAMILY:
            clone(explainer).fit(model, X).explain(X)
    torch_grad(model, X)
    torch_smoothgrad(model, X, n=2, random_state=0)
    torch_intgrad(model, X, n=3)
    torch_expgrad(model, X, X, n=3, random_state=0)
    with pytest.raises(ValueError):
        torch_grad(model, X[:, :3])
    assert_unchanged(model, before)
    assert model.training and all(m.training for m in model.modules())
    for old, new in zip(stats, [model.bn.running_mean, model.bn.running_var,
                                model.bn.num_batches_tracked]):
        assert torch.equal(old, new)


# non-regression: foundation QA finding (named by the test)
def test_explanation_uses_eval_statistics_buffers_and_frozen_parameters():
    torch.manual_seed(0)
    model = _Buffered()
    X = torch.randn(8, 4, dtype=torch.float64)
    model.train()
    model(X.float())
    model.a.weight.requires_grad_(False)
    res = Gradient(dtype="double").fit(model, X).explain(X)
    ref_model = _Buffered().double()
    ref_model.load_state_dict(model.state_dict())
    ref_model.eval()
    xr = X.clone().requires_grad_(True)
    out = ref_model(xr)
    ref = torch.stack([torch.autograd.grad(out[:, k].sum(), xr, retain_graph=True)[0]
                       for k in range(3)], -1)
    np.testing.assert_allclose(res.values, ref.numpy(), atol=1e-6)
    assert model.training and not model.a.weight.requires_grad


# non-regression: foundation QA finding (named by the test)
def test_float64_model_with_float_dtype_is_cast_on_a_copy():
    model = mlp(4, 3, act=nn.Tanh).double()
    X = np.random.default_rng(0).normal(size=(5, 4))
    single = Gradient().fit(model).explain(X)
    double = Gradient(dtype="double").fit(model).explain(X)
    assert single.values.dtype == np.float32 and double.values.dtype == np.float64
    np.testing.assert_allclose(single.values, double.values, atol=1e-5)
    assert all(p.dtype == torch.float64 for p in model.parameters())


# non-regression: foundation QA finding (named by the test)
def test_functional_api_on_a_model_that_promotes_the_input_dtype():
    """A float64 buffer promotes float32 inputs; the functional API used to crash with a raw
    'index_add_(): self (Float) and source (Double)' RuntimeError."""
    model = _Buffered().double().eval()
    x = torch.randn(5, 4)
    g = torch_grad(model, x, times_input=True)
    ref = torch_grad(model, x.double(), times_input=True)
    assert g.dtype == torch.float32
    np.testing.assert_allclose(g.numpy(), ref.numpy(), atol=1e-5)
    ig = torch_intgrad(model, x, n=5, return_object=True)
    assert np.isfinite(ig.decomp_goal).all()


# ---------------------------------------------------------------- clear errors (QA findings)
# non-regression: foundation QA finding (named by the test)
def test_model_failing_on_x_ref_at_fit_is_a_value_error():
    """The deferred conversion of a CNN ran the model on X_ref without wrapping its error."""
    for explainer in (Gradient(), IntegratedGradients()):
        with pytest.raises(ValueError, match="the model failed on input"):
            explainer.fit(cnn(), torch.randn(2, 3, 4, 4))  # too small for the kernels
        with pytest.raises(ValueError, match="the model failed on input"):
            explainer.fit(cnn(), torch.randn(2, 2, 8, 8))  # wrong channel count
    with pytest.raises(ValueError, match="X_ref has 5 features, but the model expects 4"):
        Gradient().fit(mlp(4, 3), np.zeros((2, 5)))


class _Detached(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 2)

    def forward(self, x):
        return self.lin(x.detach())


# non-regression: foundation QA finding (named by the test)
def test_outputs_without_gradient_give_a_clear_error():
    explainer = Gradient().fit(_Detached())
    with pytest.raises(ValueError, match="do not depend on the input through differentiable"):
        explainer.explain(torch.randn(3, 4))
    with pytest.raises(ValueError, match="do not depend on the input"):
        torch_grad(_Detached(), torch.randn(3, 4))


# non-regression: foundation QA finding (named by the test)
def test_explaining_under_no_grad_works_and_inference_mode_is_named():
    model = mlp(4, 3)
    X = torch.randn(5, 4)
    explainer = IntegratedGradients(n=4).fit(model, X)
    ref = explainer.explain(X).values
    with torch.no_grad():
        np.testing.assert_array_equal(explainer.explain(X).values, ref)
        assert torch_grad(model, X).shape == (5, 4, 3)
    with torch.inference_mode():
        with pytest.raises(ValueError, match="inside torch.inference_mode"):
            explainer.explain(X)
        with pytest.raises(ValueError, match="inside torch.inference_mode"):
            torch_grad(model, X)
        X_inference = torch.randn(5, 4)
    # tensors created in inference mode are fine inputs outside it
    assert explainer.explain(X_inference).values.shape == (5, 4, 3)


# non-regression: foundation QA finding (named by the test)
def test_values_overflowing_float32_are_rejected_not_turned_into_inf():
    model = mlp(4, 3)
    big = np.full((2, 4), 1e39)
    with pytest.raises(ValueError, match=r"X has values beyond the range of float32.*double"):
        Gradient().fit(model).explain(big)
    with pytest.raises(ValueError, match=r"X_ref has values beyond the range of float32"):
        IntegratedGradients().fit(model, big)
    with pytest.raises(ValueError, match=r"X\[1\] has values beyond the range"):
        Gradient().fit(TwoInput()).explain([np.zeros((1, 2, 6, 6)), np.full((1, 4), -1e39)])
    res = Gradient(dtype="double").fit(model).explain(big)
    assert np.isfinite(res.values).all()
    # near the limit: checked exactly (a cast may round down to the largest float32)
    limit = float(np.finfo(np.float32).max)
    with pytest.warns(RuntimeWarning, match="NaN/inf"):  # accepted; the model overflows
        Gradient().fit(model).explain(np.full((1, 4), -limit * (1 + 2**-26)))
    with pytest.raises(ValueError, match=r"beyond the range of float32"):
        Gradient().fit(model).explain(np.full((1, 4), limit * (1 + 2**-23)))


# non-regression: foundation QA finding (named by the test)
def test_failed_reference_fit_leaves_the_explainer_unfitted():
    """A refit whose reference step fails must not keep the new model with the old data_ref_."""
    X = np.random.default_rng(0).normal(size=(10, 4))
    explainer = ExpectedGradients(n=3, random_state=0).fit(mlp(4, 3), X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="failed on input"):
            explainer.fit(_Untraceable(4, 3), np.zeros((5, 7)))  # fallback copy fails on X_ref
    with pytest.raises(NotFittedError):
        explainer.explain(X)


# ---------------------------------------------------------- state and protocol (QA findings)
# non-regression: foundation QA finding (named by the test)
def test_refit_on_another_model_resets_feature_attributes():
    df = pd.DataFrame(np.random.default_rng(0).normal(size=(6, 4)), columns=list("abcd"))
    explainer = Gradient().fit(mlp(4, 3), df)
    assert explainer.n_features_in_ == 4 and list(explainer.feature_names_in_) == list("abcd")
    conv = nn.Sequential(nn.Conv1d(2, 2, 2), nn.Flatten())
    explainer.fit(conv, torch.randn(3, 2, 5))
    assert explainer.input_shapes_ == [(2, 5)]
    assert not hasattr(explainer, "n_features_in_")
    assert not hasattr(explainer, "feature_names_in_")
    explainer.fit(mlp(4, 3), df.to_numpy())  # same model, no names this time
    assert explainer.n_features_in_ == 4 and not hasattr(explainer, "feature_names_in_")
    assert explainer.explain(df).input_names == [[list("abcd")]]


# non-regression: foundation QA finding (named by the test)
@pytest.mark.parametrize("explainer", TIMES_INPUT_FAMILY, ids=TIMES_INPUT_IDS)
def test_batch_size_one_and_auto_give_identical_results(explainer):
    model = mlp(4, 3, act=nn.Tanh)
    X = np.random.default_rng(0).normal(size=(7, 4))
    base = clone(explainer).set_params(dtype="double")
    auto = clone(base).fit(model, X).explain(X)
    one = clone(base).set_params(batch_size=1).fit(model, X).explain(X)
    three = clone(base).set_params(batch_size=3).fit(model, X).explain(X)
    for other in (one, three):
        np.testing.assert_allclose(other.values, auto.values, atol=1e-12)
        np.testing.assert_allclose(other.predictions, auto.predictions, atol=1e-12)
        if auto.decomp_goal is not None:
            np.testing.assert_allclose(other.decomp_goal, auto.decomp_goal, atol=1e-12)


# non-regression: foundation QA finding (named by the test)
def test_pickle_and_clone_of_explainers_on_converted_pipeline_and_fx_graph():
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 4))
    y = np.array(["x", "y", "z"])[rng.integers(0, 3, 40)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = make_pipeline(StandardScaler(), MLPClassifier((5,), max_iter=50,
                                                             random_state=0)).fit(X, y)

    class Residual(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 2)

        def forward(self, x):
            return self.b(torch.tanh(self.a(x)) + x)

    for model in (pipe, Residual()):
        for explainer in (IntegratedGradients(n=5), ExpectedGradients(n=5, random_state=1)):
            fitted = explainer.fit(model, X)
            res = fitted.explain(X[:3])
            restored = pickle.loads(pickle.dumps(fitted))
            np.testing.assert_array_equal(restored.explain(X[:3]).values, res.values)
            np.testing.assert_array_equal(clone(fitted).fit(model, X).explain(X[:3]).values,
                                          res.values)
            assert restored.model_.converted


# non-regression: foundation QA finding — device auto resolves and runs
def test_device_auto_resolves_and_runs():
    explainer = Gradient(device="auto").fit(mlp(4, 3))
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert explainer.device_.type == expected
    assert explainer.get_params()["device"] == "auto"
    assert explainer.explain(np.zeros((2, 4))).values.shape == (2, 4, 3)


# ------------------------------------------ layouts: channels last, several inputs / outputs
# non-regression: foundation QA finding (named by the test)
@pytest.mark.parametrize("kind", ["image", "signal"])
def test_channels_last_matches_channels_first_for_every_method(kind):
    """Also the former ``test_channels_last_layout_round_trips``: result shape and the whole
    long frame agree between the two layouts."""
    torch.manual_seed(0)
    if kind == "image":
        model, x = cnn(n_out=3), torch.randn(4, 3, 8, 8, dtype=torch.float64)
    else:
        model = nn.Sequential(nn.Conv1d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(32, 2))
        x = torch.randn(4, 3, 10, dtype=torch.float64)
    x_last = np.moveaxis(x.numpy(), 1, -1)
    for explainer in (Gradient(times_input=True), IntegratedGradients(n=6),
                      ExpectedGradients(n=6, random_state=0)):
        first = clone(explainer).set_params(dtype="double").fit(model, x[:2]).explain(x)
        last = clone(explainer).set_params(dtype="double", channels_first=False).fit(
            model, x_last[:2]).explain(x_last)
        np.testing.assert_allclose(last.values, np.moveaxis(first.values, 1, -2), atol=1e-12)
        np.testing.assert_allclose(last.decomp_goal, first.decomp_goal, atol=1e-12)
    assert last.values.shape == (4, *x_last.shape[1:], model(x.float()).shape[1])
    frame = last.to_frame()
    keys = [c for c in ("data", "channel", "feature", "feature_2", "output_node") if c in frame]
    pd.testing.assert_frame_equal(
        first.to_frame().sort_values(keys).reset_index(drop=True),
        frame.sort_values(keys).reset_index(drop=True), rtol=1e-10)
    # the frame maps each channels-last value to its channel / position names
    if kind == "image":
        row = frame[(frame.data == "data_2") & (frame.channel == "C3") & (frame.feature == "H5")
                    & (frame.feature_2 == "W2") & (frame.output_node == "Y2")]
        assert row.value.item() == pytest.approx(last.values[1, 4, 1, 2, 1])
    else:
        row = frame[(frame.data == "data_2") & (frame.channel == "C3") & (frame.feature == "L5")
                    & (frame.output_node == "Y2")]
        assert row.value.item() == pytest.approx(last.values[1, 4, 2, 1])


# non-regression: foundation QA finding (named by the test)
def test_multi_input_multi_output_values_frame_and_goal_are_consistent():
    """Also the former ``test_multi_input_multi_output_model``: nested result shapes and the
    frame's ``model_output`` / ``input_dimension`` columns."""
    torch.manual_seed(0)
    model = TwoInput()
    img, tab = torch.randn(3, 2, 6, 6), torch.randn(3, 4)
    explainer = IntegratedGradients(n=300, dtype="double").fit(
        model, [torch.zeros(1, 2, 6, 6), torch.zeros(1, 4)])
    res = explainer.explain([img, tab], output_idx=[[2, 0], [1]])
    ref = model.double().eval()
    o1, o2 = ref(img.double(), tab.double())
    z1, z2 = ref(torch.zeros(1, 2, 6, 6, dtype=torch.float64),
                 torch.zeros(1, 4, dtype=torch.float64))
    np.testing.assert_allclose(res.predictions[0], o1[:, [2, 0]].detach(), atol=1e-12)
    np.testing.assert_allclose(res.predictions[1], o2[:, [1]].detach(), atol=1e-12)
    np.testing.assert_allclose(res.decomp_goal[1], (o2 - z2)[:, [1]].detach(), atol=1e-12)
    np.testing.assert_allclose(res.decomp_goal[0], (o1 - z1)[:, [2, 0]].detach(), atol=1e-12)
    for sums, goal in zip(res.decomp_sum, res.decomp_goal):
        assert np.abs(sums - goal).max() < 2e-3
    values = res.values
    assert len(values) == 2 and len(values[0]) == 2
    assert values[0][0].shape == (3, 2, 6, 6, 2) and values[0][1].shape == (3, 4, 2)
    assert values[1][0].shape == (3, 2, 6, 6, 1)
    frame = res.to_frame()
    assert set(frame["model_output"]) == {"Output_1", "Output_2"}
    assert set(frame["input_dimension"]) == {1, 3}
    agg = frame.groupby(["data", "model_output", "output_node"], observed=True).agg(
        value=("value", "sum"), decomp_sum=("decomp_sum", "first"), pred=("pred", "first"))
    np.testing.assert_allclose(agg.value, agg.decomp_sum, atol=1e-10)
    assert list(agg.loc["data_1"].index) == [("Output_1", "Y1_3"), ("Output_1", "Y1_1"),
                                             ("Output_2", "Y2_2")]
    np.testing.assert_allclose(agg.loc["data_2"].pred, [o1[1, 2].item(), o1[1, 0].item(),
                                                        o2[1, 1].item()], atol=1e-12)
    # gradient of the second output layer w.r.t. both inputs
    grad = Gradient(dtype="double").fit(model).explain([img, tab], output_idx=[None, [1]])
    leaves = [img.double().requires_grad_(True), tab.double().requires_grad_(True)]
    g_img, g_tab = torch.autograd.grad(ref(*leaves)[1][:, 1].sum(), leaves)
    assert grad.output_layers == [1]
    np.testing.assert_allclose(grad.values[0][..., 0], g_img.numpy(), atol=1e-12)
    np.testing.assert_allclose(grad.values[1][..., 0], g_tab.numpy(), atol=1e-12)


class _TupleOut(nn.Module):
    """Untraceable module with two outputs (logits, auxiliary regression)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Linear(4, 3)
        self.b = nn.Linear(4, 2)

    def forward(self, x):
        if x.sum() > 1e9:
            x = x * 2
        return self.a(x), self.b(x)


# non-regression: foundation QA finding (named by the test)
def test_skorch_nonlinearity_applies_to_the_first_output_only_on_the_fallback():
    """skorch's predict_proba applies its nonlinearity to the first output; the plain-copy
    fallback used to apply the softmax to every output (the auxiliary output became a
    probability vector)."""
    from skorch import NeuralNetClassifier

    net = NeuralNetClassifier(_TupleOut, criterion=nn.CrossEntropyLoss).initialize()
    X = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        explainer = Gradient(ignore_last_act=False).fit(net, X)
    res = explainer.explain(X, output_idx=[[0, 1, 2], [0, 1]])
    logits, aux = net.module_(torch.as_tensor(X))
    np.testing.assert_allclose(res.predictions[0], torch.softmax(logits, -1).detach(), atol=1e-6)
    np.testing.assert_allclose(res.predictions[1], aux.detach(), atol=1e-6)
