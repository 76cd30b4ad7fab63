"""Layer attribution (LayerGradient, LayerIntegratedGradients, LayerDeepLift, LayerLRP),
Grad-CAM / Grad-CAM++ and Excitation Backprop, against captum and the papers' formulas."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _stub_imports import import_without_torchvision
from torch import nn

from sknn_explain import (
    LRP,
    ExcitationBackprop,
    GradCAM,
    GradCAMPlusPlus,
    LayerDeepLift,
    LayerGradient,
    LayerIntegratedGradients,
    LayerLRP,
)

captum_attr = pytest.importorskip("captum.attr")

TOL = 1e-6


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 6), nn.ReLU(),
                         nn.Linear(6, 3)).double().eval()


def _cnn(pool: type = nn.AvgPool2d) -> nn.Module:
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), pool(2),
                        nn.Conv2d(4, 6, 3), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 2 * 2, 3))
    net = net.double()
    with torch.no_grad():
        net[1].running_mean.normal_()
        net[1].running_var.uniform_(0.5, 2.0)
        net[1].weight.normal_()
    return net.eval()


def _data(net: nn.Module):
    gen = torch.Generator().manual_seed(2)
    shape = (5,) if isinstance(net[0], nn.Linear) else (1, 8, 8)
    return (torch.randn(6, *shape, generator=gen, dtype=torch.float64),
            torch.randn(1, *shape, generator=gen, dtype=torch.float64))


def _captum(explainer, net, X, k=3, **kw) -> np.ndarray:
    return np.stack([explainer.attribute(X, target=j, **kw).detach().numpy() for j in range(k)], -1)


CASES = [("mlp", "1"), ("mlp", "2"), ("mlp", "3"), ("cnn", "1"), ("cnn", "2"), ("cnn", "4")]


def _net(kind):
    return _mlp() if kind == "mlp" else _cnn()


@pytest.mark.parametrize(("kind", "path"), CASES)
def test_layer_gradients_match_captum(kind, path):
    net = _net(kind)
    X, _ = _data(net)
    module = net[int(path)]
    ours = LayerGradient(path, dtype="double").fit(net).explain(X, output_idx=[0, 1, 2])
    theirs = _captum(captum_attr.LayerGradientXActivation(net, module, multiply_by_inputs=False),
                     net, X)
    assert ours.values.shape == theirs.shape
    assert np.abs(ours.values - theirs).max() < TOL
    ours = LayerGradient(path, times_input=True, dtype="double").fit(net).explain(
        X, output_idx=[0, 1, 2])
    theirs = _captum(captum_attr.LayerGradientXActivation(net, module), net, X)
    assert np.abs(ours.values - theirs).max() < TOL


@pytest.mark.parametrize(("kind", "path"), CASES)
def test_layer_integrated_gradients_match_captum(kind, path):
    net = _net(kind)
    X, ref = _data(net)
    ours = LayerIntegratedGradients(path, n=16, dtype="double").fit(net, ref).explain(
        X, output_idx=[0, 1, 2])
    theirs = _captum(captum_attr.LayerIntegratedGradients(net, net[int(path)]), net, X,
                     baselines=ref, n_steps=16, method="riemann_right")
    assert np.abs(ours.values - theirs).max() < TOL
    # the goal: f(x) - f(x_ref) for a sequential net (all paths pass the layer)
    f = net(X).detach().numpy() - net(ref).detach().numpy()
    np.testing.assert_allclose(ours.decomp_goal, f, atol=1e-10)


@pytest.mark.parametrize(("kind", "path"), CASES)
def test_layer_deeplift_matches_captum(kind, path):
    net = _net(kind)
    X, ref = _data(net)
    ours = LayerDeepLift(path, dtype="double").fit(net, ref).explain(X, output_idx=[0, 1, 2])
    theirs = _captum(captum_attr.LayerDeepLift(net, net[int(path)]), net, X, baselines=ref)
    assert np.abs(ours.values - theirs).max() < TOL
    np.testing.assert_allclose(ours.decomp_sum, ours.decomp_goal, atol=1e-10)


def test_layer_deeplift_is_exact_where_captum_is_not():
    """ReLU followed by MaxPool: captum's LayerDeepLift at the BatchNorm output breaks
    summation-to-delta (its ReLU and MaxPool hooks interact); ours is exact there."""
    net = _cnn(nn.MaxPool2d)
    X, ref = _data(net)
    ours = LayerDeepLift("1", dtype="double").fit(net, ref).explain(X, output_idx=[0, 1, 2])
    np.testing.assert_allclose(ours.decomp_sum, ours.decomp_goal, atol=1e-10)
    f = net(X).detach().numpy() - net(ref).detach().numpy()
    np.testing.assert_allclose(ours.decomp_goal, f, atol=1e-10)
    # above the ReLU the two agree again
    ours = LayerDeepLift("2", dtype="double").fit(net, ref).explain(X, output_idx=[0, 1, 2])
    theirs = _captum(captum_attr.LayerDeepLift(net, net[2]), net, X, baselines=ref)
    assert np.abs(ours.values - theirs).max() < TOL


def test_layer_lrp_equals_lrp_of_the_network_above():
    """The relevance at a layer is the intermediate relevance of the full pass: LRP of the
    sub-network above the layer, explaining the layer's activation, gives the same."""
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 6), nn.ReLU(),
                        nn.Linear(6, 3)).double().eval()
    X = torch.randn(7, 5, dtype=torch.float64)
    res = LayerLRP("1", rule_name="epsilon", dtype="double").fit(net).explain(X)
    above = net[2:]
    h = net[:2](X)
    ref = LRP(rule_name="epsilon", dtype="double").fit(above).explain(h.detach())
    assert res.values.shape == (7, 8, 3)
    np.testing.assert_allclose(res.values, ref.values, atol=1e-12)
    np.testing.assert_allclose(res.inputs, h.detach().numpy(), atol=1e-12)


@pytest.mark.parametrize("path", ["0", "1", "2", "3"])
def test_layer_lrp_conserves_on_bias_free_nets(path):
    torch.manual_seed(4)
    net = nn.Sequential(nn.Conv2d(1, 3, 3, bias=False), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(27, 2, bias=False)).double().eval()
    X = torch.randn(4, 1, 8, 8, dtype=torch.float64)
    res = LayerLRP(path, dtype="double").fit(net).explain(X)
    full = LRP(dtype="double").fit(net).explain(X)
    np.testing.assert_allclose(res.decomp_sum, full.decomp_goal, atol=1e-10)
    np.testing.assert_allclose(full.decomp_sum, full.decomp_goal, atol=1e-10)


def test_layer_names_shapes_and_frame():
    net = _cnn()
    X, _ = _data(net)
    res = LayerGradient("conv2d_4").fit(net).explain(X.float())
    assert res.layer == "conv2d_4"
    assert res.values.shape == (6, 6, 2, 2, 3)
    assert res.input_names[0][0][:2] == ["conv2d_4[0]", "conv2d_4[1]"]
    assert res.inputs.shape == (6, 6, 2, 2)
    frame = res.to_frame()
    assert len(frame) == 6 * 6 * 2 * 2 * 3
    assert set(frame["channel"]) >= {"conv2d_4[0]"} or "conv2d_4[0]" in set(frame["feature"])


def test_unknown_layer_lists_valid_names():
    net = _mlp()
    X, _ = _data(net)
    with pytest.raises(ValueError, match=r"unknown layer 'nope'.*linear_0"):
        LayerGradient("nope").fit(net).explain(X)
    with pytest.raises(TypeError, match="'layer' parameter"):
        LayerGradient(3).fit(net)


def test_residual_branch_is_held_at_x():
    """A layer bypassed by a skip connection: the bypass keeps its value at x (captum)."""

    class Res(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.block = nn.Sequential(nn.Linear(4, 4), nn.Tanh())
            self.out = nn.Linear(4, 2)

        def forward(self, x):
            h = torch.relu(self.fc(x))
            return self.out(h + self.block(h))

    torch.manual_seed(5)
    net = Res().double().eval()
    X = torch.randn(5, 4, dtype=torch.float64)
    ref = torch.randn(1, 4, dtype=torch.float64)
    ours = LayerIntegratedGradients("block.1", n=10, dtype="double").fit(net, ref).explain(
        X, output_idx=[0, 1])
    theirs = _captum(captum_attr.LayerIntegratedGradients(net, net.block[1]), net, X, k=2,
                     baselines=ref, n_steps=10, method="riemann_right")
    assert np.abs(ours.values - theirs).max() < TOL


def _state(net: nn.Module):
    return ({k: v.clone() for k, v in net.state_dict().items()}, net.training,
            [p.requires_grad for p in net.parameters()],
            [(len(m._forward_hooks), len(m._backward_hooks), len(m._forward_pre_hooks))
             for m in net.modules()])


def _same(a, b):
    assert a[1:] == b[1:]
    assert all(torch.equal(a[0][k], b[0][k]) for k in a[0])


@pytest.mark.parametrize("cls", [LayerGradient, LayerIntegratedGradients, LayerDeepLift,
                                 LayerLRP, GradCAM, GradCAMPlusPlus, ExcitationBackprop])
def test_model_is_never_mutated(cls):
    net = _cnn()
    net.train()
    net[4].weight.requires_grad_(False)
    X, _ = _data(net)
    before = _state(net)
    cls("2").fit(net).explain(X.float())
    _same(before, _state(net))
    with pytest.raises(ValueError):
        cls("nope").fit(net).explain(X.float())
    _same(before, _state(net))


# ------------------------------------------------------------------ Grad-CAM / Grad-CAM++
def _relu_cnn() -> nn.Module:
    torch.manual_seed(6)
    net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Conv2d(4, 5, 3, padding=1), nn.ReLU(),
                        nn.Flatten(), nn.Linear(5 * 5 * 5, 3)).double()
    with torch.no_grad():
        net[1].running_mean.normal_()
        net[1].running_var.uniform_(0.5, 2.0)
    return net.eval()


@pytest.mark.parametrize("upsample", ["bilinear", "nearest", None])
@pytest.mark.parametrize("path", ["2", "5"])
def test_gradcam_matches_captum(path, upsample):
    net = _relu_cnn()
    X = torch.randn(4, 2, 10, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    res = GradCAM(path, upsample=upsample, dtype="double").fit(net).explain(
        X, output_idx=[0, 1, 2])
    cam = captum_attr.LayerGradCam(net, net[int(path)])
    theirs = []
    for k in range(3):
        a = cam.attribute(X, target=k, relu_attributions=True)
        if upsample is not None:
            a = captum_attr.LayerAttribution.interpolate(a, (10, 10), interpolate_mode=upsample)
        theirs.append(a.detach().numpy())
    theirs = np.stack(theirs, -1)
    assert res.values.shape == theirs.shape
    assert np.abs(res.values - theirs).max() < TOL
    assert res.values.min() >= 0
    # without the ReLU the negative evidence stays
    raw = GradCAM(path, relu_attributions=False, upsample=None, dtype="double").fit(
        net).explain(X, output_idx=[0])
    ref = cam.attribute(X, target=0).detach().numpy()[..., None]
    assert np.abs(raw.values - ref).max() < TOL


def _gradcam_pp_reference(net, module, X, k):
    """Grad-CAM++ from the paper's formula, loop by loop (eq. 19 with dS/dA)."""
    store = {}
    handle = module.register_forward_hook(lambda m, i, o: store.update(a=o))
    try:
        out = net(X)
    finally:
        handle.remove()
    A = store["a"]
    (G,) = torch.autograd.grad(out[:, k].sum(), A)
    A, G = A.detach().numpy(), G.numpy()
    n, C, H, W = A.shape
    cams = np.zeros((n, H, W))
    for s in range(n):
        for c in range(C):
            total = A[s, c].sum()
            w = 0.0
            for i in range(H):
                for j in range(W):
                    g = G[s, c, i, j]
                    if g == 0:
                        continue
                    alpha = g ** 2 / (2 * g ** 2 + total * g ** 3)
                    w += alpha * max(g, 0.0)
            cams[s] += w * A[s, c]
    return np.maximum(cams, 0)


def test_gradcam_plus_plus_matches_the_papers_formula():
    net = _relu_cnn()
    X = torch.randn(3, 2, 10, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    res = GradCAMPlusPlus("5", upsample=None, dtype="double").fit(net).explain(
        X, output_idx=[0, 2])
    for col, k in enumerate([0, 2]):
        ref = _gradcam_pp_reference(net, net[5], X, k)
        np.testing.assert_allclose(res.values[:, 0, ..., col], ref, atol=1e-10)
    up = GradCAMPlusPlus("5", dtype="double").fit(net).explain(X, output_idx=[0])
    assert up.values.shape == (3, 1, 10, 10, 1)


def test_gradcam_channels_last_and_plots():
    import matplotlib

    matplotlib.use("Agg")
    net = _relu_cnn().float()
    X = np.random.default_rng(0).normal(size=(2, 10, 10, 2)).astype(np.float32)
    res = GradCAM("conv2d_4", channels_first=False).fit(net).explain(X, output_idx=[1])
    assert res.values.shape == (2, 10, 10, 1, 1)
    assert res.inputs.shape == (2, 10, 10, 1)
    res.plot_local(0)
    with pytest.raises(ValueError, match="convolutional layer"):
        GradCAM("linear_7", channels_first=False).fit(net).explain(X)
    with pytest.raises(ValueError, match="channels_first"):
        GradCAM("conv2d_4").fit(net).explain(X)


# ------------------------------------------------------------------ Excitation Backprop
def _eb_mlp(bias: bool = True) -> nn.Sequential:
    torch.manual_seed(9)
    return nn.Sequential(nn.Linear(5, 7, bias=bias), nn.ReLU(), nn.Linear(7, 6, bias=bias),
                         nn.ReLU(), nn.Linear(6, 3, bias=bias)).double().eval()


def _mwp_reference(net: nn.Sequential, x: np.ndarray, k: int, negate_top: bool = False):
    """The paper's eqs. 5-7 unit by unit: P(a_j) = sum_i P(a_j|a_i) P(a_i) with
    P(a_j|a_i) = Z_i a_j w+_ij, Z_i = 1 / sum_j a_j w+_ij. Returns P at every Linear input."""
    linears = [m for m in net if isinstance(m, nn.Linear)]
    acts, a = [], x
    for m in net:
        if isinstance(m, nn.Linear):
            acts.append(a)
        a = m(torch.as_tensor(a)).detach().numpy() if isinstance(a, np.ndarray) else a
    p = np.zeros(linears[-1].out_features)
    p[k] = 1.0
    maps = []
    for depth, (m, a) in enumerate(zip(reversed(linears), reversed(acts))):
        W = m.weight.detach().numpy()  # (out, in)
        if negate_top and depth == 0:
            W = -W
        below = np.zeros(W.shape[1])
        for i in range(W.shape[0]):
            z = sum(a[j] * max(W[i, j], 0.0) for j in range(W.shape[1]))
            if z == 0:
                continue
            for j in range(W.shape[1]):
                below[j] += a[j] * max(W[i, j], 0.0) / z * p[i]
        p = below
        maps.append(p)
    return maps[::-1]  # P at the input of each Linear, bottom-up


def test_excitation_backprop_matches_the_papers_formula():
    net = _eb_mlp()
    X = torch.rand(4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(10))
    inp = ExcitationBackprop(dtype="double").fit(net).explain(X)
    hid = ExcitationBackprop("1", dtype="double").fit(net).explain(X)
    for s in range(4):
        for k in range(3):
            ref = _mwp_reference(net, X[s].numpy(), k)
            np.testing.assert_allclose(inp.values[s, :, k], ref[0], atol=1e-12)
            np.testing.assert_allclose(hid.values[s, :, k], ref[1], atol=1e-12)
    # non-negative inputs, every unit excited: a probability distribution
    np.testing.assert_allclose(inp.values.sum(1), 1.0, atol=1e-12)


def test_contrastive_mwp_matches_the_papers_formula():
    net = _eb_mlp()
    X = torch.rand(3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(11))
    res = ExcitationBackprop("3", contrastive="c-mwp", dtype="double").fit(net).explain(X)
    for s in range(3):
        for k in range(3):
            pos = _mwp_reference(net, X[s].numpy(), k)[2]
            neg = _mwp_reference(net, X[s].numpy(), k, negate_top=True)[2]
            np.testing.assert_allclose(res.values[s, :, k], pos - neg, atol=1e-12)
    assert res.decomp_goal is None


def _import_zennit():
    """zennit's rules, composites and attribution (torchvision stubbed for the import)."""
    return import_without_torchvision("zennit.rules", "zennit.composites",
                                      "zennit.attribution")


def test_excitation_backprop_is_zplus_lrp_over_the_output():
    """Non-negative inputs, bias-free net: EB = LRP z+ / f(x) (ours and zennit's ZPlus)."""
    net = _eb_mlp(bias=False)
    X = torch.rand(6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(12))
    eb = ExcitationBackprop(dtype="double").fit(net).explain(X, output_idx=[0, 1, 2])
    lrp = LRP(rule_name="zplus", dtype="double").fit(net).explain(X, output_idx=[0, 1, 2])
    f = net(X).detach().numpy()
    keep = np.abs(f) > 1e-3
    ratio = lrp.values / f[:, None, :]
    np.testing.assert_allclose(np.where(keep[:, None], eb.values, 0),
                               np.where(keep[:, None], ratio, 0), atol=1e-10)
    zrules, zcomposites, zattribution = _import_zennit()
    composite = zcomposites.LayerMapComposite([(nn.Linear, zrules.ZPlus(stabilizer=1e-30)),
                                               (nn.ReLU, zrules.Pass())])
    for k in range(3):
        onehot = torch.zeros(6, 3, dtype=torch.float64)
        onehot[:, k] = 1.0
        with zattribution.Gradient(model=net, composite=composite) as attributor:
            _, rel = attributor(X.clone(), onehot * net(X).detach())
        ours = eb.values[..., k] * f[:, k:k + 1]
        np.testing.assert_allclose(rel.numpy(), ours, atol=1e-10)


def test_excitation_backprop_on_a_batchnorm_cnn():
    net = _relu_cnn()
    X = torch.rand(2, 2, 10, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(13))
    res = ExcitationBackprop("5", dtype="double").fit(net).explain(X)
    assert res.values.shape == (2, 5, 5, 5, 3)
    assert (res.values >= 0).all()
    np.testing.assert_allclose(res.values.reshape(2, -1, 3).sum(1), 1.0, atol=1e-10)
    with pytest.raises(ValueError, match="Dense"):
        ExcitationBackprop(contrastive="c-mwp").fit(nn.Sequential(
            nn.Conv1d(1, 2, 3), nn.ReLU())).explain(np.ones((1, 1, 5), np.float32))


@pytest.mark.parametrize("shape", [(5,), (2, 10), (1, 8, 8)], ids=["tabular", "signal", "image"])
def test_layer_results_plot(shape):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    torch.manual_seed(14)
    if len(shape) == 1:
        net = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))
    elif len(shape) == 2:
        net = nn.Sequential(nn.Conv1d(2, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(32, 3))
    else:
        net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(108, 3))
    res = LayerLRP("1").fit(net).explain(torch.randn(3, *shape))
    assert res.values.shape[1] == (8 if len(shape) == 1 else 4 if len(shape) == 2 else 3)
    res.plot_local(0)
    res.plot_global()
    plt.close("all")
