"""Each LRP rule's message equals the formula it documents (sknn_explain.rules), layer by layer.

The references form every contribution ``z_ij = x_i w_ij`` explicitly (Conv through
``unfold``), in double, independent of the modifiers the rules are built from.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sknn_explain.layers import Conv, Dense
from sknn_explain.propagation._ops import linear_op
from sknn_explain.rules import (
    AlphaBeta,
    Epsilon,
    EqualSplit,
    Flat,
    Gamma,
    LinearRule,
    Pass,
    Simple,
    WSquare,
    ZBox,
    ZPlus,
    tiny_eps,
)
from sknn_explain.rules.linear import PLAIN, Outputs, Share, Term
from sknn_explain.rules.modifiers import (
    KEEP,
    NEGATIVE,
    ONES,
    POSITIVE,
    SQUARE,
    Bound,
    GammaBoost,
)

TINY = tiny_eps(torch.float64)
K = 3  # outputs propagated at once


def _stab(z, eps):
    return z + eps * torch.where(z >= 0, 1.0, -1.0).to(z.dtype)


def _formula(rule, a, ones, lo, hi, w, b, r):
    """Input relevance per patch entry, ``(K, n, P, L)``, from the documented formulas.

    ``a``, ``ones``, ``lo``, ``hi``: input / ones / bound patches ``(n, P, L)`` (zero where
    the layer pads); ``w`` ``(O, P)``; ``b`` ``(O,)``; ``r`` ``(K, n, O, L)``.
    """
    eps = rule.eps(torch.float64)
    wp, wn = w.clamp(min=0), w.clamp(max=0)

    def contrib(x, weight):  # (n, O, P, L)
        return x[:, None] * weight[None, :, :, None]

    def spread(z, s):  # sum_j z_ij s_j
        return torch.einsum("nopl,knol->knpl", z, s)

    def col(t):
        return t[None, :, None]

    z = contrib(a, w)
    zj = z.sum(2) + col(b)
    if isinstance(rule, (Simple, Epsilon)):
        return spread(z, r / _stab(zj, eps))
    ap, an = a.clamp(min=0), a.clamp(max=0)
    zpos = contrib(ap, wp) + contrib(an, wn)
    zneg = contrib(ap, wn) + contrib(an, wp)
    if isinstance(rule, (ZPlus, AlphaBeta)):
        rel_pos = spread(zpos, r / _stab(zpos.sum(2) + col(b.clamp(min=0)), eps))
        if isinstance(rule, ZPlus):
            return rel_pos
        rel_neg = spread(zneg, r / _stab(zneg.sum(2) + col(b.clamp(max=0)), eps))
        return rule.alpha * rel_pos - rule.beta * rel_neg
    if isinstance(rule, Gamma):
        g = rule.gamma
        up, down = z + g * z.clamp(min=0), z + g * z.clamp(max=0)
        sp = r * (zj > 0) / _stab(up.sum(2) + col(b + g * b.clamp(min=0)), eps)
        sn = r * (zj < 0) / _stab(down.sum(2) + col(b + g * b.clamp(max=0)), eps)
        return spread(up, sp) + spread(down, sn)
    if isinstance(rule, Flat):  # R_j / (number of inputs of j), padding not counted
        n_in = ones.sum(1)[:, None]
        return spread(contrib(ones, torch.ones_like(w)), r / _stab(n_in, eps))
    if isinstance(rule, WSquare):
        w2 = contrib(ones, w * w)
        return spread(w2, r / _stab(w2.sum(2) + col(b * b), eps))
    if isinstance(rule, ZBox):
        zb = z - contrib(lo, wp) - contrib(hi, wn)
        return spread(zb, r / _stab(zb.sum(2), eps))
    raise AssertionError(rule)


RULES = [Simple(), Epsilon(0.3), ZPlus(), AlphaBeta(0.5), AlphaBeta(2.0),
         AlphaBeta(1.5, stabilizer=1e-3), Gamma(0.4), Flat(), WSquare(),
         ZBox(-2.0, 1.5)]


def _dense_case(gen):
    w = torch.randn(6, 5, generator=gen, dtype=torch.float64)
    b = torch.randn(6, generator=gen, dtype=torch.float64)
    x = torch.randn(4, 5, generator=gen, dtype=torch.float64)
    r = torch.randn(K, 4, 6, generator=gen, dtype=torch.float64)
    layer = Dense(w, b)

    def patches(t):
        return t[:, :, None]

    def back(rel):
        return rel[..., 0]

    return layer, x, r, w, b, patches, back


def _conv_case(gen):
    w = torch.randn(4, 3, 3, 3, generator=gen, dtype=torch.float64)
    b = torch.randn(4, generator=gen, dtype=torch.float64)
    x = torch.randn(2, 3, 6, 5, generator=gen, dtype=torch.float64)
    layer = Conv(w, b, stride=(2, 1), padding=(1, 1))
    out = layer(x)
    r = torch.randn(K, *out.shape, generator=gen, dtype=torch.float64)

    def patches(t):
        return F.unfold(t, (3, 3), padding=(1, 1), stride=(2, 1))

    def back(rel):  # (K, n, P, L) -> (K, n, C, H, W)
        k, n = rel.shape[:2]
        folded = F.fold(rel.reshape(k * n, *rel.shape[2:]), x.shape[2:], (3, 3),
                        padding=(1, 1), stride=(2, 1))
        return folded.reshape(k, n, *x.shape[1:])

    return layer, x, r.reshape(K, *out.shape), w.reshape(4, -1), b, patches, back


@pytest.mark.parametrize("case", [_dense_case, _conv_case], ids=["dense", "conv"])
@pytest.mark.parametrize("rule", RULES, ids=repr)
def test_rule_message_equals_its_formula(case, rule):
    gen = torch.Generator().manual_seed(7)
    layer, x, r, w, b, patches, back = case(gen)
    if isinstance(rule, ZBox):  # bounds that hold the inputs
        rule = ZBox(x.min().item() - 0.5, x.max().item() + 0.5)
    low = torch.full_like(x, rule.low) if isinstance(rule, ZBox) else torch.zeros_like(x)
    high = torch.full_like(x, rule.high) if isinstance(rule, ZBox) else torch.zeros_like(x)
    r = r.reshape(K, *layer(x).shape)
    op = linear_op(layer, x)
    expected = back(_formula(rule, patches(x), patches(torch.ones_like(x)), patches(low),
                             patches(high), w, b, r.reshape(K, x.shape[0], w.shape[0], -1)))
    got = rule.relevance(op, x, r)
    got_with_z = rule.relevance(op, x, r, layer(x))
    assert got.shape == (K, *x.shape)
    assert float(expected.abs().mean()) > 1e-3  # not trivially zero
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got_with_z, expected, rtol=1e-12, atol=1e-12)


def test_zbox_per_channel_bounds_on_conv():
    gen = torch.Generator().manual_seed(3)
    layer, x, r, w, b, patches, back = _conv_case(gen)
    low = x.amin(dim=(0, 2, 3), keepdim=True)[0] - 0.1  # (C, 1, 1)
    high = x.amax(dim=(0, 2, 3), keepdim=True)[0] + 0.1
    rule = ZBox(low.numpy(), high.numpy())
    lo, hi = low.expand(x.shape[1:]).expand_as(x), high.expand(x.shape[1:]).expand_as(x)
    expected = back(_formula(rule, patches(x), patches(torch.ones_like(x)), patches(lo),
                             patches(hi), w, b, r.reshape(K, x.shape[0], w.shape[0], -1)))
    got = rule.relevance(linear_op(layer, x), x, r)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_add_messages():
    gen = torch.Generator().manual_seed(1)
    a, c = (torch.randn(4, 5, generator=gen, dtype=torch.float64) for _ in range(2))
    r = torch.randn(K, 4, 5, generator=gen, dtype=torch.float64)
    z = a + c
    for got, summand in zip(Epsilon(0.1).split_sum([a, c], z, r), (a, c)):
        torch.testing.assert_close(got, summand * r / _stab(z, 0.1), rtol=1e-12, atol=1e-12)
    ra, rc = Simple().split_sum([a, c], z, r)
    torch.testing.assert_close(ra + rc, r * z / _stab(z, TINY), rtol=1e-12, atol=1e-12)
    assert all(torch.equal(t, r / 2) for t in EqualSplit().split_sum([a, c], z, r))
    layer = Dense(torch.eye(5, dtype=torch.float64))
    assert Pass().relevance(linear_op(layer, a), a, r) is r
    with pytest.raises(TypeError, match="does not apply to Add"):
        ZPlus().split_sum([a, c], z, r)
    with pytest.raises(TypeError, match="does not apply to linear"):
        EqualSplit().relevance(linear_op(layer, a), a, r)


def test_a_new_rule_is_one_class_of_modifiers():
    """z+ written from scratch as shares of terms equals the library's ZPlus."""

    class MyZPlus(LinearRule):
        name = "my_zplus"

        def shares(self):
            return (Share((Term(POSITIVE, POSITIVE, POSITIVE), Term(NEGATIVE, NEGATIVE))),)

    gen = torch.Generator().manual_seed(5)
    layer, x, r, *_ = _dense_case(gen)
    op = linear_op(layer, x)
    torch.testing.assert_close(MyZPlus().relevance(op, x, r), ZPlus().relevance(op, x, r),
                               rtol=0, atol=0)


def test_rules_and_modifiers_pickle_compare_and_hash():
    for rule in [*RULES, ZBox(np.zeros(3), np.ones(3)), Pass(), EqualSplit()]:
        again = pickle.loads(pickle.dumps(rule))
        assert again == rule and hash(again) == hash(rule)
        assert isinstance(rule, ZBox) or again.get_params() == rule.get_params()
        if isinstance(rule, LinearRule):
            assert again.shares() == rule.shares()
    assert Gamma(0.1) != Gamma(0.2) and hash(Gamma(0.1)) != hash(Gamma(0.2))
    mods = [KEEP, POSITIVE, NEGATIVE, SQUARE, ONES, GammaBoost(0.3, False), Bound(0.5, "low")]
    for mod in mods:
        assert pickle.loads(pickle.dumps(mod)) == mod
        assert hash(pickle.loads(pickle.dumps(mod))) == hash(mod)
    assert Bound(np.zeros(2), "low") == Bound(np.zeros(2), "low") != Bound(np.ones(2), "low")
    assert Share((PLAIN,)) != Share((PLAIN,), outputs=Outputs.POSITIVE)


def test_modifiers_do_what_they_say():
    t = torch.tensor([-2.0, 0.0, 3.0], dtype=torch.float64)
    assert KEEP(t) is t
    assert POSITIVE(t).tolist() == [0.0, 0.0, 3.0]
    assert NEGATIVE(t).tolist() == [-2.0, 0.0, 0.0]
    assert SQUARE(t).tolist() == [4.0, 0.0, 9.0]
    assert ONES(t).tolist() == [1.0, 1.0, 1.0]
    assert GammaBoost(0.5)(t).tolist() == [-2.0, 0.0, 4.5]
    assert GammaBoost(0.5, positive=False)(t).tolist() == [-3.0, 0.0, 3.0]
    assert [m.pooling_factor() for m in (KEEP, POSITIVE, NEGATIVE, SQUARE, ONES)] == [
        1.0, 1.0, 0.0, 1.0, 1.0]
    assert GammaBoost(0.5).pooling_factor() == 1.5
    assert GammaBoost(0.5, positive=False).pooling_factor() == 1.0
    x = torch.zeros(2, 3, 4, 4)
    assert Bound(np.arange(3.0).reshape(3, 1, 1))(x).shape == (1, 3, 4, 4)
    with pytest.raises(ValueError, match="do not broadcast"):
        Bound(np.zeros(2), "low")(x)


def test_lrp_with_a_rule_object_clones():
    """sklearn's clone copies rule objects (it used to call their get_params(deep=False))."""
    from sklearn.base import clone

    from sknn_explain.explainers.lrp import LRP

    lrp = LRP({"Dense": Gamma(0.1), "input": ZBox(np.zeros(5), np.ones(5))})
    assert clone(lrp).get_params()["rule_name"]["Dense"] == Gamma(0.1)
    assert clone(LRP(Epsilon(0.2))).get_params()["rule_name"] == Epsilon(0.2)
