"""Gradient family against captum (independent reference) and against the axioms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _torch_models import cnn, mlp
from captum.attr import GradientShap, InputXGradient, NoiseTunnel, Saliency
from captum.attr import IntegratedGradients as CaptumIG
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

N_OUT = 10


def _captum_all_outputs(attr_fn, x, n_out=N_OUT, **kw) -> np.ndarray:
    """captum, one call per output node, stacked on a trailing axis."""
    return np.stack([attr_fn(x, target=k, **kw).detach().numpy() for k in range(n_out)], axis=-1)


@pytest.fixture(params=["mlp", "cnn"])
def model_and_data(request):
    torch.manual_seed(1)
    if request.param == "mlp":
        model, x = mlp(seed=1).double(), torch.randn(7, 5, dtype=torch.float64)
    else:
        model, x = cnn(seed=1).double(), torch.randn(4, 3, 8, 8, dtype=torch.float64)
    return model.eval(), x


def test_gradient_equals_captum_saliency(model_and_data):
    model, x = model_and_data
    ours = Gradient(dtype="double").fit(model).explain(x).values
    ref = _captum_all_outputs(Saliency(model).attribute, x.clone().requires_grad_(), abs=False)
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).mean() < 1e-6


def test_gradient_x_input_equals_captum(model_and_data):
    model, x = model_and_data
    ours = Gradient(times_input=True, dtype="double").fit(model).explain(x).values
    ref = _captum_all_outputs(InputXGradient(model).attribute, x.clone().requires_grad_())
    assert np.abs(ours - ref).mean() < 1e-6


@pytest.mark.parametrize("n", [2, 7, 50])
def test_integrated_gradients_equals_captum_riemann_right(model_and_data, n):
    model, x = model_and_data
    torch.manual_seed(3)
    x_ref = torch.randn(1, *x.shape[1:], dtype=torch.float64)
    ours = IntegratedGradients(n=n, dtype="double", batch_size=13).fit(model, x_ref).explain(x)
    ref = _captum_all_outputs(
        CaptumIG(model).attribute, x, baselines=x_ref, n_steps=n, method="riemann_right"
    )
    assert np.abs(ours.values - ref).mean() < 1e-6


def test_integrated_gradients_without_times_input_is_mean_gradient():
    model = mlp(act=nn.Tanh).double()
    x = torch.randn(3, 5, dtype=torch.float64)
    ig = IntegratedGradients(n=20, times_input=False, dtype="double").fit(model).explain(x)
    with_x = IntegratedGradients(n=20, dtype="double").fit(model).explain(x)
    assert np.allclose(ig.values * x.numpy()[..., None], with_x.values)
    assert ig.decomp_goal is None


def test_ig_reference_rules():
    """x_ref: None -> zeros, one row -> that row, several rows -> their mean."""
    model = mlp(act=nn.Tanh).double()
    x = torch.randn(3, 5, dtype=torch.float64)
    refs = torch.randn(6, 5, dtype=torch.float64)
    mean_ref = IntegratedGradients(dtype="double").fit(model, refs).explain(x).values
    one_row = IntegratedGradients(dtype="double").fit(model, refs.mean(0, keepdim=True))
    assert np.allclose(mean_ref, one_row.explain(x).values)
    zeros = IntegratedGradients(dtype="double").fit(model).explain(x).values
    zero_row = IntegratedGradients(dtype="double").fit(model, torch.zeros(1, 5)).explain(x)
    assert np.allclose(zeros, zero_row.values)


def test_ig_completeness_shrinks_with_n():
    model = mlp(act=nn.Tanh, seed=4).double()
    torch.manual_seed(5)
    x = torch.randn(10, 5, dtype=torch.float64) * 2
    errors = []
    for n in (5, 50, 500):
        res = IntegratedGradients(n=n, dtype="double").fit(model).explain(x)
        errors.append(np.abs(res.decomp_sum - res.decomp_goal).max())
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 1e-3


def test_gradient_x_input_is_exact_on_linear_model():
    torch.manual_seed(0)
    lin = nn.Linear(6, 3).double()
    x = torch.randn(8, 6, dtype=torch.float64)
    res = Gradient(times_input=True, dtype="double").fit(lin).explain(x)
    assert np.allclose(res.decomp_sum, res.decomp_goal, atol=1e-12)
    assert np.allclose(res.values, x.numpy()[..., None] * lin.weight.detach().numpy().T)


def test_gradient_x_input_reference_output_is_computed_once_per_shape_and_fit(monkeypatch):
    import sknn_explain.explainers.gradient as gradient_module

    calls = []
    real_predict = gradient_module.predict
    monkeypatch.setattr(gradient_module, "predict",
                        lambda *a, **k: calls.append(1) or real_predict(*a, **k))
    torch.manual_seed(0)
    model = mlp(act=nn.Tanh).double()
    x = torch.randn(6, 5, dtype=torch.float64)
    explainer = Gradient(times_input=True, dtype="double").fit(model)
    first, second = explainer.explain(x), explainer.explain(x[:3])
    with torch.no_grad():
        expected = (model(x) - model(torch.zeros(1, 5, dtype=torch.float64))).numpy()
    np.testing.assert_allclose(np.asarray(first.decomp_goal).reshape(expected.shape), expected,
                               atol=1e-12)
    np.testing.assert_allclose(np.asarray(second.decomp_goal).reshape(-1, expected.shape[1]),
                               expected[:3], atol=1e-12)
    assert len(calls) == 1  # f(0) once for this input shape
    with torch.no_grad():
        model[0].bias.add_(1.0)  # a refit sees the changed model: a new reference output
    refit = explainer.fit(model).explain(x)
    with torch.no_grad():
        expected = (model(x) - model(torch.zeros(1, 5, dtype=torch.float64))).numpy()
    np.testing.assert_allclose(np.asarray(refit.decomp_goal).reshape(expected.shape), expected,
                               atol=1e-12)
    assert len(calls) == 2


def test_smoothgrad_is_reproducible_and_seed_sensitive():
    model = mlp(act=nn.Tanh)
    x = torch.randn(4, 5)
    a = SmoothGrad(n=10, random_state=0).fit(model).explain(x).values
    b = SmoothGrad(n=10, random_state=0).fit(model).explain(x).values
    c = SmoothGrad(n=10, random_state=1).fit(model).explain(x).values
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


@pytest.mark.parametrize("times_input", [False, True])
def test_smoothgrad_converges_to_captum_noise_tunnel(times_input):
    model = mlp(act=nn.Tanh, seed=2, n_out=3).double()
    torch.manual_seed(6)
    x = torch.randn(3, 5, dtype=torch.float64)
    noise_level, n = 0.2, 4000
    ours = SmoothGrad(n=n, noise_level=noise_level, times_input=times_input, random_state=0,
                      noise_scale="batch",
                      dtype="double").fit(model).explain(x).values
    sd = noise_level * float(x.max() - x.min())
    base = InputXGradient(model) if times_input else Saliency(model)
    torch.manual_seed(0)
    kw = {} if times_input else {"abs": False}
    ref = _captum_all_outputs(
        NoiseTunnel(base).attribute, x, n_out=3, nt_type="smoothgrad", nt_samples=n,
        stdevs=sd, nt_samples_batch_size=1000, **kw,
    )
    scale = np.abs(ref).mean()
    assert np.abs(ours - ref).mean() < 0.05 * scale


def test_expected_gradients_reproducible_and_converges_to_gradient_shap():
    model = mlp(act=nn.Tanh, seed=3, n_out=3).double()
    torch.manual_seed(7)
    x = torch.randn(3, 5, dtype=torch.float64)
    data_ref = torch.randn(40, 5, dtype=torch.float64)
    eg = ExpectedGradients(n=4000, random_state=0, dtype="double").fit(model, data_ref)
    a = eg.explain(x)
    assert np.array_equal(a.values, eg.explain(x).values)
    torch.manual_seed(0)
    ref = _captum_all_outputs(
        GradientShap(model).attribute, x, n_out=3, baselines=data_ref, n_samples=4000,
        stdevs=0.0,
    )
    scale = np.abs(ref).mean()
    assert np.abs(a.values - ref).mean() < 0.05 * scale
    # completeness in expectation: f(x) - mean f(X_ref)
    with torch.no_grad():
        goal = model(x) - model(data_ref).mean(0)
    assert np.allclose(a.decomp_goal, goal.numpy())
    assert np.abs(a.decomp_sum - a.decomp_goal).mean() < 0.05 * np.abs(a.decomp_goal).mean()


@pytest.mark.parametrize(
    "explainer",
    [
        SmoothGrad(n=9, random_state=3),
        ExpectedGradients(n=9, random_state=3),
        IntegratedGradients(n=9),
        Gradient(times_input=True),
    ],
    ids=lambda e: type(e).__name__,
)
def test_results_do_not_depend_on_batch_size(explainer):
    model = mlp(act=nn.Tanh).double()
    torch.manual_seed(0)
    x, ref = torch.randn(11, 5), torch.randn(20, 5)
    whole = explainer.set_params(dtype="double", batch_size=10_000).fit(model, ref).explain(x)
    chunked = explainer.set_params(batch_size=4).fit(model, ref).explain(x)
    assert np.allclose(whole.values, chunked.values, atol=1e-12)


def test_functional_api_matches_explainers():
    model = mlp(act=nn.Tanh).double()
    torch.manual_seed(0)
    x, ref = torch.randn(5, 5, dtype=torch.float64), torch.randn(20, 5, dtype=torch.float64)
    pairs = [
        (torch_grad(model, x, times_input=True),
         Gradient(times_input=True, dtype="double").fit(model).explain(x)),
        (torch_smoothgrad(model, x, n=5, random_state=1),
         SmoothGrad(n=5, random_state=1, dtype="double", noise_scale="batch").fit(
             model).explain(x)),
        (torch_intgrad(model, x, x_ref=ref[:1], n=8),
         IntegratedGradients(n=8, dtype="double").fit(model, ref[:1]).explain(x)),
        (torch_expgrad(model, x, ref, n=8, random_state=2),
         ExpectedGradients(n=8, random_state=2, dtype="double").fit(model, ref).explain(x)),
    ]
    for tensor, result in pairs:
        assert isinstance(tensor, torch.Tensor)
        assert np.allclose(tensor.numpy(), result.values, atol=1e-12)
    obj = torch_grad(model, x, output_idx=[1, 2], return_object=True)
    assert obj.values.shape == (5, 5, 2)
    assert obj.output_names == [["Y2", "Y3"]]
