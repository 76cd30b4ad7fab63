"""Modified-gradient methods against captum: SmoothGrad's NoiseTunnel variants
(``smoothgrad_sq``, ``vargrad``) and, below, Guided Backprop / Deconvolution."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _torch_models import cnn, mlp
from captum.attr import InputXGradient, NoiseTunnel, Saliency
from torch import nn

from sknn_explain import Deconvolution, Gradient, GuidedBackprop, SmoothGrad


def _captum_all_outputs(attr_fn, x, n_out, **kw) -> np.ndarray:
    """captum, one call per output node, stacked on a trailing axis."""
    return np.stack([attr_fn(x, target=k, **kw).detach().numpy() for k in range(n_out)], axis=-1)


@pytest.mark.parametrize("nt_type", ["smoothgrad_sq", "vargrad"])
def test_smoothgrad_variants_exact_on_linear_model(nt_type):
    torch.manual_seed(0)
    model = nn.Linear(5, 3).double()
    x = torch.randn(4, 5, dtype=torch.float64)
    ours = SmoothGrad(n=16, noise_level=0.3, nt_type=nt_type, random_state=0,
                      dtype="double").fit(model).explain(x).values
    w = model.weight.detach().numpy().T  # (5, 3): the constant gradient
    expected = np.broadcast_to(w**2 if nt_type == "smoothgrad_sq" else 0 * w, ours.shape)
    assert np.allclose(ours, expected, rtol=1e-12, atol=1e-12)
    ref = _captum_all_outputs(
        NoiseTunnel(Saliency(model)).attribute, x, n_out=3, nt_type=nt_type, nt_samples=16,
        stdevs=0.3, abs=False,
    )
    assert np.allclose(ours, ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("times_input", [False, True])
@pytest.mark.parametrize("nt_type", ["smoothgrad_sq", "vargrad"])
def test_smoothgrad_variants_converge_to_captum_noise_tunnel(nt_type, times_input):
    # the noise draws differ: compare in expectation with n = 4000 (5 % of the mean size)
    model = mlp(act=nn.Tanh, seed=2, n_out=3).double()
    torch.manual_seed(6)
    x = torch.randn(3, 5, dtype=torch.float64)
    noise_level, n = 0.2, 4000
    ours = SmoothGrad(n=n, noise_level=noise_level, times_input=times_input, random_state=0,
                      noise_scale="batch", nt_type=nt_type,
                      dtype="double").fit(model).explain(x).values
    assert (ours >= 0).all()
    sd = noise_level * float(x.max() - x.min())
    base = InputXGradient(model) if times_input else Saliency(model)
    torch.manual_seed(0)
    kw = {} if times_input else {"abs": False}
    ref = _captum_all_outputs(
        NoiseTunnel(base).attribute, x, n_out=3, nt_type=nt_type, nt_samples=n,
        stdevs=sd, nt_samples_batch_size=1000, **kw,
    )
    scale = np.abs(ref).mean()
    assert np.abs(ours - ref).mean() < 0.05 * scale


def test_smoothgrad_vargrad_is_variance_of_the_noisy_gradients():
    # vargrad = smoothgrad_sq - smoothgrad^2 with the same noise (same random_state)
    model = mlp(act=nn.Tanh, seed=4, n_out=2).double()
    torch.manual_seed(1)
    x = torch.randn(5, 5, dtype=torch.float64)

    def run(nt_type, batch_size=None):
        return SmoothGrad(n=30, random_state=3, nt_type=nt_type, dtype="double",
                          batch_size=batch_size).fit(model).explain(x).values

    mean, sq, var = run("smoothgrad"), run("smoothgrad_sq"), run("vargrad")
    assert np.allclose(var, np.clip(sq - mean**2, 0, None), atol=1e-12)
    assert var.max() > 1e-6  # a non-linear model: the gradient does vary
    assert np.allclose(run("vargrad", batch_size=7), var, atol=1e-12)


def test_smoothgrad_rejects_unknown_nt_type():
    model = nn.Linear(5, 2)
    with pytest.raises(ValueError, match="nt_type"):
        SmoothGrad(nt_type="var").fit(model)


# ---------------------------------------------------------------- GuidedBackprop / Deconvolution


def _relu_models():
    torch.manual_seed(1)
    return [
        ("mlp", mlp(seed=1).double().eval(), torch.randn(7, 5, dtype=torch.float64)),
        ("cnn", cnn(seed=1).double().eval(), torch.randn(4, 3, 8, 8, dtype=torch.float64)),
    ]


@pytest.mark.parametrize("which", ["mlp", "cnn"])
@pytest.mark.parametrize("method", ["guided", "deconv"])
def test_modified_backward_equals_captum(which, method):
    from captum.attr import Deconvolution as CaptumDeconv
    from captum.attr import GuidedBackprop as CaptumGuided

    _, model, x = next(m for m in _relu_models() if m[0] == which)
    ours_cls, ref_cls = ((GuidedBackprop, CaptumGuided) if method == "guided"
                         else (Deconvolution, CaptumDeconv))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [p.requires_grad for p in model.parameters()]
    result = ours_cls(dtype="double").fit(model).explain(x)
    ref = _captum_all_outputs(ref_cls(model).attribute, x.clone().requires_grad_(), n_out=10)
    assert result.values.shape == ref.shape
    assert np.abs(result.values - ref).max() < 1e-8
    # the modified backward differs from the plain gradient (the test is not vacuous)
    plain = Gradient(dtype="double").fit(model).explain(x).values
    assert np.abs(result.values - plain).max() > 1e-3
    # predictions are those of the unmodified model; the model is untouched
    with torch.no_grad():
        assert np.allclose(result.predictions, model(x).numpy())
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert [p.requires_grad for p in model.parameters()] == flags
    assert not model.training
    assert all(not m._forward_hooks and not m._backward_hooks for m in model.modules())


@pytest.mark.parametrize("cls", [GuidedBackprop, Deconvolution])
def test_modified_backward_selected_outputs_and_batch_size(cls):
    _, model, x = _relu_models()[0]
    full = cls(dtype="double").fit(model).explain(x).values
    some = cls(dtype="double", batch_size=3).fit(model).explain(x, output_idx=[2, 7]).values
    assert np.allclose(some, full[..., [2, 7]], atol=1e-12)
    # the private copy keeps no hook between calls
    explainer = cls(dtype="double").fit(model)
    explainer.explain(x)
    root = explainer.model_.graph
    assert all(not m._forward_hooks for m in root.modules())


@pytest.mark.parametrize("cls", [GuidedBackprop, Deconvolution])
def test_modified_backward_without_relu_is_a_clear_error(cls):
    model = mlp(act=nn.Tanh, seed=0, n_out=2)
    with pytest.raises(ValueError, match="ReLU"):
        cls().fit(model).explain(torch.randn(3, 5))


@pytest.mark.parametrize("cls", [GuidedBackprop, Deconvolution])
def test_modified_backward_invalid_hyperparameters(cls):
    model, x = mlp(seed=0, n_out=2), torch.randn(3, 5)
    for name, value in [("batch_size", 0), ("space", "pixels"), ("dtype", "half")]:
        with pytest.raises((ValueError, TypeError), match=repr(name)):
            cls(**{name: value}).fit(model)
        fitted = cls().fit(model)
        fitted.set_params(**{name: value})
        with pytest.raises((ValueError, TypeError), match=repr(name)):
            fitted.explain(x)
    assert set(cls().get_params()) == set(cls._parameter_constraints)
