"""Converting torch modules (``sknn_explain.convert.torch``): no silent wrong answers from
in-place operations, stale per-shape graphs, float32 constants in double graphs,
batch-statistics BatchNorm or unchecked model dicts; tracing is thread-safe (issue #10); and,
below, gradients through the converted graph equal the module's for every supported layer and
functional expression, in double precision (the converter QA's findings)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pytest
import torch
import torch.nn.functional as F
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


# ------------------------------------------------ gradients through every converted layer
# (former tests/test_qa_converter.py: the converter QA's layer-by-layer findings)
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


# non-regression: converter QA finding — conv gradients equal torch
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


# non-regression: converter QA finding — pooling gradients equal torch
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


# non-regression: converter QA finding — activation parameters survive conversion
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
# non-regression: converter QA finding — normalisation reshape and padding gradients equal torch
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


# non-regression: converter QA finding — functional tabular expressions gradients equal torch
@pytest.mark.parametrize("name", list(TABULAR_FUNCTIONS))
def test_functional_tabular_expressions_gradients_equal_torch(name):
    _assert_graph_gradient(_Fn(TABULAR_FUNCTIONS[name]), (4,))


# non-regression: converter QA finding — functional image expressions gradients equal torch
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


# non-regression: converter QA finding — ignore_last_act on every output layer (per-layer idx)
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
