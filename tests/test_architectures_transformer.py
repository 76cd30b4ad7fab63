"""FT-Transformer pieces in the layer graph (issue #12, final part): constant blocks
concatenated with activations (CLS token), constants that broadcast an activation to a new
shape (feature tokenizer, positional embeddings), ``nn.TransformerEncoderLayer``, and the
exact DeepLift rule of a softmax inside the graph."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _torch_models import TokenModel
from torch import nn

import sknn_explain as skx
from sknn_explain.convert import UnsupportedLayerError, convert
from sknn_explain.layers import BroadcastAffine, ConstantConcat, LayerNorm

D = torch.float64


def to_graph(model, x):
    model = model.double().eval()
    graph = convert(model, tuple(x.shape[1:]), dtype="double", X_ref=x)
    with torch.no_grad():
        diff = float((graph(x.to(D))[0] - model(x)).abs().max())
    return graph, diff


def explain(method, model, x, x_ref=None, **kw):
    return method(dtype="double", **kw).fit(model.double().eval(), x_ref).explain(x)


def total(res):
    v = res.values
    return v.reshape(v.shape[0], -1, v.shape[-1]).sum(1)


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=D)


# ------------------------------------------------------------------ models
class Tokenizer(nn.Module):
    """Feature tokenizer ``x[..., None] * W + b``, optional CLS token, linear head."""

    def __init__(self, n_features=4, dim=3, bias=True, cls=True, out_bias=True):
        super().__init__()
        self.w = nn.Parameter(torch.randn(n_features, dim))
        self.b = nn.Parameter(torch.randn(n_features, dim)) if bias else None
        self.cls = nn.Parameter(torch.randn(1, 1, dim)) if cls else None
        self.head = nn.Linear((n_features + bool(cls)) * dim, 2, bias=out_bias)

    def forward(self, x):
        t = x.unsqueeze(-1) * self.w
        if self.b is not None:
            t = t + self.b
        if self.cls is not None:
            t = torch.cat([self.cls.expand(x.shape[0], -1, -1), t], 1)
        return self.head(t.flatten(1))


class Encoder(nn.Module):
    """Tokens, ``nn.TransformerEncoderLayer``, head on the first token."""

    def __init__(self, norm_first=False, activation="relu", mask=None):
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True,
                                                norm_first=norm_first, activation=activation)
        self.head = nn.Linear(8, 2)
        self.register_buffer("mask", mask)

    def forward(self, t):
        return self.head(self.layer(t, src_mask=self.mask)[:, 0])


class FTTransformer(nn.Module):
    """Feature tokenizer + CLS token + 2 encoder layers + head on the CLS token."""

    def __init__(self, n_features=4, dim=8, norm_first=True):
        super().__init__()
        self.tok = nn.Parameter(torch.randn(n_features, dim))
        self.tok_bias = nn.Parameter(torch.randn(n_features, dim))
        self.cls = nn.Parameter(torch.randn(1, 1, dim))
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(dim, 2, 16, dropout=0.0, batch_first=True,
                                       norm_first=norm_first, activation="gelu")
            for _ in range(2))
        self.head = nn.Linear(dim, 2)

    def forward(self, x):
        t = x.unsqueeze(-1) * self.tok + self.tok_bias
        t = torch.cat([self.cls.expand(x.shape[0], -1, -1), t], 1)
        for b in self.blocks:
            t = b(t)
        return self.head(t[:, 0])


# ------------------------------------------------------------------ conversion
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("cls", [True, False])
def test_tokenizer_and_cls_convert_exactly(bias, cls):
    torch.manual_seed(0)
    graph, diff = to_graph(Tokenizer(bias=bias, cls=cls), rand(5, 4))
    assert diff < 1e-10
    kinds = {type(n.layer) for n in graph.nodes}
    assert BroadcastAffine in kinds and (ConstantConcat in kinds) == cls


def test_positional_embedding_and_constant_on_the_left():
    class Pos(nn.Module):
        def __init__(self):
            super().__init__()
            self.pos = nn.Parameter(torch.randn(3, 4))
            self.out = nn.Linear(12, 2)

        def forward(self, t):  # constant varying along two axes; cat with data first
            t = 2.0 - (self.pos + t) / torch.tensor(3.0, dtype=t.dtype)
            t = torch.cat([t, self.pos.expand(t.shape[0], -1, -1)], 1)
            return self.out(t[:, :3].flatten(1))

    torch.manual_seed(0)
    model, x = Pos(), rand(5, 3, 4)
    graph, diff = to_graph(model, x)
    assert diff < 1e-10
    res = explain(skx.DeepLift, model, x, rand(1, 3, 4, seed=1))
    np.testing.assert_allclose(total(res), res.decomp_goal, atol=1e-10)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu", "gelu_module"])
def test_transformer_encoder_layer_is_exact(norm_first, activation):
    torch.manual_seed(0)
    act = nn.GELU() if activation == "gelu_module" else activation
    model, x = Encoder(norm_first, act).double().eval(), rand(6, 5, 8)
    with torch.no_grad():  # the module's own output (its fused eval path where it applies)
        own = model(x)
    graph = convert(model, (5, 8), dtype="double", X_ref=x)
    with torch.no_grad():
        assert float((graph(x)[0] - own).abs().max()) < 1e-10
    assert sum(isinstance(n.layer, LayerNorm) for n in graph.nodes) == 2
    res = explain(skx.DeepLift, model, x, rand(1, 5, 8, seed=1))
    np.testing.assert_allclose(total(res), res.decomp_goal, atol=1e-8)


def test_transformer_encoder_layer_with_a_causal_mask():
    torch.manual_seed(0)
    mask = nn.Transformer.generate_square_subsequent_mask(5, dtype=D)
    model, x = Encoder(mask=mask).double().eval(), rand(6, 5, 8)
    graph, diff = to_graph(model, x)
    assert diff < 1e-10
    res = explain(skx.DeepLift, model, x, rand(1, 5, 8, seed=1))
    np.testing.assert_allclose(total(res), res.decomp_goal, atol=1e-8)


# ------------------------------------------------------------------ rules
def test_lrp_on_the_tokenizer_conserves_and_absorbs_the_cls_share():
    """Bias-free: relevance reaching the inputs = output - the CLS token's share
    ``w_cls . cls`` (absorbed like a bias, see docs/propagation.md)."""
    torch.manual_seed(0)
    model, x = Tokenizer(bias=False, cls=True, out_bias=False).double(), rand(5, 4)
    res = explain(skx.LRP, model, x, rule_name="simple")
    with torch.no_grad():
        out = model(x)
        cls_share = model.head.weight[:, :3] @ model.cls.reshape(3)
    np.testing.assert_allclose(total(res), (out - cls_share).numpy(), atol=1e-10)
    # without the CLS token everything is conserved
    model = Tokenizer(bias=False, cls=False, out_bias=False).double()
    res = explain(skx.LRP, model, x, rule_name="simple")
    with torch.no_grad():
        np.testing.assert_allclose(total(res), model(x).numpy(), atol=1e-10)


def test_lrp_simple_on_the_tokenizer_is_the_dense_rule():
    """``x[..., None] * W + b`` is the Dense layer ``x_f -> x_f W_f + b_f`` per feature:
    the simple rule gives ``R_x_f = sum_d x_f W_fd R_z_fd / z_fd`` (the bias's share
    absorbed)."""
    torch.manual_seed(0)
    model, x = Tokenizer(bias=True, cls=False, out_bias=False).double(), rand(3, 4)
    res = explain(skx.LRP, model, x, rule_name="simple")
    with torch.no_grad():
        z = x[..., None] * model.w + model.b                       # (n, F, d)
        w = model.head.weight.reshape(2, 4, 3)                     # (K, F, d)
        r_z = z[None] * w[:, None]  # simple rule on the bias-free head: R_z = z w
        expected = (r_z * (x[..., None] * model.w) / z).sum(-1)    # (K, n, F)
    np.testing.assert_allclose(res.values, expected.permute(1, 2, 0).numpy(), atol=1e-10)


def test_softmax_deeplift_is_exact_where_a_score_does_not_change():
    """A CLS token attending to itself: its score is the same for input and reference, but
    its attention weight changes; the position-wise Rescale rule loses that change."""
    class CLSAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Linear(1, 4)
            self.cls = nn.Parameter(torch.randn(1, 1, 4))
            self.attn = nn.MultiheadAttention(4, 1, batch_first=True)
            self.head = nn.Linear(4, 2)

        def forward(self, x):
            t = torch.cat([self.cls.expand(x.shape[0], -1, -1), self.tok(x.unsqueeze(-1))], 1)
            return self.head(self.attn(t, t, t, need_weights=False)[0][:, 0])

    torch.manual_seed(0)
    model, x = CLSAttention(), rand(6, 3)
    res = explain(skx.DeepLift, model, x, torch.zeros(1, 3, dtype=D))
    np.testing.assert_allclose(total(res), res.decomp_goal, atol=1e-10)


def test_connection_weights_on_the_tokenizer_are_the_path_weights():
    torch.manual_seed(0)
    model = Tokenizer(bias=True, cls=True).double()
    res = skx.ConnectionWeights(dtype="double").fit(model).explain(rand(2, 4))
    w = model.head.weight.detach().reshape(2, 5, 3)[:, 1:]       # the CLS block is sliced off
    expected = (w * model.w.detach()).sum(-1).T                  # (F, K)
    np.testing.assert_allclose(res.values[0], expected.numpy(), atol=1e-12)


# ------------------------------------------------------------------ FT-Transformer
@pytest.mark.parametrize("norm_first", [True, False])
def test_ft_transformer_deeplift_deepshap_ig(norm_first):
    from captum.attr import IntegratedGradients

    torch.manual_seed(0)
    model, x = FTTransformer(norm_first=norm_first).double().eval(), rand(5, 4)
    graph, diff = to_graph(model, x)
    assert diff < 1e-10
    ref = torch.zeros(1, 4, dtype=D)
    res = explain(skx.DeepLift, model, x, ref)
    np.testing.assert_allclose(total(res), res.decomp_goal, atol=1e-8)
    with torch.no_grad():
        np.testing.assert_allclose(res.decomp_goal, (model(x) - model(ref)).numpy(),
                                   atol=1e-10)
    shap = explain(skx.DeepSHAP, model, x[:2], rand(3, 4, seed=2), random_state=0)
    np.testing.assert_allclose(total(shap), shap.decomp_goal, atol=1e-8)
    ig = explain(skx.IntegratedGradients, model, x, ref, n=16)
    for k in range(2):
        expected = IntegratedGradients(model).attribute(
            x, baselines=ref, target=k, n_steps=16, method="riemann_right")
        np.testing.assert_allclose(ig.values[..., k], expected.detach().numpy(), atol=1e-8)
    lrp = explain(skx.LRP, model, x, rule_name="epsilon")
    assert np.isfinite(lrp.values).all()


# ------------------------------------------------------------------ refusals, mutation
def test_constants_that_differ_between_samples_are_refused():
    class PerSample(nn.Module):
        def forward(self, x):
            c = torch.arange(x.shape[0], dtype=x.dtype).unsqueeze(1)
            return torch.cat([c, x], 1)

    with pytest.raises(UnsupportedLayerError, match="differs between the samples"):
        convert(PerSample().double(), (3,), dtype="double", X_ref=rand(4, 3))


def test_a_constant_broadcasting_the_batch_axis_is_refused():
    class Batchwise(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Parameter(torch.randn(2, 1, 3))

        def forward(self, x):
            return (x * self.c).sum(0)

    with pytest.raises(UnsupportedLayerError, match="batch axis"):
        convert(Batchwise().double(), (3,), dtype="double", X_ref=rand(4, 3))


@pytest.mark.parametrize("make, match", [
    (lambda: nn.TransformerEncoderLayer(8, 2, 16, 0.0, nn.GELU(approximate="tanh"),
                                        batch_first=True), "approximate='tanh'"),
    (lambda: nn.TransformerEncoderLayer(8, 2, 16, 0.0, F.silu, batch_first=True),
     "relu and gelu are supported"),
    (lambda: nn.TransformerEncoderLayer(8, 2, 16, 0.0), "batch_first=False"),
])
def test_unsupported_encoder_layers_are_refused(make, match):
    model = nn.Sequential(make(), nn.Flatten()).double()
    with pytest.raises(UnsupportedLayerError, match=match):
        convert(model, (5, 8), dtype="double", X_ref=rand(3, 5, 8))


def test_model_is_not_mutated():
    model = FTTransformer().double()
    model.train()
    flags = [p.requires_grad for p in model.parameters()]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    skx.DeepLift(dtype="double").fit(model, torch.zeros(1, 4, dtype=D)).explain(rand(3, 4))
    skx.LRP(dtype="double").fit(model).explain(rand(3, 4))
    assert model.training and all(m.training for m in model.modules())
    assert flags == [p.requires_grad for p in model.parameters()]
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_lrp_conserves_on_a_bias_free_ft_transformer_without_softmax():
    """Where AttnLRP's theory says relevance is conserved (bias-free tokenizer, LayerNorm
    without bias under the identity rule, bilinear attention without softmax, residuals,
    feed-forward, mean over tokens), the input relevances sum to the output."""
    class Block(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.norm = nn.LayerNorm(dim, bias=False)
            self.q, self.k, self.v, self.o = (nn.Linear(dim, dim, bias=False)
                                              for _ in range(4))
            self.ff = nn.Sequential(nn.Linear(dim, 12, bias=False), nn.ReLU(),
                                    nn.Linear(12, dim, bias=False))

        def forward(self, t):
            h = self.norm(t)
            scores = torch.einsum("nqd,nkd->nqk", self.q(h), self.k(h)) / 4.0
            t = t + self.o(torch.bmm(scores, self.v(h)))
            return t + self.ff(t)

    torch.manual_seed(0)
    model = TokenModel(lambda d: nn.ModuleList(Block(d) for _ in range(2))).double().eval()
    x = rand(5, 4)
    graph, diff = to_graph(model, x)
    assert diff < 1e-10 and any(isinstance(n.layer, BroadcastAffine) for n in graph.nodes)
    res = explain(skx.LRP, model, x, rule_name="simple")
    with torch.no_grad():
        np.testing.assert_allclose(total(res), model(x).numpy(), atol=1e-8)


# ------------------------------------------------------------------ batch_first=False
def _attention_module(kind, batch_first, bias=True):
    if kind == "mha":
        return nn.MultiheadAttention(6, 2, bias=bias, batch_first=batch_first)
    layer = nn.TransformerEncoderLayer(6, 2, 12, dropout=0.0, bias=bias,
                                       batch_first=batch_first)
    if kind == "layer":
        return layer
    return nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(6, bias=bias),
                                 enable_nested_tensor=False)


class SeqFirst(nn.Module):
    """``(N, L, E)`` input transposed to ``(L, N, E)`` for a ``batch_first=False`` module,
    pooled in three ways that read the sequence-first result."""

    def __init__(self, kind="mha", pool="transpose", bias=True, batch_first=False):
        super().__init__()
        self.kind, self.pool, self.batch_first = kind, pool, batch_first
        self.m = _attention_module(kind, batch_first, bias)
        self.head = nn.Linear(6, 2, bias=bias)

    def forward(self, x):
        t = x if self.batch_first else x.transpose(0, 1)
        h = self.m(t, t, t, need_weights=False)[0] if self.kind == "mha" else self.m(t)
        if self.batch_first:
            return self.head(h.mean(1) if self.pool == "transpose" else h[:, 0])
        if self.pool == "transpose":
            return self.head(h.transpose(0, 1).mean(1))
        if self.pool == "first":
            return self.head(h[0])
        return self.head(h.permute(1, 0, 2)[:, 0])


def _twin(model):
    """The batch_first=True model with the same weights."""
    twin = SeqFirst(model.kind, model.pool, batch_first=True,
                    bias=model.head.bias is not None).double().eval()
    twin.load_state_dict(model.state_dict())
    return twin


@pytest.mark.parametrize("kind", ["mha", "layer", "stack"])
@pytest.mark.parametrize("pool", ["transpose", "first", "permute"])
def test_batch_first_false_converts_exactly(kind, pool):
    torch.manual_seed(0)
    model, x = SeqFirst(kind, pool).double().eval(), rand(5, 4, 6)
    graph, diff = to_graph(model, x)
    assert diff < 1e-10
    ref = rand(1, 4, 6, seed=1)
    res = explain(skx.DeepLift, model, x, ref)
    np.testing.assert_allclose(total(res), res.decomp_goal, atol=1e-8)
    # the same attributions as the batch-first module with the same weights
    twin = _twin(model) if pool != "permute" else None
    if twin is not None:
        np.testing.assert_allclose(res.values, explain(skx.DeepLift, twin, x, ref).values,
                                   atol=1e-10)


@pytest.mark.parametrize("kind", ["mha", "layer", "stack"])
def test_batch_first_false_lrp_equals_the_batch_first_twin(kind):
    torch.manual_seed(0)
    model, x = SeqFirst(kind, bias=False).double().eval(), rand(4, 4, 6)
    res = explain(skx.LRP, model, x, rule_name="epsilon")
    twin = explain(skx.LRP, _twin(model), x, rule_name="epsilon")
    np.testing.assert_allclose(res.values, twin.values, atol=1e-12)
    assert np.abs(res.values).max() > 1e-3


def test_transformer_encoder_batch_first_true_converts_exactly():
    torch.manual_seed(0)
    model, x = SeqFirst("stack", "first", batch_first=True).double().eval(), rand(5, 4, 6)
    _, diff = to_graph(model, x)
    assert diff < 1e-10


def test_sequence_first_input_and_unsupported_uses_are_refused():
    class Direct(nn.Module):  # the model input itself is (L, N, E)
        def __init__(self):
            super().__init__()
            self.m = nn.MultiheadAttention(6, 2)

        def forward(self, t):
            return self.m(t, t, t)[0].flatten(1)

    with pytest.raises(UnsupportedLayerError, match="model whose input is sequence-first"):
        convert(Direct().double(), (4, 6), dtype="double", X_ref=rand(3, 4, 6))

    class Returns(nn.Module):  # returns the (L, N, E) result without transposing back
        def __init__(self):
            super().__init__()
            self.m = nn.MultiheadAttention(6, 2)

        def forward(self, x):
            t = x.transpose(0, 1)
            return self.m(t, t, t)[0]

    with pytest.raises(UnsupportedLayerError, match="samples are on axis 1"):
        convert(Returns().double(), (4, 6), dtype="double", X_ref=rand(3, 4, 6))

    class Weights(nn.Module):  # uses the averaged attention weights
        def __init__(self):
            super().__init__()
            self.m = nn.MultiheadAttention(6, 2)

        def forward(self, x):
            t = x.transpose(0, 1)
            return self.m(t, t, t)[1].flatten(1)

    with pytest.raises(UnsupportedLayerError, match="averaged attention weights"):
        convert(Weights().double(), (4, 6), dtype="double", X_ref=rand(3, 4, 6))

    layer = nn.TransformerEncoderLayer(6, 2, 12, dropout=0.0, batch_first=True)
    stack = nn.TransformerEncoder(layer, 2)  # enable_nested_tensor=True by default

    class Padded(nn.Module):
        def __init__(self):
            super().__init__()
            self.m = stack

        def forward(self, x):
            pad = torch.arange(4, device=x.device).expand(x.shape[0], 4) == 3  # constant
            return self.m(x, src_key_padding_mask=pad)[:, 0]

    with pytest.raises(UnsupportedLayerError, match="enable_nested_tensor=False"):
        convert(Padded().double(), (4, 6), dtype="double", X_ref=rand(3, 4, 6))
