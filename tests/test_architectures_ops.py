"""Issue #12 part 1: tensor ops, more activations, LayerNorm / RMSNorm, Conv3d / pooling 3d
and ConvTranspose in the layer graph, end to end (double precision)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _torch_models import assert_unchanged, snapshot
from torch import nn

from sknn_explain.convert import UnsupportedLayerError, convert
from sknn_explain.explainers.connection_weights import ConnectionWeights
from sknn_explain.explainers.deeplift import DeepLift, DeepSHAP
from sknn_explain.explainers.gradient import Gradient
from sknn_explain.explainers.lrp import LRP
from sknn_explain.layers import (
    Activation,
    ConvTranspose,
    Index,
    LayerNorm,
    Permute,
    Reduce,
    RMSNorm,
)

captum_attr = pytest.importorskip("captum.attr")
D = torch.float64


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # captum warns about hooks and grads
        yield


def _seed(seed: int = 0) -> None:
    torch.manual_seed(seed)


def _x(shape, n=6, seed=1):
    return torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed), dtype=D)


# ----------------------------------------------------------------------------- models
class TensorOps(nn.Module):
    """Indexing, select / narrow, transpose / permute, sum / mean, clamp, pow, reshape."""

    def __init__(self, bias: bool = True) -> None:
        super().__init__()
        _seed(0)
        self.inp = nn.Linear(6, 24, bias=bias)
        self.out = nn.Linear(7, 3, bias=bias)

    def forward(self, x):
        h = self.inp(x).view(-1, 2, 3, 4)                     # (n, 2, 3, 4)
        h = h.permute(0, 3, 1, 2).contiguous()                 # (n, 4, 2, 3)
        h = torch.transpose(h, 1, 2)                           # (n, 2, 4, 3)
        a = h[:, 0] + torch.select(h, 1, 1)                    # (n, 4, 3)
        b = torch.clamp(a, -0.7, 0.9) ** 2 + a[..., [2, 0, 1]]  # pow, clamp, list index
        c = b.narrow(1, 1, 3).sum(2)                           # (n, 3)
        d = b.mean(dim=(1,), keepdim=False)                    # (n, 3)
        e = torch.sum(h[:, :, 1:3, :], dim=(1, 2))              # (n, 3)
        f = torch.cat([c, d[:, ::2], e[..., 1:]], 1)           # step slice, Ellipsis
        return self.out(f.clamp(min=-2.0).unsqueeze(1).squeeze(1))


ACTIVATIONS = [
    nn.SELU(), nn.CELU(0.7), nn.GELU(), nn.GELU(approximate="tanh"), nn.SiLU(), nn.Mish(),
    nn.Softplus(beta=2.0), nn.Hardtanh(-0.5, 0.8), nn.Hardswish(), nn.Hardsigmoid(),
    nn.LeakyReLU(0.1), nn.ReLU6(), nn.LogSigmoid(), nn.Softsign(), nn.Tanhshrink(), nn.ELU(),
]


class Activations(nn.Module):
    def __init__(self, act: nn.Module) -> None:
        super().__init__()
        _seed(1)
        self.a, self.act, self.b = nn.Linear(5, 8), act, nn.Linear(8, 3)

    def forward(self, x):
        return self.b(self.act(3.0 * self.a(x)))


class PReLUNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        _seed(2)
        self.conv = nn.Conv1d(2, 3, 3)
        self.act = nn.PReLU(3)
        with torch.no_grad():
            self.act.weight.copy_(torch.tensor([0.1, -0.3, 0.5]))
        self.out = nn.Linear(3 * 4, 2)

    def forward(self, x):
        h = F.prelu(self.act(self.conv(x)), torch.tensor([0.2], dtype=x.dtype))
        return self.out(F.selu(F.mish(h)).flatten(1))


class Norms(nn.Module):
    """A token block: Linear -> LayerNorm -> GELU -> RMSNorm -> mean over tokens."""

    def __init__(self, bias: bool = True, affine: bool = True) -> None:
        super().__init__()
        _seed(3)
        self.embed = nn.Linear(4, 6, bias=bias)
        self.ln = nn.LayerNorm(6, elementwise_affine=affine, bias=bias)
        self.mid = nn.Linear(6, 6, bias=bias)
        self.rms = nn.RMSNorm(6, elementwise_affine=affine)
        self.head = nn.Linear(6, 3, bias=bias)
        if affine:
            with torch.no_grad():
                self.ln.weight.uniform_(0.5, 1.5)
                self.rms.weight.uniform_(0.5, 1.5)
                if bias:
                    self.ln.bias.uniform_(-0.3, 0.3)

    def forward(self, x):  # x: (n, 5 tokens, 4)
        h = self.ln(self.embed(2.0 * x))  # (Linear on the raw input would imply shape (4,))
        h = self.rms(self.mid(F.gelu(h)) + h)
        return self.head(h.mean(1))


class Conv3dNet(nn.Module):
    def __init__(self, bias: bool = True, pool: str = "avg") -> None:
        super().__init__()
        _seed(4)
        self.conv = nn.Conv3d(2, 3, 3, padding=1, bias=bias)
        self.pool = nn.AvgPool3d(2) if pool == "avg" else nn.MaxPool3d(2)
        self.conv2 = nn.Conv3d(3, 4, (1, 2, 2), bias=bias)
        self.gap = nn.AdaptiveAvgPool3d(1)
        self.out = nn.Linear(4, 2, bias=bias)

    def forward(self, x):  # (n, 2, 4, 4, 4)
        h = self.pool(torch.tanh(self.conv(x)))
        return self.out(self.gap(F.relu(self.conv2(h))).flatten(1))


class UNet(nn.Module):
    """Encoder conv + pool, decoder ConvTranspose + concatenated skip connection."""

    def __init__(self, bias: bool = True, nd: int = 2) -> None:
        super().__init__()
        _seed(5)
        conv = nn.Conv2d if nd == 2 else nn.Conv1d
        convt = nn.ConvTranspose2d if nd == 2 else nn.ConvTranspose1d
        self.enc = conv(1, 4, 3, padding=1, bias=bias)
        self.pool = nn.MaxPool2d(2) if nd == 2 else nn.MaxPool1d(2)
        self.mid = conv(4, 6, 3, padding=1, bias=bias)
        self.up = convt(6, 4, 2, stride=2, bias=bias)
        self.dec = conv(8, 3, 1, bias=bias)
        self.nd = nd

    def forward(self, x):
        skip = F.relu(self.enc(x))
        h = F.relu(self.mid(self.pool(skip)))
        h = torch.cat([self.up(h), skip], dim=1)
        axes = (2, 3) if self.nd == 2 else (2,)
        return self.dec(h).sum(axes)


class Transposed(nn.Module):
    """ConvTranspose with stride, padding, output_padding, groups and dilation."""

    def __init__(self, bias: bool = True) -> None:
        super().__init__()
        _seed(6)
        self.t1 = nn.ConvTranspose1d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2,
                                     dilation=2, bias=bias)
        self.t2 = nn.ConvTranspose2d(6, 2, (2, 3), stride=(2, 1), padding=(0, 1), bias=bias)

    def forward(self, x):  # (n, 4, 5)
        h = torch.tanh(self.t1(x))                    # (n, 6, L)
        h = self.t2(h.unsqueeze(-1))                  # (n, 2, 2L, 1)
        return h.flatten(1)[:, :6]


CASES = {
    "tensor_ops": (TensorOps, (6,)),
    "prelu_mish_selu": (PReLUNet, (2, 6)),
    "norms": (Norms, (5, 4)),
    "conv3d_avg": (Conv3dNet, (2, 4, 4, 4)),
    "conv3d_max": (lambda **kw: Conv3dNet(pool="max", **kw), (2, 4, 4, 4)),
    "unet2d": (UNet, (1, 6, 6)),
    "unet1d": (lambda **kw: UNet(nd=1, **kw), (1, 8)),
    **{f"act_{type(a).__name__}_{i}": ((lambda a=a: Activations(a)), (5,))
       for i, a in enumerate(ACTIVATIONS)},
}


def _model(name, **kw):
    factory, shape = CASES[name]
    return factory(**kw).to(D).eval(), shape


# ----------------------------------------------------------------------------- conversion
@pytest.mark.parametrize("name", sorted(CASES))
def test_conversion_reproduces_the_model(name):
    model, shape = _model(name)
    before = snapshot(model)
    graph = convert(model, input_shape=shape, dtype="double")
    x = _x(shape)
    with torch.no_grad():
        ref, got = model(x), graph(x)[0]
    assert (got - ref).abs().max() < 1e-10
    assert_unchanged(model, before)


def test_conversion_emits_the_new_layers():
    kinds = {}
    for name in ("tensor_ops", "norms", "unet2d", "prelu_mish_selu"):
        model, shape = _model(name)
        for node in convert(model, input_shape=shape, dtype="double").nodes:
            kinds.setdefault(type(node.layer), []).append(node.layer)
    assert {Index, Permute, Reduce, LayerNorm, RMSNorm, ConvTranspose} <= set(kinds)
    names = {a.name for a in kinds[Activation]}
    assert {"clamp", "pow", "prelu", "mish", "selu"} <= names


def test_transposed_convolutions_with_all_arguments():
    model = Transposed().to(D).eval()
    graph = convert(model, input_shape=(4, 5), dtype="double")
    x = _x((4, 5))
    assert (graph(x)[0] - model(x)).abs().max() < 1e-10
    layers = [n.layer for n in graph.nodes if isinstance(n.layer, ConvTranspose)]
    assert layers[0].output_padding == (1,) and layers[0].groups == 2


def test_functional_forms_convert():
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            _seed(7)
            self.w = nn.Parameter(torch.randn(3, 2, 2))
            self.g = nn.Parameter(torch.rand(3) + 0.5)

        def forward(self, x):  # (n, 3, 4)
            h = F.conv_transpose1d(x, self.w, stride=2)          # (n, 2, 8)
            h = F.layer_norm(h.swapaxes(1, 2), (2,))               # (n, 8, 2)
            h = F.rms_norm(h.transpose(1, 2), (8,), eps=1e-6)      # (n, 2, 8)
            h = F.hardtanh(h, -0.5, 0.5) + F.relu6(h) + h.clip(0.0, 0.3) + torch.square(h)
            h = F.celu(h, 0.5) + F.logsigmoid(h) + F.softsign(h) + F.tanhshrink(h)
            h = F.hardswish(h) + F.hardsigmoid(h) + h.pow(3) + torch.pow(h, 0.5 + 1.5)
            return torch.mean(h, dim=-1)

    model = Functional().to(D)
    graph = convert(model, input_shape=(3, 4), dtype="double")
    x = _x((3, 4))
    assert (graph(x)[0] - model(x)).abs().max() < 1e-10


# ----------------------------------------------------------------------------- refusals
def _unsupported(forward, shape=(4,)):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)

        def forward(self, x):
            return forward(self.lin(x))

    return M().to(D)


@pytest.mark.parametrize("forward, message", [
    (lambda h: h[0], r"indexes or slices the batch axis"),
    (lambda h: h[1:], r"indexes or slices the batch axis"),
    (lambda h: h[None], r"adds an axis before the batch axis"),
    (lambda h: h[:, torch.tensor([0, 1])], r"advanced indexing"),
    (lambda h: h.sum(), r"over all axes includes the batch axis"),
    (lambda h: h.mean(0), r"batch axis"),
    (lambda h: h.transpose(0, 1), r"moves the batch axis"),
    (lambda h: torch.pow(2.0, h), r"constant exponent"),
    (lambda h: torch.exp(h) ** h, r"constant exponent"),
])
def test_unsupported_ops_name_op_and_line_and_gradients_still_work(forward, message):
    model = _unsupported(forward)
    with pytest.raises(UnsupportedLayerError, match=message) as info:
        convert(model, input_shape=(4,), dtype="double")
    assert "test_architectures_ops.py" in str(info.value)
    if forward(torch.zeros(3, 4)).shape[:1] == (3,):
        att = Gradient(dtype="double").fit(model).explain(_x((4,)))
        assert np.isfinite(att.values).all()


def test_connection_weights_refuses_layer_norm_clearly():
    model, shape = _model("norms")
    cw = ConnectionWeights(dtype="double").fit(model)
    with pytest.raises(TypeError,
                       match=r"Connection Weights has no rule for layer (LayerNorm|RMSNorm)"):
        cw.explain(_x(shape))


def test_connection_weights_on_linear_structural_ops_is_the_jacobian():
    """Without activations and biases, the path-weight sums are the model's Jacobian."""

    class Linearish(nn.Module):
        def __init__(self):
            super().__init__()
            _seed(8)
            self.up = nn.ConvTranspose1d(2, 3, 2, stride=2, bias=False)
            self.conv = nn.Conv3d(1, 2, 2, bias=False)
            self.out = nn.Linear(4, 2, bias=False)

        def forward(self, x):  # (n, 2, 4)
            h = self.up(x)                                   # (n, 3, 8)
            h = h.reshape(-1, 1, 3, 2, 4)[:, :, :, :, 1:]   # (n, 1, 3, 2, 3)
            h = self.conv(h).permute(0, 2, 1, 3, 4)          # (n, 2, 2, 1, 2)
            return self.out(h.mean(1).flatten(1))

    model = Linearish().to(D)
    x = _x((2, 4), n=2)
    cw = ConnectionWeights(dtype="double").fit(model).explain(x, output_idx=[0, 1]).values
    jac = torch.autograd.functional.jacobian(lambda t: model(t).sum(0), x)  # (2, n, 2, 4)
    np.testing.assert_allclose(cw[0], jac[:, 0].permute(1, 2, 0).numpy(), atol=1e-12)


# ----------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("name", ["tensor_ops", "norms", "unet2d", "conv3d_max",
                                  "prelu_mish_selu", "act_Mish_5"])
def test_gradient_and_ig_on_the_graph_equal_captum_on_the_module(name):
    model, shape = _model(name)
    graph = convert(model, input_shape=shape, dtype="double")
    x, base = _x(shape), 0.1 * _x(shape, n=1, seed=3)

    def on_graph(t):
        return graph(t)[0]

    for target in (0, 1):
        ig_m = captum_attr.IntegratedGradients(model).attribute(
            x, base, target=target, n_steps=16, method="riemann_right")
        ig_g = captum_attr.IntegratedGradients(on_graph).attribute(
            x, base, target=target, n_steps=16, method="riemann_right")
        assert (ig_m - ig_g).abs().max() < 1e-10
        sal_m = captum_attr.Saliency(model).attribute(x.clone(), target=target, abs=False)
        sal_g = captum_attr.Saliency(on_graph).attribute(x.clone(), target=target, abs=False)
        assert (sal_m - sal_g).abs().max() < 1e-10


# ----------------------------------------------------------------------------- DeepLift
def _delta(model, x, ref):
    with torch.no_grad():
        return (model(x) - model(ref).mean(0, keepdim=True)).numpy()


@pytest.mark.parametrize("rule", ["rescale", "reveal_cancel"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_deeplift_summation_to_delta(name, rule):
    model, shape = _model(name)
    x, ref = _x(shape), 0.5 * _x(shape, n=1, seed=4)
    res = DeepLift(rule, dtype="double").fit(model, ref).explain(x)
    k = res.values.shape[-1]
    total = res.values.reshape(len(x), -1, k).sum(1)
    np.testing.assert_allclose(total, _delta(model, x, ref)[:, :k], atol=1e-8, rtol=0)


def test_deepshap_summation_to_delta_on_norms():
    model, shape = _model("norms")
    x, refs = _x(shape), _x(shape, n=4, seed=5)
    res = DeepSHAP(dtype="double").fit(model, refs).explain(x)
    total = res.values.reshape(len(x), -1, res.values.shape[-1]).sum(1)
    np.testing.assert_allclose(total, _delta(model, x, refs), atol=1e-8, rtol=0)


def test_deeplift_layer_norm_with_a_constant_vector_part():
    """Where input and reference have the same variance the derivative fallback keeps the
    multipliers finite and the sum exact."""
    model, shape = _model("norms")
    ref = _x(shape, n=1, seed=6)
    x = torch.cat([ref, -ref + 0.0, ref * 1.0 + 0.0], 0)  # x == ref on row 0
    res = DeepLift(dtype="double").fit(model, ref).explain(x)
    assert np.isfinite(res.values).all()
    np.testing.assert_allclose(res.values.reshape(3, -1, 3).sum(1), _delta(model, x, ref),
                               atol=1e-8, rtol=0)


class CaptumSafe(nn.Module):
    """Structural ops, Conv3d / ConvTranspose and activations captum's DeepLift supports."""

    def __init__(self) -> None:
        super().__init__()
        _seed(9)
        self.conv = nn.Conv3d(1, 2, 2)
        self.act = nn.ReLU()
        self.up = nn.ConvTranspose1d(2, 3, 2, stride=2)
        self.tanh = nn.Tanh()
        self.elu = nn.ELU()
        self.out = nn.Linear(6, 4)

    def forward(self, x):  # (n, 1, 3, 3, 3)
        h = self.act(self.conv(x))                       # (n, 2, 2, 2, 2)
        h = h.flatten(2)[:, :, 1:4]                      # (n, 2, 3)
        h = self.tanh(self.up(h))                        # (n, 3, 6)
        h = self.elu(h.transpose(1, 2).sum(2) + torch.select(h, 1, 0))
        return self.out(h)


def test_deeplift_equals_captum_where_captum_is_exact():
    model = CaptumSafe().to(D).eval()
    x, ref = _x((1, 3, 3, 3)), 0.3 * _x((1, 3, 3, 3), n=1, seed=7)
    ours = DeepLift(dtype="double").fit(model, ref).explain(x, output_idx=[0, 1, 2, 3]).values
    dl = captum_attr.DeepLift(model)
    theirs = np.stack([dl.attribute(x, ref, target=k).detach().numpy() for k in range(4)], -1)
    np.testing.assert_allclose(ours, theirs, atol=1e-10, rtol=0)


# ----------------------------------------------------------------------------- LRP
@pytest.mark.parametrize("name", ["tensor_ops", "norms", "unet2d", "unet1d", "conv3d_max",
                                  "conv3d_avg"])
def test_lrp_conserves_relevance_on_bias_free_nets(name):
    model, shape = _model(name, bias=False)
    x = _x(shape)
    res = LRP("simple", dtype="double").fit(model).explain(x)
    k = res.values.shape[-1]
    with torch.no_grad():
        out = model(x).numpy()[:, :k]
    total = res.values.reshape(len(x), -1, k).sum(1)
    np.testing.assert_allclose(total, out, atol=1e-8, rtol=0)


def test_lrp_conserves_with_bias_free_layer_norm_without_affine():
    model, shape = _model("norms", bias=False, affine=False)
    x = _x(shape)
    res = LRP("epsilon", 1e-12, dtype="double").fit(model).explain(x)
    with torch.no_grad():
        out = model(x).numpy()
    np.testing.assert_allclose(res.values.reshape(len(x), -1, 3).sum(1), out, atol=1e-8, rtol=0)


def _attn_lrp_layer_norm_reference(ln: nn.LayerNorm, x: torch.Tensor, eps: float) -> np.ndarray:
    """AttnLRP's identity rule on LayerNorm, written out per sample and output: sigma
    detached, y = W x + b with W = diag(gamma / sigma) (I - 1/D), then the epsilon rule
    R_j = sum_i x_j W_ij R_i / (z_i + eps sign(z_i)), z_i = y_i, start R_i = y_i."""
    n, d = x.shape
    gamma, beta = ln.weight.detach(), ln.bias.detach()
    out = np.zeros((n, d, d))
    for s in range(n):
        xs = x[s]
        sigma = torch.sqrt(xs.var(unbiased=False) + ln.eps)
        w = torch.diag(gamma / sigma) @ (torch.eye(d, dtype=D) - 1.0 / d)
        z = w @ xs + beta
        for i in range(d):
            stab = z[i] + eps * (1.0 if z[i] >= 0 else -1.0)
            out[s, :, i] = (xs * w[i] * z[i] / stab).numpy()
    return out


@pytest.mark.parametrize("rule, eps", [("epsilon", 0.05), ("simple", None)])
def test_layer_norm_lrp_equals_the_attnlrp_reference(rule, eps):
    _seed(10)
    ln = nn.LayerNorm(5).to(D)
    with torch.no_grad():
        ln.weight.uniform_(0.5, 1.5)
        ln.bias.uniform_(-0.5, 0.5)
    x = _x((5,))
    lrp = LRP(rule, eps, dtype="double") if eps is not None else LRP(rule, dtype="double")
    got = lrp.fit(ln, torch.zeros(1, 5, dtype=D)).explain(x, output_idx=list(range(5))).values
    tiny = 1e-12 if eps is None else eps
    ref = _attn_lrp_layer_norm_reference(ln, x, tiny)
    np.testing.assert_allclose(got, ref, atol=1e-8 if eps is None else 1e-12, rtol=0)


def test_reduce_lrp_is_the_proportional_split():
    class Summing(nn.Module):
        def forward(self, x):
            return x.sum(1, keepdim=True)

    model = Summing()
    x = _x((4,)).abs() + 0.1
    res = LRP("epsilon", 1e-9, dtype="double").fit(model, torch.zeros(1, 4, dtype=D)).explain(x)
    np.testing.assert_allclose(res.values[..., 0], x.numpy(), atol=1e-7)
