"""DeepLift / DeepSHAP against captum, shap and a per-formula reference, and their axioms."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import torch
from _graphs import ConcatNet, ResidualNet, odd_pooling_graph
from _torch_models import assert_unchanged, cnn, cnn1d, mlp, snapshot
from sklearn.base import clone
from torch import nn

from sknn_explain.convert import Graph, Node
from sknn_explain.explainers.deeplift import DeepLift, DeepSHAP
from sknn_explain.layers import Dense, Flatten, MaxPool

captum_attr = pytest.importorskip("captum.attr")
shap = pytest.importorskip("shap")


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # captum / shap warn about hooks and grads
        yield


def captum_safe_cnn(seed=0):
    """A CNN on which captum's DeepLift is exact: no activation feeds a MaxPool directly
    (captum's hooks on adjacent non-linear modules break its own summation-to-delta)."""
    torch.manual_seed(seed)
    bn = nn.BatchNorm2d(4)
    bn.running_mean.uniform_(-0.5, 0.5)
    bn.running_var.uniform_(0.5, 2.0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), bn, nn.MaxPool2d(2),
        nn.Conv2d(4, 5, 3), nn.AvgPool2d(2), nn.Tanh(), nn.Flatten(), nn.Linear(5, 6),
    ).eval()


def _stack(fn, n_out):
    """captum / shap style per-target calls, stacked on a trailing axis (tuple inputs too)."""
    per_k = [fn(k) for k in range(n_out)]
    if isinstance(per_k[0], tuple):
        return [np.stack([p[i].detach().numpy() for p in per_k], -1) for i in range(len(per_k[0]))]
    return np.stack([p.detach().numpy() for p in per_k], -1)


def _as_list(v):
    return list(v) if isinstance(v, (list, tuple)) else [v]


CAPTUM_MODELS = {
    "mlp_relu": (lambda: mlp(n_out=4), [(5,)]),
    "mlp_tanh_bn": (lambda: mlp(act=nn.Tanh, batchnorm=True, n_out=4), [(5,)]),
    "cnn": (captum_safe_cnn, [(3, 8, 8)]),
    "residual": (ResidualNet, [(5,)]),
    "concat_2_inputs": (lambda: ConcatNet(n_out=(4,)), [(5,), (2, 6)]),
}


def _data(shapes, n, seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, *s, generator=g, dtype=torch.float64) for s in shapes]


def _inp(xs):
    return xs if len(xs) > 1 else xs[0]


@pytest.mark.parametrize("ref_kind", ["zeros", "one_row", "mean_of_rows"])
@pytest.mark.parametrize("name", list(CAPTUM_MODELS))
def test_deeplift_rescale_equals_captum(name, ref_kind):
    make, shapes = CAPTUM_MODELS[name]
    model = make().double()
    xs = _data(shapes, 5, 0)
    if ref_kind == "zeros":
        x_ref, base = None, [torch.zeros(1, *s, dtype=torch.float64) for s in shapes]
    elif ref_kind == "one_row":
        x_ref = _data(shapes, 1, 1)
        base = x_ref
    else:
        x_ref = _data(shapes, 6, 2)
        base = [r.mean(0, keepdim=True) for r in x_ref]
    res = DeepLift(dtype="double").fit(model, None if x_ref is None else _inp(x_ref)).explain(
        _inp(xs), output_idx=list(range(4)))
    dl = captum_attr.DeepLift(model)
    ref = _stack(lambda k: dl.attribute(tuple(xs) if len(xs) > 1 else xs[0],
                                        baselines=tuple(base) if len(xs) > 1 else base[0],
                                        target=k), 4)
    for ours, theirs in zip(_as_list(res.values), _as_list(ref)):
        assert ours.shape == theirs.shape
        assert np.abs(ours - theirs).mean() < 1e-10
    assert np.abs(res.decomp_sum - res.decomp_goal).max() < 1e-8


def test_captum_maxpool_after_activation_is_not_exact_ours_is_and_equals_shap():
    """Documented difference: captum's DeepLift on ReLU -> MaxPool violates its own
    summation-to-delta; ours is exact and equals shap's DeepExplainer there."""
    model = cnn(n_out=3).double()
    x, r = _data([(3, 8, 8)], 4, 0)[0], _data([(3, 8, 8)], 1, 1)[0]
    ours = DeepLift(dtype="double").fit(model, r).explain(x)
    delta = (model(x) - model(r)).detach().numpy()
    dl = captum_attr.DeepLift(model)
    theirs = _stack(lambda k: dl.attribute(x, baselines=r, target=k), 3)
    assert np.abs(theirs.reshape(4, -1, 3).sum(1) - delta).max() > 1e-3
    assert np.abs(ours.decomp_sum - delta).max() < 1e-10
    sv = np.asarray(shap.DeepExplainer(model, r).shap_values(x, check_additivity=False))
    assert np.abs(ours.values - sv).mean() < 1e-10


@pytest.mark.parametrize("name", ["mlp_relu", "cnn", "concat_2_inputs"])
def test_deepshap_equals_captum_deepliftshap(name):
    make, shapes = CAPTUM_MODELS[name]
    model = make().double()
    xs, refs = _data(shapes, 4, 0), _data(shapes, 5, 1)
    res = DeepSHAP(dtype="double", batch_size=7).fit(model, _inp(refs)).explain(
        _inp(xs), output_idx=list(range(4)))
    dls = captum_attr.DeepLiftShap(model)
    ref = _stack(lambda k: dls.attribute(tuple(xs) if len(xs) > 1 else xs[0],
                                         baselines=tuple(refs) if len(xs) > 1 else refs[0],
                                         target=k), 4)
    for ours, theirs in zip(_as_list(res.values), _as_list(ref)):
        assert np.abs(ours - theirs).mean() < 1e-10


@pytest.mark.parametrize("name", ["mlp_tanh", "cnn_relu_maxpool", "concat_2_inputs"])
def test_deepshap_equals_shap_deep_explainer(name):
    make, shapes = {
        "mlp_tanh": (lambda: mlp(act=nn.Tanh, n_out=3), [(5,)]),
        "cnn_relu_maxpool": (lambda: cnn(n_out=3), [(3, 8, 8)]),
        "concat_2_inputs": (lambda: ConcatNet(n_out=(3,)), [(5,), (2, 6)]),
    }[name]
    model = make().double()
    xs, refs = _data(shapes, 3, 0), _data(shapes, 6, 1)
    res = DeepSHAP(dtype="double").fit(model, _inp(refs)).explain(_inp(xs))
    explainer = shap.DeepExplainer(model, refs if len(refs) > 1 else refs[0])
    sv = explainer.shap_values(xs if len(xs) > 1 else xs[0], check_additivity=False)
    sv = sv if len(xs) > 1 else [sv]
    for ours, theirs in zip(_as_list(res.values), sv):
        assert np.abs(ours - np.asarray(theirs)).mean() < 1e-10
    # shap's expected value is the goal's reference: mean f(X_ref)
    np.testing.assert_allclose(res.predictions - res.decomp_goal,
                               np.broadcast_to(explainer.expected_value, (3, 3)), atol=1e-10)


SUM_MODELS = {
    "mlp_relu": (lambda: mlp(), [(5,)]),
    "mlp_tanh_bn": (lambda: mlp(act=nn.Tanh, batchnorm=True), [(5,)]),
    "mlp_softplus": (lambda: mlp(act=nn.Softplus), [(5,)]),
    "cnn_max": (lambda: cnn(), [(3, 8, 8)]),
    "cnn_avg_bn": (lambda: cnn(pool="avg", batchnorm=True), [(3, 8, 8)]),
    "cnn1d": (cnn1d, [(2, 13)]),
    "residual_add": (ResidualNet, [(5,)]),
    "concat_2_outputs": (ConcatNet, [(5,), (2, 6)]),
    "padding_odd_pooling": (odd_pooling_graph, [(2, 6, 5), (2, 9)]),
}


def _check_sum(res, tol=1e-8):
    for s, g in zip(_as_list(res.decomp_sum), _as_list(res.decomp_goal)):
        assert np.abs(s - g).max() < tol
        assert np.abs(g).mean() > 1e-4


@pytest.mark.parametrize("winner_takes_all", [True, False])
@pytest.mark.parametrize("rule", ["rescale", "reveal_cancel"])
@pytest.mark.parametrize("name", list(SUM_MODELS))
def test_deeplift_summation_to_delta(name, rule, winner_takes_all):
    make, shapes = SUM_MODELS[name]
    model = make().double()
    xs, ref = _data(shapes, 5, 3), _data(shapes, 1, 4)
    two_heads = name == "concat_2_outputs"
    res = DeepLift(rule, winner_takes_all, dtype="double").fit(model, _inp(ref)).explain(
        _inp(xs), output_idx=[[0, 1, 2], [0, 1]] if two_heads else None)
    _check_sum(res)
    expected = [(o - r).detach().numpy() for o, r in
                zip(_as_list(model(*xs)), _as_list(model(*ref)))]
    for g, e in zip(_as_list(res.decomp_goal), expected):
        np.testing.assert_allclose(g, e[:, :g.shape[1]], atol=1e-12)


@pytest.mark.parametrize("rule", ["rescale", "reveal_cancel"])
@pytest.mark.parametrize("name", ["mlp_relu", "cnn_max", "residual_add", "concat_2_outputs"])
def test_deepshap_summation_to_delta(name, rule):
    make, shapes = SUM_MODELS[name]
    model = make().double()
    xs, refs = _data(shapes, 4, 5), _data(shapes, 6, 6)
    res = DeepSHAP(rule_name=rule, dtype="double", batch_size=5).fit(model, _inp(refs)).explain(
        _inp(xs), output_idx=None if len(shapes) == 1 else [[0, 2], [1]])
    _check_sum(res)


def _np_act(name):
    return {"relu": lambda t: np.maximum(t, 0), "tanh": np.tanh}[name]


def _np_deriv(name):
    return {"relu": lambda t: (t > 0).astype(float), "tanh": lambda t: 1 - np.tanh(t) ** 2}[name]


def numpy_deeplift_mlp(model, x, r, rule, act):
    """Slow reference from Shrikumar et al. (2017) for Linear -> act -> ... -> Linear.

    The paper leaves 0/0 undefined; like the library, a vanishing difference (Rescale:
    Delta z = 0; RevealCancel: Delta+ = 0 or Delta- = 0) takes the limit of the ratio:
    f'((z + z_ref) / 2) resp. (f'(z_ref) + f'(z)) / 2.
    """
    f, df = _np_act(act), _np_deriv(act)
    lins = [m for m in model if isinstance(m, nn.Linear)]
    ws = [m.weight.detach().numpy() for m in lins]
    bs = [m.bias.detach().numpy() for m in lins]
    ax, ar = [x], [r]
    for w, b in zip(ws[:-1], bs[:-1]):
        ax.append(f(ax[-1] @ w.T + b))
        ar.append(f(ar[-1] @ w.T + b))
    n, n_out = x.shape[0], ws[-1].shape[0]
    result = np.zeros((n, x.shape[1], n_out))
    for s in range(n):
        for k in range(n_out):
            m = ws[-1][k].copy()  # multipliers w.r.t. the last hidden activation
            for li in range(len(ws) - 2, -1, -1):
                w, b = ws[li], bs[li]
                a, a0 = ax[li][s], ar[li][0]
                z, z0 = a @ w.T + b, a0 @ w.T + b
                terms = w * (a - a0)[None, :]  # (out, in): contribution terms of Delta z
                if rule == "rescale":
                    safe = np.where(np.abs(z - z0) > 1e-10, z - z0, 1.0)
                    mult = np.where(np.abs(z - z0) > 1e-10, (f(z) - f(z0)) / safe,
                                    df((z + z0) / 2))
                    m = (m * mult) @ w
                    continue
                dp = np.where(terms > 0, terms, 0).sum(1)
                dn = np.where(terms < 0, terms, 0).sum(1)
                yp = 0.5 * (f(z0 + dp) - f(z0)) + 0.5 * (f(z) - f(z0 + dn))
                yn = 0.5 * (f(z0 + dn) - f(z0)) + 0.5 * (f(z) - f(z0 + dp))
                limit = 0.5 * (df(z0) + df(z))
                mp = np.divide(yp, dp, out=limit.copy(), where=dp != 0) * m
                mn = np.divide(yn, dn, out=limit.copy(), where=dn != 0) * m
                sel = np.where(terms > 0, mp[:, None],
                               np.where(terms < 0, mn[:, None], 0.5 * (mp + mn)[:, None]))
                m = (sel * w).sum(0)
            result[s, :, k] = m * (x[s] - r[0])
    return result


@pytest.mark.parametrize("act,nn_act", [("relu", nn.ReLU), ("tanh", nn.Tanh)])
@pytest.mark.parametrize("rule", ["rescale", "reveal_cancel"])
def test_deeplift_equals_formula_reference(rule, act, nn_act):
    model = mlp(act=nn_act, hidden=(7, 6), n_out=3, seed=1).double()
    x, r = _data([(5,)], 4, 7)[0], _data([(5,)], 1, 8)[0]
    ours = DeepLift(rule, dtype="double").fit(model, r).explain(x).values
    ref = numpy_deeplift_mlp(model, x.numpy(), r.numpy(), rule, act)
    assert np.abs(ours - ref).mean() < 1e-10
    if rule == "reveal_cancel":
        rescale = DeepLift(dtype="double").fit(model, r).explain(x).values
        assert np.abs(ours - rescale).mean() > 1e-4  # the rules really differ


def test_maxpool_rules_by_hand():
    # one window of two: x = (3, 1), x_ref = (0, 2): max 3 vs 2, Delta y = 1
    g = Graph([Node("pool", MaxPool(1, 2), ["input_0"]), Node("flat", Flatten(), ["pool"]),
               Node("out", Dense(torch.ones(1, 1, dtype=torch.float64)), ["flat"])],
              1, ["out"], [(1, 2)])
    x = torch.tensor([[[3.0, 1.0]]], dtype=torch.float64)
    r = torch.tensor([[[0.0, 2.0]]], dtype=torch.float64)
    wta = DeepLift(dtype="double").fit(g, r).explain(x).values[0, 0, :, 0]
    np.testing.assert_allclose(wta, [1.0, 0.0])  # captum: all of Delta y to the x winner
    x2 = torch.tensor([[[1.0, 0.5]]], dtype=torch.float64)  # max 1 < ref max 2: Delta y = -1
    wta2 = DeepLift(dtype="double").fit(g, r).explain(x2).values[0, 0, :, 0]
    np.testing.assert_allclose(wta2, [0.0, -1.0])  # the drop goes to the reference's winner
    avg = DeepLift(winner_takes_all=False, dtype="double").fit(g, r).explain(x).values
    # innsight: m = Delta y / mean(Delta x) = 1 / 1, spread as an average: m_i = 1/2
    np.testing.assert_allclose(avg[0, 0, :, 0], [0.5 * 3.0, 0.5 * -1.0])


def test_x_ref_defaults_and_mean():
    model = mlp(act=nn.Tanh, n_out=3).double()
    x = _data([(5,)], 4, 0)[0]
    zero = DeepLift(dtype="double").fit(model).explain(x).values
    explicit = DeepLift(dtype="double").fit(model, torch.zeros(1, 5)).explain(x).values
    np.testing.assert_allclose(zero, explicit, atol=1e-14)
    rows = _data([(5,)], 7, 1)[0]
    several = DeepLift(dtype="double").fit(model, rows).explain(x)
    mean = DeepLift(dtype="double").fit(model, rows.mean(0, keepdim=True)).explain(x)
    np.testing.assert_allclose(several.values, mean.values, atol=1e-14)


def test_deepshap_limit_ref_random_state_and_goal():
    model = mlp(n_out=3).double()
    x, refs = _data([(5,)], 3, 0)[0], _data([(5,)], 30, 1)[0]
    a = DeepSHAP(limit_ref=8, random_state=4, dtype="double").fit(model, refs)
    b = DeepSHAP(limit_ref=8, random_state=4, dtype="double", batch_size=5).fit(model, refs)
    c = DeepSHAP(limit_ref=8, random_state=5, dtype="double").fit(model, refs)
    np.testing.assert_array_equal(a.ref_indices_, b.ref_indices_)
    assert len(a.ref_indices_) == 8 and len(set(a.ref_indices_)) == 8
    assert not np.array_equal(a.ref_indices_, c.ref_indices_)
    ra, rb = a.explain(x), b.explain(x)
    np.testing.assert_allclose(ra.values, rb.values, atol=1e-12)  # batch_size does not matter
    used = refs[torch.as_tensor(a.ref_indices_)]
    goal = (model(x) - model(used).mean(0)).detach().numpy()
    np.testing.assert_allclose(ra.decomp_goal, goal, atol=1e-12)
    # the average of DeepLift against each kept reference
    per_ref = np.mean([DeepLift(dtype="double").fit(model, u[None]).explain(x).values
                       for u in used], axis=0)
    np.testing.assert_allclose(ra.values, per_ref, atol=1e-12)
    every = DeepSHAP(limit_ref=100, dtype="double").fit(model, refs)
    np.testing.assert_array_equal(every.ref_indices_, np.arange(30))


def test_dtype_batch_size_last_activation():
    model = nn.Sequential(*mlp(act=nn.Tanh, n_out=4), nn.Softmax(dim=-1)).double()
    x, r = _data([(5,)], 9, 0)[0], _data([(5,)], 1, 1)[0]
    full = DeepLift(dtype="double").fit(model, r).explain(x)
    chunked = DeepLift(dtype="double", batch_size=2).fit(model, r).explain(x)
    np.testing.assert_allclose(full.values, chunked.values, atol=1e-13)
    single = DeepLift().fit(model, r.float()).explain(x.float())
    assert single.values.dtype == np.float32
    assert np.abs(single.values - full.values).max() < 1e-4
    assert np.abs(single.decomp_sum - single.decomp_goal).max() < 1e-5
    # the softmax output (handled position-wise) still sums to f(x) - f(x_ref)
    soft = DeepLift(ignore_last_act=False, dtype="double").fit(model, r).explain(x)
    np.testing.assert_allclose(soft.decomp_goal, (model(x) - model(r)).detach().numpy(),
                               atol=1e-12)
    _check_sum(soft)
    soft_rc = DeepSHAP(rule_name="reveal_cancel", ignore_last_act=False,
                       dtype="double").fit(model, _data([(5,)], 4, 2)[0]).explain(x)
    _check_sum(soft_rc)


def test_model_untouched_pickle_clone():
    model = cnn(n_out=3)
    before = snapshot(model)
    x, refs = torch.randn(2, 3, 8, 8), torch.randn(4, 3, 8, 8)
    ds = DeepSHAP(limit_ref=3, random_state=0).fit(model, refs)
    res = ds.explain(x)
    dl = DeepLift("reveal_cancel").fit(model)
    dl.explain(x)
    assert_unchanged(model, before)
    again = pickle.loads(pickle.dumps(ds)).explain(x)
    np.testing.assert_array_equal(res.values, again.values)
    assert clone(ds).get_params() == ds.get_params()


@pytest.mark.parametrize("make,err,match", [
    (lambda: DeepLift(rule_name="nope"), ValueError, "'rule_name' parameter of DeepLift must be"),
    (lambda: DeepLift(winner_takes_all=1), TypeError, "'winner_takes_all' parameter of DeepLift"),
    (lambda: DeepSHAP(limit_ref=0), ValueError, "'limit_ref' parameter of DeepSHAP must be"),
    (lambda: DeepSHAP(limit_ref=2.5), ValueError, "'limit_ref' parameter of DeepSHAP must be"),
])
def test_bad_parameters(make, err, match):
    with pytest.raises(err, match=match):
        make().fit(mlp(), torch.randn(3, 5))


def test_deepshap_needs_reference_and_shapes_must_match():
    with pytest.raises(ValueError, match="needs reference data"):
        DeepSHAP().fit(mlp())
    dl = DeepLift().fit(mlp(), torch.randn(1, 5))
    with pytest.raises(ValueError):
        dl.explain(torch.randn(2, 4))
