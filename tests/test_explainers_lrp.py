"""LRP against zennit, against a slow per-formula numpy reference, and its axioms."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import torch
from _graphs import ConcatNet, ResidualNet, odd_pooling_graph, sequential_graph
from _stub_imports import import_without_torchvision
from _torch_models import assert_unchanged, cnn, mlp, snapshot
from sklearn.base import clone
from torch import nn

from sknn_explain.convert import Graph, Node
from sknn_explain.explainers.lrp import LRP
from sknn_explain.layers import Activation, Add, AvgPool, Conv, Dense, MaxPool
from sknn_explain.rules import (
    AlphaBeta,
    Epsilon,
    Gamma,
    Simple,
    ZBox,
    get_rule,
    resolve_rules,
    tiny_eps,
)

TINY = tiny_eps(torch.float64)


# ----------------------------------------------------------------------------- references
def _load_zennit_rules():
    """zennit's rules module (torchvision stubbed for the import)."""
    (zrules,) = import_without_torchvision("zennit.rules")
    return zrules


@pytest.fixture(scope="module")
def zr():
    return _load_zennit_rules()


def zennit_lrp(model, x, linear_rule, zr, n_out, first_rule=None):
    """zennit relevances for every output, one backward per output (stacked last)."""
    outs = []
    for k in range(n_out):
        handles, first = [], True
        for m in model.modules():
            if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):
                make = first_rule if (first and first_rule is not None) else linear_rule
                handles.append(make().register(m))
                first = False
            elif isinstance(m, (nn.ReLU, nn.Tanh, nn.BatchNorm1d, nn.BatchNorm2d)):
                handles.append(zr.Pass().register(m))
            elif isinstance(m, nn.AvgPool2d):
                handles.append(zr.Norm(stabilizer=TINY).register(m))
        try:
            xg = x.clone().requires_grad_(True)
            out = model(xg)
            seed = torch.zeros_like(out)
            seed[:, k] = out[:, k].detach()
            (g,) = torch.autograd.grad(out, xg, seed)
        finally:
            for h in handles:
                h.remove()
        outs.append(g.detach().numpy())
    return np.stack(outs, axis=-1)


def _stab(z, eps):
    return z + eps * np.where(z >= 0, 1.0, -1.0)


def numpy_lrp_dense(layers, x, rule, param=None, n_out=None):
    """Slow reference from the paper formulas for Dense(+activation) stacks, in numpy.

    ``layers``: list of (W, b, act) with numpy W (out, in), b (out,) and a numpy activation.
    Every contribution ``z_ij = a_i w_ji`` is formed explicitly.
    """
    acts = [x]
    for w, b, act in layers:
        acts.append(act(acts[-1] @ w.T + b))
    pre = acts[-2] @ layers[-1][0].T + layers[-1][1]
    n_out = pre.shape[1] if n_out is None else n_out
    result = []
    for k in range(n_out):
        r = np.zeros_like(pre)
        r[:, k] = pre[:, k]
        for (w, b, _), a in zip(reversed(layers), reversed(acts[:-1])):
            z = a[:, None, :] * w[None]  # (n, out, in)
            zj = z.sum(-1) + b
            if rule in ("simple", "epsilon"):
                eps = TINY if rule == "simple" else param
                r = np.einsum("noi,no->ni", z, r / _stab(zj, eps))
            elif rule in ("zplus", "alpha_beta"):
                zp, zn = np.maximum(z, 0), np.minimum(z, 0)
                rp = np.einsum("noi,no->ni", zp,
                               r / _stab(zp.sum(-1) + np.maximum(b, 0), TINY))
                if rule == "zplus":
                    r = rp
                else:
                    rn = np.einsum("noi,no->ni", zn,
                                   r / _stab(zn.sum(-1) + np.minimum(b, 0), TINY))
                    r = param * rp - (param - 1) * rn
            elif rule == "gamma":
                up = z + param * np.maximum(z, 0)
                dn = z + param * np.minimum(z, 0)
                sp = r * (zj > 0) / _stab(up.sum(-1) + b + param * np.maximum(b, 0), TINY)
                sn = r * (zj < 0) / _stab(dn.sum(-1) + b + param * np.minimum(b, 0), TINY)
                r = np.einsum("noi,no->ni", up, sp) + np.einsum("noi,no->ni", dn, sn)
            elif rule == "flat":
                r = np.repeat((r / _stab(np.full_like(zj, w.shape[1]), TINY)).sum(
                    -1, keepdims=True), w.shape[1], axis=1)
            elif rule == "wsquare":
                w2 = w ** 2
                r = (r / _stab(w2.sum(-1) + b ** 2, TINY)) @ w2
            elif rule == "zbox":
                low, high = param
                zb = z - low * np.maximum(w, 0)[None] - high * np.minimum(w, 0)[None]
                r = np.einsum("noi,no->ni", zb, r / _stab(zb.sum(-1), TINY))
        result.append(r)
    return np.stack(result, axis=-1)


def _np_layers(model: nn.Sequential):
    acts = {nn.ReLU: lambda t: np.maximum(t, 0), nn.Tanh: np.tanh}
    mods = list(model)
    out = []
    for i, m in enumerate(mods):
        if isinstance(m, nn.Linear):
            nxt = mods[i + 1] if i + 1 < len(mods) else None
            act = acts[type(nxt)] if nxt is not None else (lambda t: t)
            out.append((m.weight.detach().numpy(), m.bias.detach().numpy(), act))
    return out


# ----------------------------------------------------------------------------- tests
ZENNIT_CASES = {
    "simple": ("simple", None, lambda zr: zr.Epsilon(TINY)),
    "epsilon": ("epsilon", 0.01, lambda zr: zr.Epsilon(0.01)),
    "zplus": ("zplus", None, lambda zr: zr.ZPlus(stabilizer=TINY)),
    "alpha2_beta1": ("alpha_beta", 2.0, lambda zr: zr.AlphaBeta(2.0, 1.0, stabilizer=TINY)),
    "alpha1_beta0": ("alpha_beta", 1.0, lambda zr: zr.AlphaBeta(1.0, 0.0, stabilizer=TINY)),
    "gamma": ("gamma", 0.3, lambda zr: zr.Gamma(0.3, stabilizer=TINY)),
    "flat": ("flat", None, lambda zr: zr.Flat(stabilizer=TINY)),
    "wsquare": ("wsquare", None, lambda zr: zr.WSquare(stabilizer=TINY)),
    "zbox": ("zbox", (-3.0, 3.0), lambda zr: zr.ZBox(-3.0, 3.0, stabilizer=TINY)),
}
MODELS = {
    "mlp_tanh": (lambda: mlp(act=nn.Tanh), (5,)),
    "mlp_relu_bn": (lambda: mlp(batchnorm=True), (5,)),
    "cnn_max": (lambda: cnn(n_out=4), (3, 8, 8)),
    "cnn_avg": (lambda: cnn(n_out=4, pool="avg"), (3, 8, 8)),
}


@pytest.mark.parametrize("model_name", list(MODELS))
@pytest.mark.parametrize("case", list(ZENNIT_CASES))
def test_lrp_equals_zennit(zr, model_name, case):
    make_model, shape = MODELS[model_name]
    model = make_model().double()
    torch.manual_seed(3)
    x = torch.randn(4, *shape, dtype=torch.float64)
    name, param, make_rule = ZENNIT_CASES[case]
    # Dense/Conv get the rule; average pooling keeps "simple" (zennit's Norm rule)
    lrp = LRP(rule_name={"Dense": name, "Conv": name, "AvgPool": "simple"},
              rule_param={"Dense": param, "Conv": param}, dtype="double")
    ours = lrp.fit(model).explain(x, output_idx=list(range(4))).values
    ref = zennit_lrp(model, x, lambda: make_rule(zr), zr, 4)
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).mean() < 1e-10
    assert np.abs(ref).mean() > 1e-4  # not trivially zero


@pytest.mark.parametrize("rule,param", [
    ("simple", None), ("epsilon", 0.1), ("zplus", None), ("alpha_beta", 0.5),
    ("alpha_beta", 2.0), ("gamma", 0.25), ("flat", None), ("wsquare", None),
    ("zbox", (-2.0, 2.5)),
])
def test_lrp_equals_formula_reference(rule, param):
    model = mlp(act=nn.Tanh, hidden=(7, 6), n_out=3, seed=2).double()
    torch.manual_seed(0)
    x = torch.randn(6, 5, dtype=torch.float64)
    ours = LRP(rule_name=rule, rule_param=param, dtype="double").fit(model).explain(x).values
    ref = numpy_lrp_dense(_np_layers(model), x.numpy(), rule, param)
    assert np.abs(ours - ref).mean() < 1e-10


def test_innsight_alpha_maps_to_zennit_alpha_beta(zr):
    """innsight's alpha (default 0.5) is zennit's AlphaBeta(alpha, beta=alpha - 1).

    zennit only takes alpha >= 1; for one layer the rule is linear in alpha, so alpha=0.5
    equals 1.5 * zennit(1, 0) - 0.5 * zennit(2, 1).
    """
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(6, 3)).double()
    x = torch.randn(5, 6, dtype=torch.float64)
    ab = {a: zennit_lrp(model, x, lambda a=a: zr.AlphaBeta(a, a - 1, stabilizer=TINY), zr, 3)
          for a in (1.0, 2.0, 3.0)}
    for alpha in (1.0, 2.0, 3.0):
        ours = LRP("alpha_beta", alpha, dtype="double").fit(model).explain(x).values
        assert np.abs(ours - ab[alpha]).mean() < 1e-12
    half = LRP(dtype="double", rule_name=AlphaBeta()).fit(model).explain(x).values
    assert AlphaBeta().alpha == 0.5 and AlphaBeta().beta == -0.5
    assert np.abs(half - (1.5 * ab[1.0] - 0.5 * ab[2.0])).mean() < 1e-12


def test_input_rule_only_on_first_layer(zr):
    model = mlp(n_out=3, seed=4).double()
    torch.manual_seed(2)
    x = torch.randn(5, 5, dtype=torch.float64)
    ours = LRP(rule_name={"Dense": "epsilon", "input": "zbox"},
               rule_param={"Dense": 0.05, "input": (-4.0, 4.0)},
               dtype="double").fit(model).explain(x).values
    ref = zennit_lrp(model, x, lambda: zr.Epsilon(0.05), zr, 3,
                     first_rule=lambda: zr.ZBox(-4.0, 4.0, stabilizer=TINY))
    assert np.abs(ours - ref).mean() < 1e-10
    # innsight's layer names are accepted as keys
    alias = LRP(rule_name={"Dense_Layer": "epsilon", "input": "zbox"},
                rule_param={"Dense_Layer": 0.05, "input": (-4.0, 4.0)},
                dtype="double").fit(model).explain(x).values
    np.testing.assert_array_equal(alias, ours)


def _bias_free_models():
    return {
        "mlp_relu": (mlp(bias=False, seed=5), [torch.randn(6, 5)]),
        "mlp_tanh": (mlp(bias=False, act=nn.Tanh, seed=6), [torch.randn(6, 5)]),
        "cnn_max": (cnn(bias=False, seed=7), [torch.randn(3, 3, 8, 8)]),
        "cnn_avg": (cnn(bias=False, pool="avg", seed=8), [torch.randn(3, 3, 8, 8)]),
        "residual": (ResidualNet(bias=False), [torch.randn(6, 5)]),
        "concat_2out": (ConcatNet(bias=False), [torch.randn(6, 5), torch.randn(6, 2, 6)]),
        "padding_odd_pooling": (odd_pooling_graph(bias=False),
                                [torch.randn(4, 2, 6, 5), torch.randn(4, 2, 9)]),
    }


@pytest.mark.parametrize("name", list(_bias_free_models()))
def test_lrp_conservation_bias_free(name):
    torch.manual_seed(0)
    model, xs = _bias_free_models()[name]
    model = model.double()
    xs = [x.double() for x in xs]
    res = LRP(dtype="double").fit(model).explain(
        xs if len(xs) > 1 else xs[0], output_idx=[[0, 1], [1]] if name == "concat_2out" else None)
    sums = res.decomp_sum if isinstance(res.decomp_sum, list) else [res.decomp_sum]
    goals = res.decomp_goal if isinstance(res.decomp_goal, list) else [res.decomp_goal]
    for s, g in zip(sums, goals):
        assert np.abs(s - g).max() < 1e-8
        assert np.abs(g).mean() > 1e-3


def test_bias_absorbs_relevance():
    model = mlp(seed=9).double()
    x = torch.randn(5, 5, dtype=torch.float64)
    res = LRP(dtype="double").fit(model).explain(x)
    assert np.abs(res.decomp_sum - res.decomp_goal).max() > 1e-3
    np.testing.assert_allclose(res.decomp_goal, model(x).detach().numpy(), atol=1e-12)


def _conv_equivalent(pool: nn.Module, channels: int) -> Conv:
    k = pool.kernel_size if isinstance(pool.kernel_size, tuple) else (pool.kernel_size,) * 2
    s = pool.stride if isinstance(pool.stride, tuple) else (pool.stride,) * 2
    weight = torch.full((channels, 1, *k), 1.0 / (k[0] * k[1]), dtype=torch.float64)
    return Conv(weight, None, s, (0, 0), (1, 1), channels)


@pytest.mark.parametrize("rule,param", [
    ("simple", None), ("epsilon", 0.1), ("alpha_beta", 2.0), ("alpha_beta", 0.5), ("zplus", None),
    ("gamma", 0.5), ("flat", None), ("wsquare", None), ("zbox", (-3.0, 3.0)),
])
@pytest.mark.parametrize("pool_kind", ["avg", "max_not_wta"])
def test_pooling_rules_equal_the_depthwise_conv_they_are(rule, param, pool_kind):
    """AvgPool (and MaxPool with winner_takes_all=False) redistribute like a 1/k conv."""
    torch.manual_seed(0)
    conv1 = nn.Conv2d(2, 3, 3, padding=1).double()
    pool = nn.AvgPool2d(2) if pool_kind == "avg" else nn.MaxPool2d(2)
    key = "AvgPool" if pool_kind == "avg" else "MaxPool"
    x = torch.randn(4, 2, 6, 6, dtype=torch.float64)
    kw = dict(rule_name={key: rule, "Conv": rule}, rule_param={key: param, "Conv": param},
              winner_takes_all=False, dtype="double")
    if pool_kind == "avg":
        seq = nn.Sequential(conv1, nn.Tanh(), pool, nn.Flatten(), nn.Linear(27, 4).double())
    else:  # the forward values differ (max vs mean): compare per unit of output relevance
        seq = nn.Sequential(conv1, nn.Tanh(), pool, nn.Flatten())
    g_pool = sequential_graph(seq, (2, 6, 6))
    nodes = list(g_pool.nodes)
    nodes[2] = Node(nodes[2].name, _conv_equivalent(pool, 3), nodes[2].inputs)
    g_conv = Graph(nodes, 1, g_pool.outputs, g_pool.input_shapes)
    a = LRP(**kw).fit(g_pool).explain(x, output_idx=list(range(4)))
    b = LRP(**kw).fit(g_conv).explain(x, output_idx=list(range(4)))
    va, vb = a.values, b.values
    if pool_kind != "avg":
        va = va / a.decomp_goal[:, None, None, None, :]
        vb = vb / b.decomp_goal[:, None, None, None, :]
    assert np.abs(va - vb).max() < 1e-8
    assert np.abs(va).max() > 1e-3


def test_maxpool_winner_takes_all_routes_to_the_maximum():
    x = torch.tensor([[[3.0, 1.0, -2.0, 5.0]]], dtype=torch.float64)  # (1, 1, 4)
    g = Graph([Node("pool", MaxPool(1, 2), ["input_0"]), Node("flat", _flatten(), ["pool"]),
               Node("out", Dense(torch.tensor([[1.0, 1.0]], dtype=torch.float64)), ["flat"])],
              1, ["out"], [(1, 4)])
    wta = LRP(dtype="double").fit(g).explain(x).values[0, 0, :, 0]
    np.testing.assert_allclose(wta, [3.0, 0.0, 0.0, 5.0])
    avg = LRP(winner_takes_all=False, dtype="double").fit(g).explain(x).values[0, 0, :, 0]
    # treated as averages: z = (3 + 1) / 2 and (-2 + 5) / 2 -> R_i = x_i / 2 / z * y
    np.testing.assert_allclose(avg, [3 * 3 / 4, 3 * 1 / 4, 5 * -2 / 3, 5 * 5 / 3])


def _flatten():
    from sknn_explain.layers import Flatten

    return Flatten()


def _add_graph():
    wa = torch.tensor([[1.0, 2.0], [0.5, -1.0]], dtype=torch.float64)
    wb = torch.tensor([[-1.0, 1.0], [2.0, 0.0]], dtype=torch.float64)
    nodes = [Node("a", Dense(wa), ["input_0"]), Node("b", Dense(wb), ["input_0"]),
             Node("add", Add(), ["a", "b"])]
    return Graph(nodes, 1, ["add"], [(2,)]), wa, wb


def test_add_rules():
    g, wa, wb = _add_graph()
    x = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    a, b = (x @ wa.T).numpy()[0], (x @ wb.T).numpy()[0]
    y = a + b
    xn = x.numpy()[0]

    def dense_rel(w, r):  # simple rule on a bias-free Dense
        z = xn[None, :] * w.numpy()
        return (z / _stab(z.sum(1, keepdims=True), TINY) * r[:, None]).sum(0)

    equal = LRP(dtype="double").fit(g).explain(x).values[0]
    for k in range(2):
        r = np.zeros(2)
        r[k] = y[k]
        ref = dense_rel(wa, r / 2) + dense_rel(wb, r / 2)
        np.testing.assert_allclose(equal[:, k], ref, atol=1e-12)
    prop = LRP(rule_name={"Add": "epsilon"}, rule_param={"Add": 0.0},
               dtype="double").fit(g).explain(x).values[0]
    for k in range(2):
        r = np.zeros(2)
        r[k] = y[k]
        ref = dense_rel(wa, r * a / y) + dense_rel(wb, r * b / y)
        np.testing.assert_allclose(prop[:, k], ref, atol=1e-12)


def test_batchnorm_default_pass_and_epsilon_rule():
    model = mlp(batchnorm=True, n_out=3, seed=3).double()
    x = torch.randn(4, 5, dtype=torch.float64)
    passed = LRP(dtype="double").fit(model).explain(x).values
    bn_eps = LRP(rule_name={"BatchNorm": "epsilon"}, rule_param={"BatchNorm": 0.0},
                 dtype="double").fit(model).explain(x).values
    assert np.abs(passed - bn_eps).max() > 1e-4  # the BatchNorm rule is applied
    # single BatchNorm layer: epsilon rule = x * scale / (x * scale + shift) * R
    bn = model[1]
    scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()
    shift = (bn.bias - bn.running_mean * scale).detach()
    h = model[0](x).detach()
    ratio = (h * scale / (h * scale + shift)).numpy()
    sub = nn.Sequential(*list(model)[:2])  # Linear -> BatchNorm as the output
    r_bn = LRP(rule_name={"BatchNorm": "epsilon"}, rule_param={"BatchNorm": 0.0},
               dtype="double").fit(sub).explain(x, output_idx=[0]).values[..., 0]
    r_pass = LRP(dtype="double").fit(sub).explain(x, output_idx=[0]).values[..., 0]
    # with pass, the Linear gets R = y_0 at node 0; with epsilon, R = ratio_0 * y_0
    np.testing.assert_allclose(r_bn, r_pass * ratio[:, :1], atol=1e-10)


def test_all_outputs_in_one_pass_equal_per_output_and_selection():
    model = ConcatNet().double()
    torch.manual_seed(0)
    xs = [torch.randn(5, 5, dtype=torch.float64), torch.randn(5, 2, 6, dtype=torch.float64)]
    lrp = LRP(rule_name="epsilon", dtype="double").fit(model)
    full = lrp.explain(xs, output_idx=[[0, 1, 2], [0, 1]])
    assert len(full.raw_values) == 2 and len(full.raw_values[0]) == 2
    for layer, idx in ((0, [2]), (1, [1])):
        sel = [None, None]
        sel[layer] = idx
        one = lrp.explain(xs, output_idx=sel)
        for inp in range(2):
            np.testing.assert_allclose(one.raw_values[0][inp][..., 0],
                                       full.raw_values[layer][inp][..., idx[0]], atol=1e-12)


def test_batch_size_dtype_and_last_activation():
    model = mlp(act=nn.Tanh, seed=1)
    model = nn.Sequential(*model, nn.Softmax(dim=-1)).double()
    x = torch.randn(9, 5, dtype=torch.float64)
    full = LRP(dtype="double").fit(model).explain(x).values
    chunked = LRP(dtype="double", batch_size=2).fit(model).explain(x).values
    np.testing.assert_allclose(full, chunked, atol=1e-12)
    single = LRP().fit(model).explain(x.float()).values
    assert single.dtype == np.float32
    assert np.abs(single - full).max() < 1e-3
    # ignore_last_act=False: the softmax output is decomposed (passed through position-wise)
    res = LRP(ignore_last_act=False, dtype="double").fit(model).explain(x)
    np.testing.assert_allclose(res.decomp_goal, model(x).detach().numpy(), atol=1e-12)
    bias_free = nn.Sequential(*mlp(bias=False, seed=2), nn.Softmax(dim=-1)).double()
    res = LRP(ignore_last_act=False, dtype="double").fit(bias_free).explain(x)
    assert np.abs(res.decomp_sum - res.decomp_goal).max() < 1e-8


def test_model_untouched_pickle_clone():
    model = cnn(n_out=3)
    before = snapshot(model)
    x = torch.randn(2, 3, 8, 8)
    lrp = LRP(rule_name={"Conv": "alpha_beta", "input": "zbox"},
              rule_param={"Conv": 1.0, "input": (-3.0, 3.0)}).fit(model)
    res = lrp.explain(x)
    assert_unchanged(model, before)
    again = pickle.loads(pickle.dumps(lrp)).explain(x)
    np.testing.assert_array_equal(res.values, again.values)
    cl = clone(lrp)
    assert cl.get_params()["rule_param"] == lrp.rule_param
    assert not hasattr(cl, "model_")


def test_rule_objects_and_registry():
    assert get_rule("epsilon", 0.2) == Epsilon(0.2)
    assert get_rule(Gamma(0.1)) == Gamma(0.1)
    assert pickle.loads(pickle.dumps(ZBox([0.0, 1.0], 2.0))) == ZBox([0.0, 1.0], 2.0)
    rules = resolve_rules("alpha_beta", 2.0)
    assert rules.for_key("Conv") == AlphaBeta(2.0)
    assert rules.for_key("BatchNorm").name == "pass"
    assert rules.for_key("Add").name == "equal"
    assert resolve_rules({"AvgPool": "epsilon"}).for_key("AdaptiveAvgPool").name == "epsilon"
    model = mlp(n_out=2).double()
    x = torch.randn(3, 5, dtype=torch.float64)
    by_name = LRP("epsilon", 0.1, dtype="double").fit(model).explain(x).values
    by_obj = LRP(Epsilon(0.1), dtype="double").fit(model).explain(x).values
    np.testing.assert_array_equal(by_name, by_obj)
    simple = LRP(dtype="double").fit(model).explain(x).values
    np.testing.assert_array_equal(simple, LRP(Simple(), dtype="double").fit(model).explain(
        x).values)


@pytest.mark.parametrize("kwargs,err,match", [
    (dict(rule_name="nope"), ValueError, "unknown LRP rule"),
    (dict(rule_name={"Dense": "pass"}), ValueError, "cannot be used for Dense"),
    (dict(rule_name={"Linear": "epsilon"}), ValueError, "unknown layer type"),
    (dict(rule_name="zbox"), ValueError, "needs rule_param"),
    (dict(rule_name="epsilon", rule_param=-1.0), ValueError, "epsilon must be >= 0"),
    (dict(rule_name={"Add": "zplus"}), ValueError, "cannot be used for Add"),
    (dict(rule_name=3), TypeError, "'rule_name' parameter of LRP must be"),
    (dict(winner_takes_all="yes"), TypeError, "'winner_takes_all' parameter of LRP must be"),
    (dict(rule_name="zbox", rule_param=(1.0, 0.0)), ValueError, "low <= high"),
])
def test_bad_parameters(kwargs, err, match):
    with pytest.raises(err, match=match):
        LRP(**kwargs).fit(mlp())


def test_zbox_bounds_must_broadcast():
    with pytest.raises(ValueError, match="do not broadcast"):
        LRP("zbox", (np.zeros(3), np.ones(3))).fit(mlp()).explain(torch.randn(2, 5))


def test_unconvertible_model_is_a_clear_error():
    class Weird(nn.Module):
        def forward(self, x):
            return torch.fft.fft(x).real

    with warnings.catch_warnings(), pytest.raises((TypeError, ValueError)):
        warnings.simplefilter("ignore")
        LRP().fit(Weird(), torch.randn(2, 4))


def test_avgpool_graph_layer_and_activation_pass():
    g = Graph([Node("pool", AvgPool(1, 2), ["input_0"]),
               Node("act", Activation("tanh"), ["pool"]), Node("flat", _flatten(), ["act"])],
              1, ["flat"], [(1, 4)])
    x = torch.tensor([[[1.0, 3.0, 2.0, 2.0]]], dtype=torch.float64)
    rel = LRP(dtype="double").fit(g).explain(x).values[0, 0]
    y = np.tanh([2.0, 2.0])
    np.testing.assert_allclose(rel[:, 0], [y[0] / 4, 3 * y[0] / 4, 0, 0], atol=1e-12)
    np.testing.assert_allclose(rel[:, 1], [0, 0, y[1] / 2, y[1] / 2], atol=1e-12)


@pytest.mark.parametrize("layer,shape", [
    (MaxPool(2, 3, 2, 1, 1, True), (3, 8, 7)),
    (MaxPool(2, (2, 3), (2, 1), 0, (1, 2), False), (2, 5, 7)),
    (MaxPool(1, 3, 2, 1, 2, True), (3, 10)),
])
def test_maxpool_windows_brute_force(layer, shape):
    """The average-pooling view of a max pooling uses exactly the max pooling's windows."""
    from sknn_explain.propagation._ops import window_mean

    torch.manual_seed(0)
    x = torch.randn(2, *shape, dtype=torch.float64)
    out = layer(x)
    mean = window_mean(layer)(x)
    assert mean.shape == out.shape
    xs = x.numpy()
    nd = layer.spatial_dims
    for pos in np.ndindex(*out.shape[2:]):
        offsets = np.stack(np.meshgrid(*[np.arange(k) for k in layer.kernel_size],
                                       indexing="ij"), -1).reshape(-1, nd)
        idx = [pos[d] * layer.stride[d] - layer.padding[d] + offsets[:, d] * layer.dilation[d]
               for d in range(nd)]
        valid = np.all([(i >= 0) & (i < shape[1 + d]) for d, i in enumerate(idx)], axis=0)
        vals = xs[(slice(None), slice(None), *[i[valid] for i in idx])]
        np.testing.assert_allclose(out[(slice(None), slice(None), *pos)].numpy(),
                                   vals.max(-1), atol=1e-12)
        np.testing.assert_allclose(mean[(slice(None), slice(None), *pos)].numpy(),
                                   vals.sum(-1) / len(offsets), atol=1e-12)
