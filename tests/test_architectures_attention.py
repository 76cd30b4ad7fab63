"""Products of two activations, softmax, attention and Embedding in the layer graph
(issue #12, part 2): exact conversion, DeepLift summation-to-delta, AttnLRP conservation
and a slow reference of AttnLRP's formulas, captum's LayerIntegratedGradients on
embeddings, clear refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import sknn_explain as skx
from sknn_explain.convert import UnsupportedLayerError, convert
from sknn_explain.layers import Embedding, MaskedSoftmax, MatMul, Multiply

D = torch.float64


def to_graph(model, x):
    """The converted graph (``convert`` verifies it against the module, 1e-10 in double),
    and its largest difference from the module on ``x``."""
    model = model.double().eval()
    graph = convert(model, tuple(x.shape[1:]), dtype="double", X_ref=x)
    with torch.no_grad():
        diff = float((graph(x.to(D))[0] - model(x)).abs().max())
    return graph, diff


# ------------------------------------------------------------------ models
class Gated(nn.Module):
    """A gated linear unit: ``(W1 x) * sigmoid(W2 x)``, then a linear read-out."""

    def __init__(self, bias: bool = True) -> None:
        super().__init__()
        self.a = nn.Linear(5, 6, bias=bias)
        self.b = nn.Linear(5, 6, bias=bias)
        self.out = nn.Linear(6, 3, bias=bias)

    def forward(self, x):
        return self.out(self.a(x) * torch.sigmoid(self.b(x)))


class SDPABlock(nn.Module):
    """q/k/v projections, SDPA (optionally causal / masked), output projection, mean over
    tokens (adaptive average pooling over (tokens, features) to (1, features))."""

    def __init__(self, bias: bool = True, causal: bool = False, mask: bool = False,
                 tokens: int = 4, dim: int = 6) -> None:
        super().__init__()
        self.q = nn.Linear(dim, dim, bias=bias)
        self.k = nn.Linear(dim, dim, bias=bias)
        self.v = nn.Linear(dim, dim, bias=bias)
        self.o = nn.Linear(dim, dim, bias=bias)
        self.head = nn.Linear(dim, 2, bias=bias)
        self.causal = causal
        m = torch.ones(tokens, tokens, dtype=torch.bool)
        m[:, -1] = False  # the last token is never attended to
        self.register_buffer("mask", m if mask else None)

    def forward(self, x):
        h = F.scaled_dot_product_attention(self.q(x), self.k(x), self.v(x),
                                           attn_mask=self.mask, is_causal=self.causal)
        h = self.o(h)
        pooled = F.adaptive_avg_pool2d(h.unsqueeze(1), (1, h.shape[-1])).flatten(1)
        return self.head(pooled)


class MatmulBlock(nn.Module):
    """Attention written with ``@``, ``transpose``-free einsum and ``torch.softmax``."""

    def __init__(self, bias: bool = False, dim: int = 6) -> None:
        super().__init__()
        self.q = nn.Linear(dim, dim, bias=bias)
        self.k = nn.Linear(dim, dim, bias=bias)
        self.v = nn.Linear(dim, dim, bias=bias)
        self.head = nn.Linear(dim * 4, 2, bias=bias)

    def forward(self, x):
        scores = torch.einsum("nqd,nkd->nqk", self.q(x), self.k(x)) / math.sqrt(x.shape[-1])
        ctx = torch.softmax(scores, dim=-1) @ self.v(x)
        return self.head(ctx.flatten(1))


class MHABlock(nn.Module):
    def __init__(self, need_weights: bool = False, attn_mask: bool = False,
                 padding: bool = False, bias: bool = True, tokens: int = 4) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True, bias=bias)
        self.head = nn.Linear(8 * tokens, 3, bias=bias)
        self.need_weights = need_weights
        causal = torch.ones(tokens, tokens, dtype=torch.bool).triu(1)  # True: masked
        self.register_buffer("attn_mask", causal if attn_mask else None)
        kpm = torch.zeros(1, tokens, dtype=torch.bool)
        kpm[0, -1] = True
        self.register_buffer("kpm", kpm if padding else None)

    def forward(self, x):
        kpm = None if self.kpm is None else self.kpm.repeat(x.shape[0], 1)
        h, _ = self.attn(x, x, x, key_padding_mask=kpm, need_weights=self.need_weights,
                         attn_mask=self.attn_mask)
        return self.head(h.flatten(1))


class TextClassifier(nn.Module):
    """Embedding + multi-head self-attention + mean pooling over tokens + linear head."""

    def __init__(self, vocab: int = 11, dim: int = 8, tokens: int = 5) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, dim, padding_idx=0)
        self.attn = nn.MultiheadAttention(dim, 2, batch_first=True)
        self.head = nn.Linear(dim, 3)

    def forward(self, ids):
        e = self.emb(ids)
        h, _ = self.attn(e, e, e, need_weights=False)
        h = h + e
        pooled = F.adaptive_avg_pool2d(h.unsqueeze(1), (1, h.shape[-1])).flatten(1)
        return self.head(pooled)


def make_x(n=5, tokens=4, dim=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, tokens, dim, generator=g, dtype=D)


def make_ids(n=6, tokens=5, vocab=11, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, vocab, (n, tokens), generator=g)


def explain(method, model, x, x_ref=None, **kw):
    return method(dtype="double", **kw).fit(model.double().eval(), x_ref).explain(x)


def total(res):
    """Sum of the attributions over the features, per sample and output: (n, K)."""
    v = res.values
    return v.reshape(v.shape[0], -1, v.shape[-1]).sum(1)


# ------------------------------------------------------------------ conversion
CASES = {
    "gated": (lambda: Gated(), lambda: torch.randn(6, 5, dtype=D)),
    "sdpa": (lambda: SDPABlock(), lambda: make_x()),
    "sdpa_causal": (lambda: SDPABlock(causal=True), lambda: make_x()),
    "sdpa_bool_mask": (lambda: SDPABlock(mask=True), lambda: make_x()),
    "matmul_einsum": (lambda: MatmulBlock(bias=True), lambda: make_x()),
    "mha": (lambda: MHABlock(), lambda: make_x(dim=8)),
    "mha_weights_masks": (lambda: MHABlock(need_weights=True, attn_mask=True, padding=True),
                          lambda: make_x(dim=8)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_conversion_is_exact(case):
    torch.manual_seed(0)
    model, x = CASES[case][0](), CASES[case][1]()
    graph, diff = to_graph(model, x)
    assert diff < 1e-10
    kinds = {type(n.layer) for n in graph.nodes}
    assert kinds & {Multiply, MatMul}
    assert (MaskedSoftmax in kinds) == ("mask" in case or "causal" in case)


@pytest.mark.parametrize("case", sorted(CASES))
def test_deeplift_sums_to_delta(case):
    torch.manual_seed(0)
    model, x = CASES[case][0](), CASES[case][1]()
    ref = 0.3 * torch.randn_like(x[:1])
    res = explain(skx.DeepLift, model, x, ref)
    np.testing.assert_allclose(total(res), res.decomp_goal, atol=1e-8)
    with torch.no_grad():
        goal = (model(x) - model(ref)).numpy()
    np.testing.assert_allclose(res.decomp_goal, goal, atol=1e-10)


def test_deepshap_sums_to_delta_on_attention():
    torch.manual_seed(0)
    model, x = MHABlock(attn_mask=True), make_x(dim=8)
    res = explain(skx.DeepSHAP, model, x[:2], make_x(n=4, dim=8, seed=3), random_state=0)
    np.testing.assert_allclose(total(res), res.decomp_goal, atol=1e-8)


# ------------------------------------------------------------------ LRP
@pytest.mark.parametrize("case", ["gated", "linear_attention"])
def test_lrp_conserves_on_bias_free_products(case):
    torch.manual_seed(0)
    if case == "gated":
        model, x = Gated(bias=False), torch.randn(6, 5, dtype=D)
    else:  # attention scores without softmax: only bilinear products and linear layers
        model, x = LinearAttention(), make_x()
    res = explain(skx.LRP, model, x, rule_name="simple")
    with torch.no_grad():
        out = model.double()(x).numpy()
    np.testing.assert_allclose(total(res), out, atol=1e-8)


class LinearAttention(nn.Module):
    def __init__(self, dim: int = 6) -> None:
        super().__init__()
        self.q, self.k, self.v = (nn.Linear(dim, dim, bias=False) for _ in range(3))
        self.head = nn.Linear(dim * 4, 2, bias=False)

    def forward(self, x):
        scores = torch.einsum("nqd,nkd->nqk", self.q(x), self.k(x))
        ctx = torch.bmm(scores, self.v(x))
        return self.head(ctx.flatten(1))


def _attnlrp_reference(model: MatmulBlock, x: torch.Tensor, k: int) -> torch.Tensor:
    """AttnLRP's formulas written out for the bias-free MatmulBlock (one sample loop):
    epsilon rule on the linear layers (tiny eps), matmul: epsilon + uniform (Prop. 3.3),
    softmax: ``R_x = x (R_s - s sum R_s)`` (Prop. 3.1)."""
    eps = 1e-15
    out = []
    for xi in x.to(D):
        q, kk, v = model.q(xi), model.k(xi), model.v(xi)
        d = xi.shape[-1]
        scores = q @ kk.T / math.sqrt(d)
        s = torch.softmax(scores, -1)
        ctx = s @ v
        y = model.head(ctx.flatten())
        r_y = torch.zeros_like(y)
        r_y[k] = y[k]

        def stab(z):
            return z + eps * torch.where(z >= 0, 1.0, -1.0)

        def linear(w, inp, r, z):  # epsilon rule of z = inp @ w.T
            return inp * ((r / stab(z)) @ w)

        r_ctx = linear(model.head.weight, ctx.flatten(), r_y, y).reshape(ctx.shape)
        g = r_ctx / stab(ctx)
        r_s = 0.5 * s * (g @ v.T)
        r_v = 0.5 * v * (s.T @ g)
        r_scores = scores * (r_s - s * r_s.sum(-1, keepdim=True))
        g2 = r_scores / stab(scores)
        r_q = 0.5 * q * (g2 @ kk) / math.sqrt(d)
        r_k = 0.5 * kk * (g2.T @ q) / math.sqrt(d)
        r_x = sum(linear(lin.weight, xi, r, lin(xi))
                  for lin, r in ((model.q, r_q), (model.k, r_k), (model.v, r_v)))
        out.append(r_x)
    return torch.stack(out)


def test_lrp_equals_attnlrp_reference():
    torch.manual_seed(0)
    model, x = MatmulBlock(bias=False).double().eval(), make_x(n=3)
    res = explain(skx.LRP, model, x, rule_name="simple")
    with torch.no_grad():
        for k in range(2):
            ref = _attnlrp_reference(model, x, k)
            np.testing.assert_allclose(res.values[..., k], ref.numpy(), atol=1e-10)


# ------------------------------------------------------------------ embeddings end to end
def test_text_classifier_end_to_end():
    from captum.attr import LayerIntegratedGradients

    torch.manual_seed(0)
    model = TextClassifier().double().eval()
    ids = make_ids()
    pad = torch.zeros(1, ids.shape[1], dtype=torch.long)  # baseline: the padding index
    graph, diff = to_graph(model, ids)
    assert diff < 1e-10 and isinstance(graph.nodes[0].layer, Embedding)
    ig = explain(skx.IntegratedGradients, model, ids, pad, n=16)
    for k in range(3):
        ref = LayerIntegratedGradients(model, model.emb).attribute(
            ids, baselines=pad, target=k, n_steps=16, method="riemann_right")
        np.testing.assert_allclose(ig.values[..., k], ref.sum(-1).detach().numpy(), atol=1e-8)
    dl = explain(skx.DeepLift, model, ids, pad)
    assert dl.values.shape == (6, 5, 3)
    np.testing.assert_allclose(total(dl), dl.decomp_goal, atol=1e-8)
    lrp = explain(skx.LRP, model, ids, rule_name="epsilon")
    assert lrp.values.shape == (6, 5, 3) and np.isfinite(lrp.values).all()


def test_lrp_on_embedding_sums_the_embedding_relevance():
    class EmbLinear(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(7, 3)
            self.out = nn.Linear(3 * 4, 2, bias=False)

        def forward(self, ids):
            return self.out(self.emb(ids).flatten(1))

    torch.manual_seed(0)
    model, ids = EmbLinear().double().eval(), make_ids(tokens=4, vocab=7)
    res = explain(skx.LRP, model, ids, rule_name="simple")
    with torch.no_grad():
        e = model.emb(ids).flatten(1)
        expected = (e[:, :, None] * model.out.weight.T[None]).reshape(6, 4, 3, 2).sum(2)
    np.testing.assert_allclose(res.values, expected.numpy(), atol=1e-10)


# ------------------------------------------------------------------ bad input, refusals
def test_embedding_ids_are_validated():
    layer = Embedding(torch.randn(5, 2, dtype=D), "nn.Embedding 'emb'")
    with pytest.raises(ValueError, match="out of range.*5 embeddings"):
        layer(torch.tensor([[1.0, 5.0]], dtype=D))
    with pytest.raises(ValueError, match="integer ids, got 1.5"):
        layer(torch.tensor([[1.5]], dtype=D))
    with pytest.raises(ValueError, match="dtype torch.bool"):
        layer(torch.tensor([[True]]))
    with pytest.raises(TypeError, match="gradients with respect to ids"):
        layer(torch.tensor([[1.0]], dtype=D, requires_grad=True))


def test_deeplift_refuses_a_mean_of_several_id_references():
    model, ids = TextClassifier(), make_ids()
    with pytest.raises(ValueError, match="one row of baseline ids"):
        explain(skx.DeepLift, model, ids, torch.tensor([[1, 2, 3, 4, 5], [2, 2, 2, 2, 2]]))


def test_deeplift_requires_an_explicit_token_baseline():
    with pytest.raises(ValueError, match="baseline"):
        explain(skx.DeepLift, TextClassifier(), make_ids())


def test_connection_weights_refuses_products():
    with pytest.raises(TypeError, match="not defined for Multiply"):
        skx.ConnectionWeights(dtype="double").fit(Gated().double()).explain(
            torch.randn(2, 5, dtype=D))


@pytest.mark.parametrize("make, match", [
    (lambda: nn.MultiheadAttention(4, 2), "batch_first=False"),
])
def test_unsupported_attention_is_refused_clearly(make, match):
    class Wrap(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = make()

        def forward(self, x):
            return self.attn(x, x, x)[0].flatten(1)

    with pytest.raises(UnsupportedLayerError, match=match):
        convert(Wrap().double(), (3, 4), dtype="double")


def test_input_dependent_masks_are_refused():
    class Padded(nn.Module):
        def __init__(self):
            super().__init__()
            self.q = nn.Linear(4, 4)

        def forward(self, x):
            mask = self.q(x).sum(-1, keepdim=True) > 0
            return F.scaled_dot_product_attention(x, x, x, attn_mask=mask).flatten(1)

    with pytest.raises(UnsupportedLayerError):
        convert(Padded().double(), (3, 4), dtype="double")


def test_model_is_not_mutated():
    model = TextClassifier().double()
    model.train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    skx.LRP(dtype="double").fit(model).explain(make_ids())
    assert model.training
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_ft_transformer_style_model():
    class FTTransformer(nn.Module):
        def __init__(self, n_features=4, dim=8):
            super().__init__()
            self.tok = nn.Parameter(torch.randn(n_features, dim))
            self.cls = nn.Parameter(torch.randn(1, 1, dim))
            self.blocks = nn.ModuleList(
                nn.TransformerEncoderLayer(dim, 2, 16, dropout=0.0, batch_first=True)
                for _ in range(2))
            self.head = nn.Linear(dim, 2)

        def forward(self, x):
            t = x.unsqueeze(-1) * self.tok
            t = torch.cat([self.cls.expand(x.shape[0], -1, -1), t], 1)
            for b in self.blocks:
                t = b(t)
            return self.head(t[:, 0])

    torch.manual_seed(0)
    model, x = FTTransformer().double().eval(), torch.randn(5, 4, dtype=D)
    ref = torch.zeros(1, 4, dtype=D)
    res = explain(skx.DeepLift, model, x, ref)
    np.testing.assert_allclose(total(res), res.decomp_goal, atol=1e-8)
    lrp = explain(skx.LRP, model, x, rule_name="simple")
    assert np.isfinite(lrp.values).all()
    # more (LRP conservation, IG vs captum, DeepSHAP): tests/test_architectures_transformer.py


# ------------------------------------------------------------------ padding masks from ids
PAD = 0


class PaddedText(nn.Module):
    """Embedding, attention with ``key_padding_mask = ids == PAD`` (or, with ``row``, a
    constant mask: the reference model), mean pooling, head."""

    def __init__(self, kind="mha", bias=True, batch_first=True, row=None):
        super().__init__()
        self.kind, self.batch_first = kind, batch_first
        self.emb = nn.Embedding(11, 8, padding_idx=PAD)
        if kind == "mha":
            self.m = nn.MultiheadAttention(8, 2, bias=bias, batch_first=batch_first)
        else:
            layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, bias=bias,
                                               batch_first=batch_first)
            self.m = layer if kind == "layer" else nn.TransformerEncoder(
                layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(8, 3, bias=bias)
        self.register_buffer("row", row)

    def forward(self, ids):
        if self.row is None:
            mask = ids == PAD
        else:  # the constant row for every sample (arange: a shape-only constant)
            mask = self.row & (torch.arange(ids.shape[0], device=ids.device)[:, None] >= 0)
        e = self.emb(ids)
        if not self.batch_first:
            e = e.transpose(0, 1)
        if self.kind == "mha":
            h = self.m(e, e, e, key_padding_mask=mask, need_weights=False)[0]
        else:
            h = self.m(e, src_key_padding_mask=mask)
        if not self.batch_first:
            h = h.transpose(0, 1)
        return self.head(h.mean(1))


def padded_ids():
    ids = make_ids(6, 5, seed=3)
    ids[0, 3:] = PAD
    ids[1, 4] = PAD
    ids[2, 1] = PAD
    return ids


def _constant_mask_twin(model, row_ids):
    twin = PaddedText(model.kind, model.head.bias is not None, model.batch_first,
                      row=(row_ids == PAD)).double().eval()
    twin.load_state_dict(model.state_dict(), strict=False)
    return twin


@pytest.mark.parametrize("kind", ["mha", "layer", "stack"])
@pytest.mark.parametrize("batch_first", [True, False])
def test_a_padding_mask_from_the_ids_converts_exactly(kind, batch_first):
    torch.manual_seed(0)
    model, ids = PaddedText(kind, batch_first=batch_first).double().eval(), padded_ids()
    graph, diff = to_graph(model, ids)
    assert diff < 1e-10
    from sknn_explain.layers import IdEqual, PaddedSoftmax
    assert any(isinstance(n.layer, IdEqual) for n in graph.nodes)
    assert any(isinstance(n.layer, PaddedSoftmax) for n in graph.nodes)


@pytest.mark.parametrize("kind", ["mha", "stack"])
def test_lrp_with_a_padding_mask_equals_the_constant_mask_model_per_row(kind):
    """Row by row, the per-sample mask gives what the (already verified) constant-mask
    conversion gives; CP-LRP conserves on the bias-free model."""
    torch.manual_seed(0)
    model, ids = PaddedText(kind, bias=False).double().eval(), padded_ids()
    for rules in ("epsilon", {"Softmax": "cp"}):
        res = explain(skx.LRP, model, ids, rule_name=rules)
        for i in range(3):
            twin = _constant_mask_twin(model, ids[i:i + 1])
            one = explain(skx.LRP, twin, ids[i:i + 1], rule_name=rules)
            np.testing.assert_allclose(res.values[i:i + 1], one.values, atol=1e-12)
    with torch.no_grad():
        np.testing.assert_allclose(total(res), model(ids).numpy(), atol=1e-8)


def test_deeplift_with_a_padding_mask_needs_the_same_padding_in_the_reference():
    torch.manual_seed(0)
    model = PaddedText("layer").double().eval()
    ids = make_ids(6, 5, seed=3)
    ids[:, 3:] = PAD                                   # the same padding in every row
    ref = torch.where(ids[:1] == PAD, PAD, 1)          # neutral id 1 where not padding
    res = explain(skx.DeepLift, model, ids, ref)
    np.testing.assert_allclose(total(res), res.decomp_goal, atol=1e-8)
    twin = _constant_mask_twin(model, ids[:1])
    np.testing.assert_allclose(res.values, explain(skx.DeepLift, twin, ids, ref).values,
                               atol=1e-10)
    shifted = torch.where(torch.arange(5) == 2, PAD, torch.ones(1, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="reference must pad the same positions"):
        explain(skx.DeepLift, model, ids, shifted)
    with pytest.raises(ValueError, match="returns NaN or inf on the example inputs"):
        explain(skx.DeepLift, model, ids, torch.zeros(1, 5, dtype=torch.long))


def test_other_uses_of_masks_from_the_input_are_refused():
    class PoolWithMask(PaddedText):
        def forward(self, ids):
            mask = ids == PAD
            e = self.emb(ids)
            h = self.m(e, e, e, key_padding_mask=mask, need_weights=False)[0]
            return self.head((h * mask.unsqueeze(-1)).sum(1))

    with pytest.raises(UnsupportedLayerError, match="only as the key_padding_mask"):
        convert(PoolWithMask().double(), (5,), dtype="double", X_ref=padded_ids())

    class FloatCompare(nn.Module):
        def forward(self, x):
            return F.scaled_dot_product_attention(x, x, x, attn_mask=x[..., :3] == 0).flatten(1)

    with pytest.raises(UnsupportedLayerError, match="integer ids"):
        convert(FloatCompare().double(), (3, 4), dtype="double", X_ref=make_x(3, 3, 4))

    class AttnMaskFromIds(PaddedText):
        def forward(self, ids):
            e = self.emb(ids)
            mask = (ids == PAD).unsqueeze(1)  # (N, 1, S)
            return self.head(F.scaled_dot_product_attention(e, e, e, attn_mask=mask).mean(1))

    with pytest.raises(UnsupportedLayerError, match="padding mask computed from the ids"):
        convert(AttnMaskFromIds().double(), (5,), dtype="double", X_ref=padded_ids())


# ---------------------------------------- gradient family on ids-derived padding masks
def _not_all_padding_reference(ids):
    """A reference of neutral ids (5) that keeps each row's padding: no row is all padding."""
    return torch.where(ids == PAD, ids, torch.full_like(ids, 5))


def test_integrated_gradients_keeps_the_ids_and_their_mask_along_the_path():
    # non-regression: IG interpolated the id input (rounded) along with the embedding
    # outputs, so the padding mask along the path was not the sample's (1e-2 off captum)
    from captum.attr import LayerIntegratedGradients

    torch.manual_seed(0)
    model, ids = PaddedText("mha").double().eval(), padded_ids()
    base = torch.full((1, ids.shape[1]), 5, dtype=torch.long)  # no padding in the reference
    ig = explain(skx.IntegratedGradients, model, ids, base, n=16)
    for k in range(3):
        ref = LayerIntegratedGradients(model, model.emb).attribute(
            ids, baselines=base.expand_as(ids), target=k, n_steps=16, method="riemann_right")
        np.testing.assert_allclose(ig.values[..., k], ref.sum(-1).detach().numpy(), atol=1e-10)
    # the goal is f(x) - g(reference embeddings, the sample's own ids): completeness up to
    # the Riemann error, and exactly captum's convergence target
    with torch.no_grad():
        e_ref = model.emb(base).expand(len(ids), -1, -1)
        handle = model.emb.register_forward_hook(lambda m, a, out: e_ref)
        try:
            g_ref = model(ids).numpy()
        finally:
            handle.remove()
        fx = model(ids).numpy()
    np.testing.assert_allclose(np.asarray(ig.decomp_goal).reshape(fx.shape), fx - g_ref,
                               atol=1e-12)
    ig64 = explain(skx.IntegratedGradients, model, ids, base, n=400)
    np.testing.assert_allclose(total(ig64), fx - g_ref, atol=2e-2 * np.abs(fx - g_ref).max())


def test_expected_gradients_goal_uses_each_samples_own_mask():
    torch.manual_seed(0)
    model, ids = PaddedText("mha").double().eval(), padded_ids()
    refs = _not_all_padding_reference(make_ids(4, 5, seed=7))
    eg = explain(skx.ExpectedGradients, model, ids, refs, n=8, random_state=0)
    with torch.no_grad():
        fx = model(ids).numpy()
        means = []
        for j in range(len(refs)):
            e_ref = model.emb(refs[j:j + 1]).expand(len(ids), -1, -1)
            handle = model.emb.register_forward_hook(lambda m, a, out, e=e_ref: e)
            try:
                means.append(model(ids).numpy())
            finally:
                handle.remove()
    np.testing.assert_allclose(np.asarray(eg.decomp_goal).reshape(fx.shape),
                               fx - np.mean(means, 0), atol=1e-12)
    # the path keeps the ids: a model without the mask gets the old goal f(x) - mean f(X_ref)
    plain = TextClassifier().double().eval()
    eg_plain = explain(skx.ExpectedGradients, plain, ids, refs, n=8, random_state=0)
    with torch.no_grad():
        expected = plain(ids).numpy() - plain(refs).numpy().mean(0)
    np.testing.assert_allclose(np.asarray(eg_plain.decomp_goal).reshape(expected.shape),
                               expected, atol=1e-12)
