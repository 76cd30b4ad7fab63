"""Issue #15 item 1: Occlusion and FeatureAblation against captum, in double."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _torch_models import assert_unchanged, snapshot
from _torch_models import perturbation_cnn as _cnn
from _torch_models import perturbation_mlp as _mlp
from _torch_models import seeded_randn as _x
from torch import nn

from sknn_explain import FeatureAblation, Occlusion

captum_attr = pytest.importorskip("captum.attr")
fa_module = pytest.importorskip("captum.attr._core.feature_ablation")


@pytest.fixture
def captum_double(monkeypatch):
    """captum's Occlusion divides by the window counts after ``.float()`` (float32 result);
    the reference in double keeps its sums and counts and only drops that cast."""

    def format_result(total_attrib, weights, is_inputs_tuple, use_weights):
        attrib = tuple(a / w if use_weights else a for a, w in
                       zip(total_attrib, weights if use_weights else total_attrib))
        return attrib if is_inputs_tuple else attrib[0]

    monkeypatch.setattr(fa_module, "format_result", format_result)


@pytest.mark.parametrize("window,strides,baseline", [
    ((1,), 1, 0.0), ((2,), 2, 0.5), ((3,), (2,), -1.0), ((5,), 1, 0.0),
])
def test_occlusion_mlp_equals_captum(window, strides, baseline, captum_double):
    net, X = _mlp(), _x(6, 5)
    res = Occlusion(window, strides=strides, baselines=baseline).fit(net).explain(
        X, output_idx=[0, 1, 2])
    for t in range(3):
        ref = captum_attr.Occlusion(net).attribute(
            X, sliding_window_shapes=window, strides=strides, baselines=baseline, target=t)
        assert ref.dtype == torch.float64
        np.testing.assert_allclose(res.values[..., t], ref.numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("window,strides", [((2, 3, 2), (1, 2, 2)), ((1, 2, 2), (1, 2, 2)),
                                            ((2, 6, 6), 1)])
def test_occlusion_cnn_equals_captum(window, strides, captum_double):
    net, X = _cnn(), _x(3, 2, 6, 6)
    base = _x(2, 6, 6, seed=5)
    res = Occlusion(window, strides=strides, baselines=base.numpy()).fit(net).explain(
        X, output_idx=[0, 1, 2, 3])
    for t in range(4):
        ref = captum_attr.Occlusion(net).attribute(
            X, sliding_window_shapes=window, strides=strides, baselines=base[None], target=t)
        np.testing.assert_allclose(res.values[..., t], ref.numpy(), rtol=0, atol=1e-12)


def test_occlusion_matches_unpatched_captum_to_float32():
    net, X = _cnn(), _x(2, 2, 6, 6)
    res = Occlusion((1, 3, 3), strides=(1, 2, 2)).fit(net).explain(X, output_idx=[1])
    ref = captum_attr.Occlusion(net).attribute(X, sliding_window_shapes=(1, 3, 3),
                                               strides=(1, 2, 2), target=1)
    np.testing.assert_allclose(res.values[..., 0], ref.numpy(), rtol=1e-5, atol=1e-6)


def test_occlusion_channels_last_equals_channels_first():
    net, X = _cnn(), _x(2, 2, 6, 6)
    first = Occlusion((2, 3, 2), strides=(1, 2, 2)).fit(net).explain(X)
    Xl = X.permute(0, 2, 3, 1).numpy()
    last = Occlusion((3, 2, 2), strides=(2, 2, 1), channels_first=False).fit(net).explain(Xl)
    np.testing.assert_allclose(np.moveaxis(last.values, 3, 1), first.values, atol=1e-12)


@pytest.mark.parametrize("mask", [None, [0, 0, 1, 2, 2], [[3, 1, 3, 1, 7]]])
@pytest.mark.parametrize("baseline", [0.0, 0.3])
def test_feature_ablation_mlp_equals_captum(mask, baseline):
    net, X = _mlp(), _x(7, 5)
    res = FeatureAblation(feature_mask=mask, baselines=baseline).fit(net).explain(
        X, output_idx=[0, 1, 2])
    for t in range(3):
        kw = {} if mask is None else {"feature_mask": torch.tensor(mask).reshape(1, 5)}
        ref = captum_attr.FeatureAblation(net).attribute(X, baselines=baseline, target=t, **kw)
        np.testing.assert_allclose(res.values[..., t], ref.numpy(), rtol=0, atol=1e-12)


def test_feature_ablation_cnn_superpixels_equal_captum():
    net, X = _cnn(), _x(3, 2, 6, 6)
    segments = (np.arange(6)[:, None] // 2 * 3 + np.arange(6)[None, :] // 2)[None]  # (1, 6, 6)
    res = FeatureAblation(feature_mask=segments).fit(net).explain(X, output_idx=[0, 1, 2, 3])
    assert np.unique(res.values[0, :, :2, :2, 0]).size == 1  # one value per superpixel
    for t in range(4):
        ref = captum_attr.FeatureAblation(net).attribute(
            X, feature_mask=torch.as_tensor(segments)[None], target=t)
        np.testing.assert_allclose(res.values[..., t], ref.numpy(), rtol=0, atol=1e-12)


def test_feature_ablation_mean_baseline_equals_captum():
    net, X, X_ref = _mlp(), _x(4, 5), _x(30, 5, seed=3)
    res = FeatureAblation(baselines="mean").fit(net, X_ref).explain(X, output_idx=[2])
    ref = captum_attr.FeatureAblation(net).attribute(X, baselines=X_ref.mean(0, keepdim=True),
                                                     target=2)
    np.testing.assert_allclose(res.values[..., 0], ref.numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("make", [
    lambda: Occlusion((2, 3, 3), strides=(1, 2, 1)),
    lambda: FeatureAblation(feature_mask=np.arange(36).reshape(1, 6, 6) // 4),
])
def test_batch_size_does_not_change_the_result(make):
    net, X = _cnn(), _x(5, 2, 6, 6)
    ref = make().fit(net).explain(X, output_idx=[0, 3]).values
    for bs in (1, 7, 64):
        got = make().set_params(batch_size=bs).fit(net).explain(X, output_idx=[0, 3]).values
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)


def test_every_model_call_respects_batch_size():
    calls = []

    class Spy(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(5, 2).double()

        def forward(self, x):
            if bool(torch.isfinite(x).all()):  # control flow: runs as a module, not a graph
                calls.append(int(x.shape[0]))
            return self.lin(x)

    X = _x(4, 5)
    FeatureAblation(batch_size=3).fit(Spy()).explain(X)
    assert calls and max(calls) <= 3


def test_model_is_untouched_also_when_explain_raises():
    net = _cnn()
    net.train()
    before = snapshot(net)
    X = _x(2, 2, 6, 6)
    Occlusion((2, 2, 2)).fit(net).explain(X)
    with pytest.raises(ValueError):
        Occlusion((3, 2, 2)).fit(net).explain(X)
    assert_unchanged(net, before)
    assert net.training


@pytest.mark.parametrize("make,match", [
    (lambda: Occlusion((2, 2)), "3 axes"),
    (lambda: Occlusion((3, 2, 2)), "exceeds the per-sample shape"),
    (lambda: Occlusion((1, 2, 2), strides=3), "larger than sliding_window_shapes"),
    (lambda: FeatureAblation(feature_mask=np.zeros((5, 5), dtype=int)), "does not broadcast"),
    (lambda: FeatureAblation(feature_mask=np.zeros((2, 6, 6)) + 0.5), "integer group labels"),
    (lambda: Occlusion((1, 2, 2), baselines=np.zeros(4)), "do not broadcast"),
])
def test_bad_shapes_give_clear_errors(make, match):
    net, X = _cnn(), _x(2, 2, 6, 6)
    with pytest.raises((ValueError, TypeError), match=match):
        make().fit(net).explain(X)


@pytest.mark.parametrize("make,match", [
    (lambda: Occlusion((0, 2, 2)), "positive ints"),
    (lambda: Occlusion("big"), "sliding_window_shapes"),
    (lambda: Occlusion((1, 2, 2), strides=1.5), "strides"),
    (lambda: Occlusion(baselines=np.nan), "baselines"),
    (lambda: FeatureAblation(baselines="median"), "baselines"),
    (lambda: FeatureAblation(baselines=None), "baselines"),
])
def test_bad_parameters_fail_at_fit(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make().fit(_cnn())


def test_mean_baseline_needs_reference_data():
    with pytest.raises(ValueError, match="X_ref"):
        FeatureAblation(baselines="mean").fit(_mlp())


def test_nonfinite_perturbed_outputs_give_nan_only_where_touched():
    class Log(nn.Module):
        def forward(self, x):
            return torch.log(x[:, :2]).sum(1, keepdim=True) + x[:, 2:].sum(1, keepdim=True)

    X = torch.tensor([[1.0, 2.0, 3.0, 4.0]], dtype=torch.float64)
    with pytest.warns(RuntimeWarning, match="perturbed"):
        res = FeatureAblation().fit(Log()).explain(X)
    v = res.values[0, :, 0]
    assert np.isnan(v[:2]).all()
    np.testing.assert_allclose(v[2:], [3.0, 4.0])
