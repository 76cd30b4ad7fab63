"""LRP presets (zennit's composites by name) and BatchNorm merging, against zennit."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from _stub_imports import import_without_torchvision
from _torch_models import cnn, mlp
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.neural_network import MLPClassifier
from torch import nn

from sknn_explain import AttributionTransformer
from sknn_explain import metrics as M
from sknn_explain.explainers.lrp import LRP
from sknn_explain.propagation import merge_batchnorm
from sknn_explain.rules import (
    PRESETS,
    Epsilon,
    EpsilonAlpha2Beta1,
    EpsilonAlpha2Beta1Flat,
    EpsilonGammaBox,
    EpsilonPlus,
    EpsilonPlusFlat,
    Flat,
    ZBox,
    resolve_rules,
)


def _load_zennit():
    """zennit's composites and canonizers (torchvision stubbed for the import)."""
    return import_without_torchvision("zennit.composites", "zennit.canonizers")


@pytest.fixture(scope="module")
def zennit():
    return _load_zennit()


def zennit_relevance(composite, model, x, n_out):
    """zennit relevances for every output under a composite (stacked last)."""
    outs = []
    for k in range(n_out):
        with composite.context(model) as modified:
            xg = x.clone().requires_grad_(True)
            out = modified(xg)
            seed = torch.zeros_like(out)
            seed[:, k] = out[:, k].detach()
            (g,) = torch.autograd.grad(out, xg, seed)
        outs.append(g.detach().numpy())
    return np.stack(outs, axis=-1)


def _bn_stats(model, seed=1):
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            c = m.num_features
            m.running_mean.copy_(torch.rand(c, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(c, generator=gen) * 1.5 + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=gen) + 0.5)
            m.bias.data.copy_(torch.rand(c, generator=gen) * 0.6 - 0.3)
    return model


MODELS = {
    "mlp_bn": (lambda: _bn_stats(mlp(n_out=4, batchnorm=True)), (5,)),
    "cnn_bn": (lambda: _bn_stats(cnn(n_out=4, batchnorm=True)), (3, 8, 8)),
}
# ours, zennit's: the box rule goes to a first Dense layer here, only to a first Conv in zennit
PRESET_CASES = {
    "EpsilonPlus": (lambda dense_first: EpsilonPlus(), lambda z: z.EpsilonPlus),
    "EpsilonPlusFlat": (lambda dense_first: EpsilonPlusFlat(), lambda z: z.EpsilonPlusFlat),
    "EpsilonAlpha2Beta1": (lambda dense_first: EpsilonAlpha2Beta1(),
                           lambda z: z.EpsilonAlpha2Beta1),
    "EpsilonAlpha2Beta1Flat": (lambda dense_first: EpsilonAlpha2Beta1Flat(),
                               lambda z: z.EpsilonAlpha2Beta1Flat),
    "EpsilonGammaBox": (
        lambda dense_first: EpsilonGammaBox(-3.0, 3.0, first_layer=Epsilon(1e-6)
                                            if dense_first else None),
        lambda z: lambda **kw: z.EpsilonGammaBox(low=-3.0, high=3.0, **kw)),
}


@pytest.mark.parametrize("canonize", [False, True], ids=["pass_bn", "merged_bn"])
@pytest.mark.parametrize("model_name", list(MODELS))
@pytest.mark.parametrize("preset", list(PRESET_CASES))
def test_presets_equal_zennit_composites(zennit, preset, model_name, canonize):
    zcomp, zcanon = zennit
    make_model, shape = MODELS[model_name]
    model = make_model().double()
    x = torch.randn(4, *shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    ours_preset, theirs = PRESET_CASES[preset]
    lrp = LRP(ours_preset(model_name.startswith("mlp")), canonize=canonize, dtype="double")
    ours = lrp.fit(model).explain(x, output_idx=list(range(4))).values
    canonizers = [zcanon.SequentialMergeBatchNorm()] if canonize else None
    ref = zennit_relevance(theirs(zcomp)(canonizers=canonizers), model, x, 4)
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).mean() < 1e-6
    assert np.abs(ref).mean() > 1e-4  # not trivially zero


class _OutOfOrderNet(nn.Module):
    """BatchNorm modules defined before the layers they follow (zennit pairs by module order)."""

    def __init__(self, seq: nn.Sequential):
        super().__init__()
        self.bn1, self.bn2 = seq[1], seq[4]
        self.conv1, self.conv2, self.lin = seq[0], seq[3], seq[7]
        self.act, self.flat = nn.ReLU(), nn.Flatten()

    def forward(self, x):
        x = self.act(self.bn1(self.conv1(x)))
        x = self.act(self.bn2(self.conv2(x)))
        return self.lin(self.flat(nn.functional.avg_pool2d(x, 4)))


def _bn_cnn():
    torch.manual_seed(0)
    seq = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(),
                        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.Flatten(), nn.Linear(4, 3))
    return _bn_stats(seq).eval().double()


def test_batchnorm_merges_from_the_data_flow_not_the_module_order(zennit):
    zcomp, zcanon = zennit
    seq = _bn_cnn()
    seq_ref = nn.Sequential(*seq[:6], nn.AvgPool2d(4), *seq[6:]).eval()
    net = _OutOfOrderNet(seq).eval()
    x = torch.randn(3, 2, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(net(x), seq_ref(x))
    ref = zennit_relevance(zcomp.EpsilonAlpha2Beta1(
        canonizers=[zcanon.SequentialMergeBatchNorm()]), seq_ref, x, 3)
    ours = LRP(EpsilonAlpha2Beta1(), canonize=True, dtype="double").fit(net).explain(
        x, output_idx=[0, 1, 2]).values
    assert np.abs(ours - ref).mean() < 1e-6
    plain = LRP(EpsilonAlpha2Beta1(), dtype="double").fit(net).explain(
        x, output_idx=[0, 1, 2]).values
    assert np.abs(plain - ours).mean() > 1e-4  # merging changes the explanation


@pytest.mark.parametrize("model_name", list(MODELS))
def test_merged_graph_gives_identical_forward_values(model_name):
    make_model, shape = MODELS[model_name]
    model = make_model().double()
    x = torch.randn(6, *shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    lrp = LRP(canonize=True, dtype="double").fit(model)
    res = lrp.explain(x)  # finishes a pending conversion
    graph = lrp.graph_
    values = graph.forward_all(x)
    merged = merge_batchnorm(graph, {k: tuple(v.shape[1:]) for k, v in values.items()})
    n_bn = sum(type(n.layer).__name__ == "BatchNorm" for n in graph.nodes)
    assert n_bn > 0 and len(merged.nodes) == len(graph.nodes) - n_bn
    assert not any(type(n.layer).__name__ == "BatchNorm" for n in merged.nodes)
    torch.testing.assert_close(merged(x)[0], graph(x)[0], rtol=0, atol=1e-12)
    torch.testing.assert_close(merged(x)[0], model(x), rtol=0, atol=1e-12)
    assert len(graph.nodes) == len(lrp.graph_.nodes)  # the explainer's graph is untouched
    np.testing.assert_allclose(res.predictions, LRP(dtype="double").fit(model).explain(
        x).predictions, rtol=0, atol=1e-12)


def test_no_merge_where_the_producer_output_is_read_elsewhere():
    from sknn_explain.convert import Graph, Node
    from sknn_explain.layers import Add, BatchNorm, Dense

    d = Dense(torch.randn(3, 3, dtype=torch.float64))
    bn = BatchNorm(torch.rand(3, dtype=torch.float64) + 0.5, torch.randn(3, dtype=torch.float64))
    g = Graph([Node("d", d, ["input_0"]), Node("bn", bn, ["d"]), Node("add", Add(), ["bn", "d"])],
              1, ["add"], [(3,)])
    assert merge_batchnorm(g, {"input_0": (3,), "d": (3,), "bn": (3,), "add": (3,)}) is g
    # a Dense over the last axis of a sequence: BatchNorm's channel axis is another axis
    g2 = Graph([Node("d", d, ["input_0"]), Node("bn", BatchNorm(bn.scale, bn.shift), ["d"])],
               1, ["bn"], [(3, 3)])
    assert merge_batchnorm(g2, {"input_0": (3, 3), "d": (3, 3), "bn": (3, 3)}) is g2


def test_conservation_after_merging_on_a_bias_free_net():
    model = mlp(n_out=3, bias=False, batchnorm=True).double()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d):  # no shift: the merged layers stay bias-free
            m.running_mean.zero_()
            m.bias.data.zero_()
    x = torch.randn(5, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    res = LRP(canonize=True, dtype="double").fit(model).explain(x)
    np.testing.assert_allclose(res.decomp_sum, res.decomp_goal, rtol=0, atol=1e-8)
    assert np.abs(res.values).mean() > 1e-3


def test_presets_pickle_clone_set_params_and_names():
    for name, cls in PRESETS.items():
        preset = cls(-1.0, 1.0) if cls is EpsilonGammaBox else cls()
        assert pickle.loads(pickle.dumps(preset)) == preset
        assert hash(pickle.loads(pickle.dumps(preset))) == hash(preset)
        if cls is not EpsilonGammaBox:
            assert resolve_rules(name).rules == resolve_rules(preset).rules
    lrp = LRP(EpsilonPlusFlat(epsilon=0.1))
    cl = clone(lrp)
    assert cl.get_params()["rule_name"] == EpsilonPlusFlat(epsilon=0.1)
    cl.set_params(rule_name=EpsilonGammaBox(np.zeros(5), np.ones(5)), canonize=True)
    assert cl.get_params()["rule_name"] == EpsilonGammaBox(np.zeros(5), np.ones(5))
    assert EpsilonPlus() != EpsilonPlusFlat() and EpsilonPlus(0.1) != EpsilonPlus(0.2)
    rules = resolve_rules(EpsilonPlus(first_layer=ZBox(-1.0, 1.0)))
    assert rules.input_rule == ZBox(-1.0, 1.0)
    assert resolve_rules(EpsilonPlus(first_layer="flat")).input_rule == Flat(stabilizer=1e-6)
    assert resolve_rules(EpsilonPlusFlat()).for_key("Dense", True) == Flat(stabilizer=1e-6)
    model = mlp(n_out=2).double()
    x = torch.randn(3, 5, dtype=torch.float64)
    fitted = LRP("EpsilonPlusFlat", dtype="double").fit(model)
    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(fitted.explain(x).values, again.explain(x).values)


@pytest.mark.parametrize("kwargs,err,match", [
    (dict(rule_name="EpsilonGammaBox"), ValueError, "needs the input bounds"),
    (dict(rule_name=EpsilonPlus(), rule_param=0.1), ValueError, "set the parameters on the"),
    (dict(rule_name="EpsilonPlus", rule_param=0.1), ValueError, "set the parameters on the"),
    (dict(canonize="yes"), TypeError, "'canonize' parameter of LRP must be"),
])
def test_bad_preset_parameters(kwargs, err, match):
    with pytest.raises(err, match=match):
        LRP(**kwargs).fit(mlp())


def test_bad_preset_construction():
    with pytest.raises(ValueError, match="first_layer must be"):
        EpsilonPlus(first_layer="zbox")
    with pytest.raises(ValueError, match="epsilon must be >= 0"):
        EpsilonPlus(epsilon=-1.0)
    with pytest.raises(ValueError, match="low <= high"):
        EpsilonGammaBox(1.0, 0.0)


def test_presets_grid_search_in_a_pipeline():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 5))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    net = MLPClassifier((8,), max_iter=300, random_state=0).fit(X, y)
    grid = GridSearchCV(
        AttributionTransformer(net, LRP(), prefit=True),
        {"explainer__rule_name": [EpsilonPlus(), "EpsilonAlpha2Beta1Flat",
                                  EpsilonGammaBox(-4.0, 4.0)]},
        scoring=M.get_explanation_scorer("sparseness"), cv=KFold(2), error_score="raise",
    ).fit(X)
    assert np.isfinite(grid.cv_results_["mean_test_score"]).all()
    assert grid.best_params_["explainer__rule_name"] in (
        EpsilonPlus(), "EpsilonAlpha2Beta1Flat", EpsilonGammaBox(-4.0, 4.0))
