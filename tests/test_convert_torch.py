"""Reliability of the converter (issue #10): no silent wrong answers from in-place operations,
stale per-shape graphs, float32 constants in double graphs, batch-statistics BatchNorm or
unchecked model dicts; tracing is thread-safe."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pytest
import torch
from torch import nn

from sknn_explain import Gradient, IntegratedGradients, SmoothGrad
from sknn_explain.convert import (
    ConversionError,
    Graph,
    GraphModel,
    Node,
    UnsupportedLayerError,
    VerificationError,
    convert,
)
from sknn_explain.convert.source import Source, finish
from sknn_explain.layers import Activation


# ---------------------------------------------------------------------------- item 1: in-place
class _Normalising(nn.Module):
    """Standardises its input in place before the layers (a common preprocessing idiom)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.register_buffer("mean", torch.tensor([0.5, -0.2, 0.1, 0.3]))
        self.register_buffer("std", torch.tensor([2.0, 3.0, 4.0, 5.0]))
        self.fc = nn.Linear(4, 16)
        self.act = nn.ReLU(inplace=True)
        self.out = nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x.sub_(self.mean).div_(self.std)
        return self.out(self.act(self.fc(x)))


def _model_output(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model(x.clone()).numpy()


def test_inplace_input_ops_are_translated_or_refused():
    model = _Normalising()
    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(1))
    x0 = x.clone()
    graph = convert(model, input_shape=(4,))
    with torch.no_grad():
        got = graph(x.clone())[0].numpy()
    np.testing.assert_allclose(got, _model_output(model, x0), atol=1e-6)
    assert np.ptp(got[:, 0]) > 1e-3  # a real function of the input
    for explainer in (Gradient(), IntegratedGradients(n=5)):
        att = explainer.fit(model, torch.zeros(1, 4)).explain(x, output_idx=[0, 1])
        assert isinstance(explainer.model_, GraphModel) and explainer.model_.converted
        np.testing.assert_allclose(att.predictions, _model_output(model, x0), atol=1e-6)
    assert torch.equal(x, x0)  # the user's X is never modified

    class ViewInPlace(nn.Module):  # modifies the input through a view, then reads the input
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            x.view(x.shape[0], 2, 2).mul_(2.0)
            return self.fc(x)

    with pytest.raises(UnsupportedLayerError, match="shares memory"):
        convert(ViewInPlace(), input_shape=(4,))

    class BufferWrite(nn.Module):  # writes input-dependent values into a buffer
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 2)
            self.register_buffer("state", torch.zeros(2, 4))  # the build batch has 2 rows

        def forward(self, x):
            return self.fc(self.state.add_(x))

    with pytest.raises(UnsupportedLayerError, match="constant tensor"):
        convert(BufferWrite(), input_shape=(4,))


def test_verification_runs_model_and_graph_on_independent_copies():
    class Mutating(Source):  # the "original model" doubles its input in place
        description = "mutating model"

        def build(self, xs: Sequence[torch.Tensor]) -> Graph:  # identity: drops the doubling
            return Graph([Node("id", Activation("identity"), ["input_0"])], 1, ["id"])

        def reference(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
            return [xs[0].mul_(2.0)]

    with pytest.raises(VerificationError):
        finish(Mutating(torch.float32, torch.device("cpu")), [(3,)])


def test_fallback_model_never_modifies_inputs_or_reference():
    class Clamping(nn.Module):  # clamp_ has no graph layer: the gradient family falls back
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            x.clamp_(-0.5, 0.5).mul_(2.0)
            return self.fc(x)

    model = Clamping()
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(2))
    ref = torch.full((1, 4), 0.25)
    x0, ref0 = x.clone(), ref.clone()
    expected = _model_output(model, x0)
    for explainer in (Gradient(), IntegratedGradients(n=4), SmoothGrad(n=3, random_state=0)):
        explainer.fit(model, ref if isinstance(explainer, IntegratedGradients) else None)
        att = explainer.explain(x)
        assert getattr(explainer.model_, "conversion_error", None) or not getattr(
            explainer.model_, "converted", True)
        np.testing.assert_allclose(att.predictions, expected, atol=1e-6)
        assert np.isfinite(att.values).all()
    assert torch.equal(x, x0) and torch.equal(ref, ref0)
    # the gradient of the clamped region is 0, elsewhere 2 * weight (not the unclamped one)
    att = Gradient().fit(model).explain(x, output_idx=[0])
    inside = (x0.abs() < 0.5).numpy()
    w = model.fc.weight[0].detach().numpy()
    np.testing.assert_allclose(att.values[..., 0], np.where(inside, 2 * w, 0.0),
                               atol=1e-6)


# ---------------------------------------------------------------------------- item 3: dtype
class _ScaledSoftmax(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return torch.softmax(self.fc(x * 0.1 + 0.3) * 10.0, dim=1)


def test_double_conversion_keeps_python_float_constants_exact():
    model = _ScaledSoftmax()
    graph = convert(model, input_shape=(4,), dtype="double")  # verified at 1e-10
    affine = [n.layer for n in graph.nodes if type(n.layer).__name__ == "ElementwiseAffine"]
    assert affine and all(a.scale.dtype == torch.float64 for a in affine)
    assert any(float(a.scale.reshape(-1)[0]) == 0.1 for a in affine)  # exactly 0.1 in double
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no silent (or noisy) fallback
        double = IntegratedGradients(dtype="double", n=8).fit(model, torch.zeros(1, 4))
        single = IntegratedGradients(n=8).fit(model, torch.zeros(1, 4))
        a, b = double.explain(x), single.explain(x)
    assert double.model_.converted and double.model_.removed_activation == "softmax"
    np.testing.assert_allclose(a.values, b.values, atol=1e-4)  # both explain the logits


def test_fallback_that_may_not_honour_ignore_last_act_warns():
    class Untraceable(nn.Module):  # data-dependent control flow, softmax applied in forward
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            if x.sum() > 0:
                x = x * 2
            return torch.softmax(self.fc(x), dim=1)

    with pytest.warns(UserWarning, match="ignore_last_act=True may not be honoured"):
        explainer = Gradient().fit(Untraceable())
    assert "torch.fx could not trace" in explainer.model_.conversion_error
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Gradient(ignore_last_act=False).fit(Untraceable())


# ---------------------------------------------------------------------------- item 15: BatchNorm
def test_batchnorm_without_running_stats_is_refused_everywhere():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5, track_running_stats=False),
                          nn.ReLU(), nn.Linear(5, 2))
    with pytest.raises(ConversionError, match=r"nn\.BatchNorm1d at '1'.*track_running_stats"):
        convert(model)
    x = torch.randn(6, 4)
    for explainer in (Gradient(), IntegratedGradients(n=4), SmoothGrad(n=2)):
        with pytest.raises(ConversionError, match="depends on the other samples"):
            explainer.fit(model).explain(x)

    class Untraceable(nn.Module):  # not even traceable: the fallback must refuse it too
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 5)
            self.bn = nn.BatchNorm1d(5, track_running_stats=False)

        def forward(self, x):
            if x.sum() > 0:
                x = -x
            return self.bn(self.fc(x))

    with pytest.raises(ConversionError, match=r"nn\.BatchNorm1d at 'bn'"):
        Gradient(ignore_last_act=False).fit(Untraceable()).explain(x)


# ---------------------------------------------------------------------------- item 6: threads
class _Residual(nn.Module):
    """Traced through (a user module), so fx patches nn.Module.__call__ while tracing it."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv1 = nn.Conv2d(2, 2, 3, padding=1)
        self.conv2 = nn.Conv2d(2, 2, 3, padding=1)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * 6 * 6, 3))

    def forward(self, x):
        h = torch.relu(self.conv1(x))
        return self.head(torch.relu(x + self.conv2(h)))


def _fit_and_explain(model: nn.Module, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray, bool]:
    grad = Gradient().fit(model)
    g = grad.explain(x).values
    ig = IntegratedGradients(n=4).fit(model, x[:2])
    v = ig.explain(x).values
    converted = bool(grad.model_.converted and ig.model_.converted)
    return g, v, converted


def test_concurrent_fits_equal_sequential_and_never_leak_the_fx_patch():
    import threading

    original_call = nn.Module.__call__
    original_getattr = nn.Module.__getattr__
    x = torch.randn(3, 2, 6, 6, generator=torch.Generator().manual_seed(4))
    seeds = [0, 1, 2, 3]
    models = {s: _Residual(s) for s in seeds}  # built here: torch's global RNG is shared
    expected = {s: _fit_and_explain(models[s], x) for s in seeds}
    for _ in range(3):
        barrier = threading.Barrier(len(seeds))
        results: dict[int, object] = {}

        def work(seed: int, barrier=barrier, results=results) -> None:
            try:
                barrier.wait()
                results[seed] = _fit_and_explain(models[seed], x)
            except Exception as err:  # noqa: BLE001 - reported below
                results[seed] = err

        threads = [threading.Thread(target=work, args=(s,)) for s in seeds]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for s in seeds:
            assert not isinstance(results[s], Exception), repr(results[s])
            g, v, converted = results[s]
            assert converted, "a concurrent fit fell back to the plain model"
            np.testing.assert_allclose(g, expected[s][0], atol=1e-6)
            np.testing.assert_allclose(v, expected[s][1], atol=1e-6)
    assert nn.Module.__call__ is original_call
    assert nn.Module.__getattr__ is original_getattr
    unrelated = nn.Sequential(nn.Linear(2, 2))
    assert isinstance(unrelated(torch.ones(1, 2)), torch.Tensor)


# ---------------------------------------------------------------------------- item 2: shapes
class _GlobalPoolCNN(nn.Module):
    """``F.avg_pool2d(h, h.size()[2:])`` bakes the image size into the converted graph."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        import torch.nn.functional as F

        h = torch.relu(self.conv(x))
        return self.fc(F.avg_pool2d(h, h.size()[2:]).flatten(1))


def test_graph_built_for_one_input_shape_is_never_reused_for_another():
    from sknn_explain import LRP, DeepLift

    model = _GlobalPoolCNN()
    small = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    large = torch.randn(2, 3, 10, 10, generator=torch.Generator().manual_seed(6))
    for explainer in (Gradient(), LRP(), DeepLift()):
        explainer.fit(model)  # no X_ref: the conversion waits for the first X
        assert explainer.input_shapes_ is None
        att = explainer.explain(small)
        assert explainer.input_shapes_ == [(3, 8, 8)]
        np.testing.assert_allclose(att.predictions, _model_output(model, small), atol=1e-5)
        with pytest.raises(ValueError, match=r"\(3, 10, 10\).*\(3, 8, 8\).*refit"):
            explainer.explain(large)
        with pytest.raises(ValueError, match=r"converted for per-sample input shape \(3, 8, 8\)"):
            explainer.model_([large])  # the adapter itself refuses too
        refit = explainer.fit(model, large).explain(large)  # refit with X_ref of the new shape
        np.testing.assert_allclose(refit.predictions, _model_output(model, large), atol=1e-5)


# ---------------------------------------------------------------------------- item 11: dicts
def _dict_model(**changes: object) -> dict:
    """A valid two-layer dict (image input, conv, flatten, concat, dense, softmax)."""
    rng = np.random.default_rng(0)
    layers = [
        {"type": "Conv2D", "weight": rng.normal(size=(2, 1, 3, 3)), "bias": np.zeros(2),
         "activation_name": "relu", "input_layers": 0, "output_layers": 2},
        {"type": "Flatten", "input_layers": 1, "output_layers": 3},
        {"type": "Concatenate", "axis": 2, "input_layers": [2, 2], "output_layers": 4},
        {"type": "BatchNorm", "num_features": 16, "eps": 1e-5, "gamma": np.ones(16),
         "beta": np.zeros(16), "run_mean": np.zeros(16), "run_var": np.ones(16),
         "input_layers": 3, "output_layers": 5},
        {"type": "Dense", "weight": rng.normal(size=(3, 16)), "bias": np.zeros(3),
         "activation_name": "softmax", "input_layers": 4, "output_layers": -1},
    ]
    model = {"input_dim": [1, 4, 4], "input_nodes": [1], "output_nodes": [5], "layers": layers}
    for key, value in changes.items():
        if key.startswith("layer"):
            idx, field = key[5:].split("_", 1)
            layers[int(idx) - 1][field] = value
        else:
            model[key] = value
    return model


@pytest.mark.parametrize("changes, match", [
    ({"input_dim": [2**13, 2**12]}, "values per sample"),
    ({"input_dim": [1, 4.5, 4]}, "positive integers"),
    ({"input_dim": [1, -4, 4]}, "positive integers"),
    ({"layer1_weight": np.full((2, 1, 3, 3), np.nan)}, "NaN or infinite"),
    ({"layer5_bias": [0.0, np.inf, 0.0]}, "NaN or infinite"),
    ({"layer4_run_var": -np.ones(16)}, "non-negative"),
    ({"layer3_axis": 1}, "batch axis"),
    ({"layer3_axis": 3}, "out of range"),
    ({"layer5_dim": 7}, "out of range"),
    ({"layer2_start_dim": 0}, "1-based"),
    ({"layer2_start_dim": 1}, "batch axis"),
    ({"layer5_bias": [0.5]}, "must have 3 values"),
    ({"layer1_bias": [0.5]}, "must have 2 values"),
    ({"layer4_gamma": np.ones(1)}, "must have 16 values"),
])
def test_model_dict_is_validated_before_use(changes, match):
    convert(_dict_model())  # the base model is valid
    with pytest.raises(ValueError, match=match):
        convert(_dict_model(**changes))


def test_model_dict_concatenate_and_flatten_axes_follow_innsight():
    base = convert(_dict_model())
    assert [type(n.layer).__name__ for n in base.nodes][:4] == [
        "Conv", "Activation", "Flatten", "Concat"]
    assert base.nodes[3].layer.dim == 1  # innsight axis 2 = torch axis 1
    assert base.node_shapes()[base.nodes[3].name] == (16,)
    default = convert(_dict_model(layer2_start_dim=None))
    assert default.node_shapes()[default.nodes[2].name] == (8,)
    assert convert(_dict_model(layer5_dim=-1)).nodes[-1].layer.params["dim"] == 1
