"""CP-LRP (Ali et al., ICML 2022: attention weights as constants) next to AttnLRP's softmax
linearisation (issue #12): conservation on bias-free transformers with softmax attention,
equality with a slow reference (gradient times input of the model with detached softmax
outputs and LayerNorm scales), and a measurement of what AttnLRP's linearisation absorbs."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch
from _torch_models import TokenModel
from torch import nn

import sknn_explain as skx
from sknn_explain.convert import convert
from sknn_explain.layers import Activation
from sknn_explain.propagation import lrp_backward
from sknn_explain.rules import ConservativeAttention, resolve_rules

D = torch.float64
CP = {"Dense": "simple", "Add": "simple", "Softmax": "cp"}


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=D)


def total(res):
    v = res.values
    return v.reshape(v.shape[0], -1, v.shape[-1]).sum(1)


class _Half(torch.autograd.Function):
    """Identity forward, half the gradient backward: AttnLRP's uniform rule on a product
    of two activations is gradient x input with each factor's gradient halved."""

    @staticmethod
    def forward(ctx, t):
        return t.view_as(t)

    @staticmethod
    def backward(ctx, g):
        return 0.5 * g


class Block(nn.Module):
    """Bias-free pre-norm block written out: LayerNorm, softmax attention, ReLU MLP.
    ``detach=True`` computes the same values with the softmax outputs and the LayerNorm
    scales detached (the slow reference's model of CP-LRP); ``detach="attnlrp"`` detaches
    the LayerNorm scales and halves the gradient of each factor of the two products
    (AttnLRP's reference as gradient x input, the way its authors' ``lxt`` computes it)."""

    def __init__(self, dim):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim, bias=False), nn.LayerNorm(dim, bias=False)
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim, bias=False) for _ in range(4))
        self.ff = nn.Sequential(nn.Linear(dim, 12, bias=False), nn.ReLU(),
                                nn.Linear(12, dim, bias=False))
        self.detach = False

    def ln(self, norm, t):
        if not self.detach:
            return norm(t)
        c = t - t.mean(-1, keepdim=True)
        s = torch.rsqrt((c * c).mean(-1, keepdim=True) + norm.eps)
        return c * s.detach() * norm.weight

    def forward(self, t):
        half = _Half.apply if self.detach == "attnlrp" else (lambda u: u)
        h = self.ln(self.norm1, t)
        scores = torch.einsum("nqd,nkd->nqk", half(self.q(h)), half(self.k(h)))
        a = torch.softmax(scores / math.sqrt(h.shape[-1]), -1)
        if self.detach is True:
            a = a.detach()
        t = t + self.o(torch.bmm(half(a), half(self.v(h))))
        return t + self.ff(self.ln(self.norm2, t))


def FT(n_features=4, dim=6, blocks=None):  # noqa: N802 - reads like the model class
    """Bias-free FT-Transformer style: feature tokenizer, 2 blocks, mean over tokens."""
    return TokenModel(lambda d: blocks if blocks is not None else nn.ModuleList(
        Block(d) for _ in range(2)), n_features, dim)


def _encoder_blocks(norm_first):
    return nn.ModuleList(
        nn.TransformerEncoderLayer(6, 2, 12, dropout=0.0, bias=False, batch_first=True,
                                   norm_first=norm_first) for _ in range(2))


class Text(nn.Module):
    """Bias-free text classifier: Embedding, self-attention with residual, mean pooling."""

    def __init__(self, vocab=11, dim=8):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.attn = nn.MultiheadAttention(dim, 2, bias=False, batch_first=True)
        self.head = nn.Linear(dim, 3, bias=False)

    def forward(self, ids):
        e = self.emb(ids)
        h = self.attn(e, e, e, need_weights=False)[0] + e
        return self.head(h.mean(1))


def explain_cp(model, x, rule_name=None):
    rule_name = {"Softmax": "cp"} if rule_name is None else rule_name
    return skx.LRP(rule_name=rule_name, dtype="double").fit(model.double().eval()).explain(x)


def _detached_gxi(model, x, mode=True):
    """Slow reference: gradient times input of the model with detached attention weights
    and LayerNorm scales (``mode="attnlrp"``: detached scales, halved product gradients),
    per output ``(n, F, K)``."""
    for b in model.blocks:
        b.detach = mode
    try:
        cols = []
        for k in range(2):
            xr = x.clone().requires_grad_(True)
            (g,) = torch.autograd.grad(model(xr)[:, k].sum(), xr)
            cols.append((g * x).detach())
    finally:
        for b in model.blocks:
            b.detach = False
    return torch.stack(cols, -1).numpy()


# ------------------------------------------------------------------ conservation
def test_cp_lrp_equals_the_detached_gradient_times_input():
    torch.manual_seed(0)
    model, x = FT().double().eval(), rand(5, 4)
    graph = convert(model, (4,), dtype="double", X_ref=x)
    with torch.no_grad():
        assert float((graph(x)[0] - model(x)).abs().max()) < 1e-10
        ref_out = model(x)
    res = explain_cp(model, x, CP)
    np.testing.assert_allclose(res.values, _detached_gxi(model, x), atol=1e-10)
    np.testing.assert_allclose(total(res), ref_out.numpy(), atol=1e-8)   # conservation


@pytest.mark.parametrize("norm_first", [True, False])
def test_cp_lrp_conserves_on_encoder_layers_with_softmax(norm_first):
    torch.manual_seed(0)
    model, x = FT(blocks=_encoder_blocks(norm_first)).double().eval(), rand(5, 4)
    with torch.no_grad():
        out = model(x).numpy()
    res = explain_cp(model, x)
    np.testing.assert_allclose(total(res), out, atol=1e-8)
    attn = explain_cp(model, x, "simple")  # AttnLRP: the linearisation absorbs relevance
    assert np.abs(total(attn) - out).max() > 1e-4


def test_cp_lrp_conserves_on_a_text_classifier():
    torch.manual_seed(0)
    model = Text().double().eval()
    ids = torch.randint(0, 11, (6, 5), generator=torch.Generator().manual_seed(0))
    res = explain_cp(model, ids)
    assert res.values.shape == (6, 5, 3)
    with torch.no_grad():
        np.testing.assert_allclose(total(res), model(ids).numpy(), atol=1e-8)


def test_cp_lrp_on_batch_first_false_attention_conserves():
    class SeqFirst(nn.Module):
        def __init__(self):
            super().__init__()
            self.m = nn.TransformerEncoderLayer(6, 2, 12, dropout=0.0, bias=False)
            self.head = nn.Linear(6, 2, bias=False)

        def forward(self, t):
            return self.head(self.m(t.transpose(0, 1)).transpose(0, 1).mean(1))

    torch.manual_seed(0)
    model, x = SeqFirst().double().eval(), rand(4, 3, 6)
    res = explain_cp(model, x)
    with torch.no_grad():
        np.testing.assert_allclose(total(res), model(x).numpy(), atol=1e-8)


# ------------------------------------------------------------------ what AttnLRP absorbs
def test_attnlrp_with_softmax_equals_its_gradient_times_input_reference():
    """AttnLRP (softmax linearisation, uniform product rule, LayerNorm identity rule) is
    gradient x input with halved product gradients and detached LayerNorm scales."""
    torch.manual_seed(0)
    model, x = FT().double().eval(), rand(5, 4)
    res = explain_cp(model, x, {"Dense": "simple", "Add": "simple"})
    np.testing.assert_allclose(res.values, _detached_gxi(model, x, "attnlrp"), atol=1e-10)



def test_attnlrp_absorbs_exactly_its_linearisation_term():
    """Bias-free: ``sum R_input = f(x) - sum over softmax nodes of (sum R_s - sum R_x)``,
    the linearisation bias of each softmax (AttnLRP, Prop. 3.1)."""
    torch.manual_seed(0)
    model, x = FT().double().eval(), rand(5, 4)
    graph = convert(model, (4,), dtype="double", X_ref=x)
    softmax = [n for n in graph.nodes if isinstance(n.layer, Activation)
               and n.layer.name == "softmax"]
    assert len(softmax) == 2
    values = graph.forward_all(x)
    out = values[graph.outputs[0]]
    start = torch.zeros(2, *out.shape, dtype=D)
    for k in range(2):
        start[k, :, k] = out[:, k]
    keep = tuple(n.name for n in softmax) + tuple(n.inputs[0] for n in softmax)
    with torch.no_grad():
        rel = lrp_backward(graph, values, {graph.outputs[0]: start},
                           resolve_rules("simple"), keep=keep)
    absorbed = sum(rel[n.name].flatten(2).sum(-1) - rel[n.inputs[0]].flatten(2).sum(-1)
                   for n in softmax)                                   # (K, n)
    got = rel["input_0"].flatten(2).sum(-1)
    np.testing.assert_allclose(got, out.T - absorbed, atol=1e-10)
    assert float(absorbed.abs().max()) > 1e-4                       # not trivially zero
    # under CP-LRP nothing reaches the scores
    with torch.no_grad():
        rel = lrp_backward(graph, values, {graph.outputs[0]: start},
                           resolve_rules({"Softmax": "cp"}), keep=keep)
    assert all(float(rel[n.inputs[0]].abs().max()) == 0.0 for n in softmax)
    np.testing.assert_allclose(rel["input_0"].flatten(2).sum(-1), out.T, atol=1e-10)


# ------------------------------------------------------------------ the option itself
def test_the_softmax_rule_is_a_picklable_grid_searchable_name():
    from sklearn.base import clone

    lrp = skx.LRP(rule_name={"Dense": "epsilon", "Softmax": "cp"}, rule_param={"Dense": 0.1})
    assert clone(lrp).get_params()["rule_name"] == {"Dense": "epsilon", "Softmax": "cp"}
    rules = resolve_rules(lrp.rule_name, lrp.rule_param)
    assert rules.for_key("Softmax") == ConservativeAttention()
    assert pickle.loads(pickle.dumps(rules)).for_key("Softmax") == ConservativeAttention()
    assert resolve_rules("epsilon").for_key("Softmax").name == "attnlrp"
    with pytest.raises(ValueError, match="cannot be used for Softmax"):
        resolve_rules({"Softmax": "epsilon"})
    with pytest.raises(ValueError, match="cannot be used for Dense"):
        resolve_rules({"Dense": "cp"})


def test_cp_is_the_same_as_attnlrp_without_softmax():
    """The rule only changes softmax nodes and the products reading them."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6, bias=False), nn.ReLU(),
                          nn.Linear(6, 2, bias=False)).double()
    x = rand(3, 4)
    np.testing.assert_array_equal(explain_cp(model, x).values,
                                  explain_cp(model, x, "simple").values)
