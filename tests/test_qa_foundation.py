"""QA of the foundation: input coercion, explainer state, model safety, output selection,
batching and the Attribution result, probing for silent wrong answers and unclear errors."""

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
    ExpectedGradients,
    Gradient,
    IntegratedGradients,
    SmoothGrad,
    torch_expgrad,
    torch_grad,
    torch_intgrad,
    torch_smoothgrad,
)
from sknn_explain._batching import auto_batch_size

ALL = [
    Gradient(times_input=True),
    SmoothGrad(n=3, random_state=0, times_input=True),
    IntegratedGradients(n=4),
    ExpectedGradients(n=4, random_state=0),
]
IDS = ["gradxinput", "smoothgrad", "intgrad", "expgrad"]


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


# ---------------------------------------------------------------- model safety
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
        for explainer in ALL:
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


def test_float64_model_with_float_dtype_is_cast_on_a_copy():
    model = mlp(4, 3, act=nn.Tanh).double()
    X = np.random.default_rng(0).normal(size=(5, 4))
    single = Gradient().fit(model).explain(X)
    double = Gradient(dtype="double").fit(model).explain(X)
    assert single.values.dtype == np.float32 and double.values.dtype == np.float64
    np.testing.assert_allclose(single.values, double.values, atol=1e-5)
    assert all(p.dtype == torch.float64 for p in model.parameters())


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


# ---------------------------------------------------------------- clear errors
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


def test_outputs_without_gradient_give_a_clear_error():
    explainer = Gradient().fit(_Detached())
    with pytest.raises(ValueError, match="do not depend on the input through differentiable"):
        explainer.explain(torch.randn(3, 4))
    with pytest.raises(ValueError, match="do not depend on the input"):
        torch_grad(_Detached(), torch.randn(3, 4))


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


# ---------------------------------------------------------------- state and protocol
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


@pytest.mark.parametrize("explainer", ALL, ids=IDS)
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


def test_auto_batch_size_is_bounded_for_many_outputs():
    """Gradients of a chunk hold K values per input value: a chunk sized for the input alone
    needed 16 GB for 1000 outputs of a 3x16x16 image."""
    shapes = [(3, 16, 16)]
    assert auto_batch_size(shapes) == auto_batch_size(shapes, n_outputs=16)  # defaults kept
    rows = auto_batch_size(shapes, n_outputs=1000)
    assert rows * 3 * 16 * 16 * 1000 <= 16 * 2**22
    assert auto_batch_size([(5,)], n_outputs=100_000) >= 1
    big = nn.Sequential(nn.Linear(4, 300))
    X = np.random.default_rng(0).normal(size=(9, 4))
    res = Gradient(dtype="double").fit(big).explain(X, output_idx=np.arange(300)[::-1])
    np.testing.assert_allclose(res.values[3, :, 0], big[0].weight[299].detach().double())
    np.testing.assert_allclose(res.values[5], big[0].weight.detach().double().numpy()[::-1].T)


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


def test_device_auto_resolves_and_runs():
    explainer = Gradient(device="auto").fit(mlp(4, 3))
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert explainer.device_.type == expected
    assert explainer.get_params()["device"] == "auto"
    assert explainer.explain(np.zeros((2, 4))).values.shape == (2, 4, 3)


# ---------------------------------------------------------------- input coercion
def test_all_numeric_input_types_give_the_float_result():
    model = mlp(4, 3)
    explainer = Gradient(times_input=True).fit(model)
    ints = np.arange(20).reshape(5, 4)
    ref = explainer.explain(ints.astype(np.float64)).values
    cols = list("abcd")
    same = [
        ints, ints.astype(np.uint8), ints.astype(np.float16), torch.tensor(ints),
        torch.tensor(ints, dtype=torch.float16), torch.tensor(ints, dtype=torch.bfloat16),
        pd.DataFrame(ints, columns=cols).astype("Int64"),
        pd.DataFrame(ints, columns=cols).astype("Float64"), ints.tolist(),
        [torch.tensor(r) for r in ints],  # a list of rows, single-input model
        [r for r in ints],
    ]
    for inp in same:
        np.testing.assert_allclose(explainer.explain(inp).values, ref, err_msg=repr(type(inp)))
    bools = ints % 3 == 0
    ref_bool = explainer.explain(bools.astype(float)).values
    for inp in (bools, torch.tensor(bools), pd.DataFrame(bools, columns=cols).astype("boolean")):
        np.testing.assert_allclose(explainer.explain(inp).values, ref_bool)
    one = explainer.explain(ints[:1])
    assert one.values.shape == (1, 4, 3) and one.n_samples == 1


def test_pandas_missing_values_and_bad_columns_are_named():
    explainer = Gradient().fit(mlp(4, 3))
    df = pd.DataFrame(np.arange(20).reshape(5, 4), columns=list("abcd")).astype("Int64")
    with pytest.raises(ValueError, match=r"1 NaN.*first rows: \[2\]"):
        explainer.explain(df.mask(df == 9))
    with pytest.raises(TypeError, match="column 'b' has non-numeric dtype"):
        explainer.explain(df.assign(b=pd.date_range("2020", periods=5)))
    with pytest.raises(ValueError, match="leading sample axis"):
        explainer.explain(np.zeros(4))
    fitted = Gradient().fit(mlp(4, 3), df.astype(float))
    with pytest.raises(ValueError, match="same columns in the same order"):
        fitted.explain(df[["b", "a", "c", "d"]])


@pytest.mark.parametrize("kind", ["image", "signal"])
def test_channels_last_matches_channels_first_for_every_method(kind):
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
    frame = last.to_frame()
    # the frame maps each channels-last value to its channel / position names
    if kind == "image":
        row = frame[(frame.data == "data_2") & (frame.channel == "C3") & (frame.feature == "H5")
                    & (frame.feature_2 == "W2") & (frame.output_node == "Y2")]
        assert row.value.item() == pytest.approx(last.values[1, 4, 1, 2, 1])
    else:
        row = frame[(frame.data == "data_2") & (frame.channel == "C3") & (frame.feature == "L5")
                    & (frame.output_node == "Y2")]
        assert row.value.item() == pytest.approx(last.values[1, 4, 2, 1])


# ---------------------------------------------------------------- multi-input / multi-output
def test_multi_input_multi_output_values_frame_and_goal_are_consistent():
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
    frame = res.to_frame()
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
