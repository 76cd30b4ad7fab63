"""Categorical embeddings (issue 11, item 3): nn.Embedding on integer codes next to numeric
inputs, attributed per category column through the embedding outputs (gradient family)."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import sknn_explain as skx

N_STEPS = 20


class Mixed(nn.Module):
    """Numeric input next to two category columns, one embedding per column."""

    def __init__(self, linear: bool = False) -> None:
        super().__init__()
        self.num = nn.Identity()  # a layer captum can attribute to
        self.emb_a = nn.Embedding(4, 3)
        self.emb_b = nn.Embedding(5, 2)
        act = nn.Identity() if linear else nn.Tanh()
        self.mlp = nn.Sequential(nn.Linear(7, 8), act, nn.Linear(8, 3))

    def forward(self, x_num, x_cat):
        e = torch.cat([self.emb_a(x_cat[:, 0]), self.emb_b(x_cat[:, 1])], 1)
        return self.mlp(torch.cat([self.num(x_num), e], 1))


class SharedOffsets(nn.Module):
    """Category codes only, one shared embedding with per-column offsets."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("offsets", torch.tensor([0, 3, 7]))
        self.emb = nn.Embedding(12, 4)
        self.mlp = nn.Sequential(nn.Linear(12, 6), nn.Tanh(), nn.Linear(6, 2))

    def forward(self, x_cat):
        return self.mlp(self.emb(x_cat + self.offsets).flatten(1))


class FloatCodes(nn.Module):
    """One float input whose last column holds codes the model casts itself."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(3, 2)
        self.mlp = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2))

    def forward(self, x):
        return self.mlp(torch.cat([x[:, :2], self.emb(x[:, 2].long())], 1))


class Tokens(nn.Module):
    """Token sequence with a positional embedding (constant indices: not a feature)."""

    def __init__(self) -> None:
        super().__init__()
        self.tok = nn.Embedding(10, 3)
        self.pos = nn.Embedding(5, 3)
        self.out = nn.Linear(3, 2)

    def forward(self, x):
        h = self.tok(x) + self.pos(torch.arange(x.shape[1], device=x.device))
        return self.out(torch.tanh(h).mean(1))


def _data(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x_num = torch.randn(n, 2, generator=g, dtype=torch.float64)
    x_cat = torch.stack([torch.randint(0, 4, (n,), generator=g),
                         torch.randint(0, 5, (n,), generator=g)], 1)
    return x_num, x_cat


def _mixed(linear=False):
    torch.manual_seed(0)
    return Mixed(linear).double()


def _snapshot(module: nn.Module):
    return (
        {k: v.clone() for k, v in module.state_dict().items()},
        [m.training for m in module.modules()],
        [p.requires_grad for p in module.parameters()],
        [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in module.modules()],
    )


def _assert_same(module: nn.Module, snap) -> None:
    state, training, grads, hooks = snap
    now = _snapshot(module)
    assert state.keys() == now[0].keys()
    for k in state:
        assert torch.equal(state[k], now[0][k]), k
    assert (training, grads, hooks) == now[1:]


# ------------------------------------------------------------------ against captum
def test_intgrad_per_category_column_equals_captum_layer_ig():
    from captum.attr import LayerIntegratedGradients

    torch.manual_seed(0)
    net = SharedOffsets().double()
    x_cat = torch.stack([torch.randint(0, k, (5,)) for k in (3, 4, 5)], 1)
    base = torch.tensor([[1, 0, 2]])
    ours = skx.IntegratedGradients(n=N_STEPS, dtype="double").fit(net, base).explain(x_cat)
    assert ours.values.shape == (5, 3, 2)
    for k in range(2):
        ref = LayerIntegratedGradients(net, net.emb).attribute(
            x_cat, baselines=base, target=k, n_steps=N_STEPS, method="riemann_right")
        np.testing.assert_allclose(ours.values[..., k], ref.sum(-1).numpy(), atol=1e-6)
    # the per-column attributions sum to f(x) - f(baseline) up to the Riemann error
    assert np.abs(ours.decomp_sum - ours.decomp_goal).max() < 5e-2


def test_intgrad_numeric_and_category_columns_equal_captum_joint_layer_ig():
    from captum.attr import LayerIntegratedGradients

    net = _mixed()
    x_num, x_cat = _data()
    b_num, b_cat = torch.tensor([[0.3, -0.2]], dtype=torch.float64), torch.tensor([[1, 2]])
    ig = skx.IntegratedGradients(n=N_STEPS, dtype="double").fit(net, [b_num, b_cat])
    res = ig.explain([x_num, x_cat])
    assert [v.shape for v in res.values] == [(6, 2, 3), (6, 2, 3)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # captum: "multiple layers provided"
        lig = LayerIntegratedGradients(net, [net.num, net.emb_a, net.emb_b])
    for k in range(3):
        a_num, a_a, a_b = lig.attribute((x_num, x_cat), baselines=(b_num, b_cat), target=k,
                                        n_steps=N_STEPS, method="riemann_right")
        np.testing.assert_allclose(res.values[0][..., k], a_num.numpy(), atol=1e-6)
        np.testing.assert_allclose(res.values[1][:, 0, k], a_a.sum(-1).numpy(), atol=1e-6)
        np.testing.assert_allclose(res.values[1][:, 1, k], a_b.sum(-1).numpy(), atol=1e-6)


# ------------------------------------------------------------------ completeness
def test_gradient_x_input_is_complete_on_a_model_linear_in_its_inputs():
    net = _mixed(linear=True)
    x_num, x_cat = _data()
    res = skx.Gradient(times_input=True, dtype="double").fit(net).explain([x_num, x_cat])
    # goal f(x) - g(0, 0): numeric inputs and embedding outputs at zero
    np.testing.assert_allclose(res.decomp_sum, res.decomp_goal, atol=1e-8)
    # the category column's share is the gradient times the embedding vector
    w = net.mlp[2].weight @ net.mlp[0].weight  # (3, 7)
    e_a = net.emb_a(x_cat[:, 0])
    expected = (e_a @ w[:, 2:5].T).detach().numpy()
    np.testing.assert_allclose(res.values[1][:, 0, :], expected, atol=1e-10)


def test_intgrad_baseline_is_the_mean_embedding_over_x_ref():
    net = _mixed(linear=True)
    x_num, x_cat = _data()
    r_num, r_cat = _data(20, seed=1)
    res = skx.IntegratedGradients(n=3, dtype="double").fit(net, [r_num, r_cat]).explain(
        [x_num, x_cat])
    np.testing.assert_allclose(res.decomp_sum, res.decomp_goal, atol=1e-8)  # exact: linear
    w = (net.mlp[2].weight @ net.mlp[0].weight).detach()
    mean_b = net.emb_b(r_cat[:, 1]).mean(0)
    expected = ((net.emb_b(x_cat[:, 1]) - mean_b) @ w[:, 5:].T).detach().numpy()
    np.testing.assert_allclose(res.values[1][:, 1, :], expected, atol=1e-10)


def test_expected_gradients_with_one_reference_row_equals_intgrad():
    net = _mixed()
    x_num, x_cat = _data()
    ref = [x_num[:1] * 0.5, torch.tensor([[3, 1]])]
    eg = skx.ExpectedGradients(n=4, random_state=0, dtype="double").fit(net, ref)
    res = eg.explain([x_num, x_cat])
    assert np.isfinite(res.values[1]).all() and np.abs(res.values[1]).sum() > 0
    lin = _mixed(linear=True)
    a = skx.ExpectedGradients(n=4, random_state=0, dtype="double").fit(lin, ref).explain(
        [x_num, x_cat])
    b = skx.IntegratedGradients(n=4, dtype="double").fit(lin, ref).explain([x_num, x_cat])
    for va, vb in zip(a.values, b.values):
        np.testing.assert_allclose(va, vb, atol=1e-10)
    np.testing.assert_allclose(a.decomp_sum, a.decomp_goal, atol=1e-8)


def test_smoothgrad_leaves_the_embedding_outputs_without_noise():
    net = _mixed(linear=True)
    x_num, x_cat = _data()
    sg = skx.SmoothGrad(n=5, noise_level=0.5, times_input=True, random_state=0,
                        dtype="double").fit(net, [x_num, x_cat]).explain([x_num, x_cat])
    gi = skx.Gradient(times_input=True, dtype="double").fit(net).explain([x_num, x_cat])
    # linear model: constant gradient, so only noise on the inputs changes x Input
    np.testing.assert_allclose(sg.values[1], gi.values[1], atol=1e-10)
    assert np.abs(sg.values[0] - gi.values[0]).max() > 1e-3  # the numeric inputs are noisy


# ------------------------------------------------------------------ other layouts
def test_float_input_with_a_code_column_cast_by_the_model():
    torch.manual_seed(0)
    net = FloatCodes().double()
    X = torch.cat([torch.randn(5, 2, dtype=torch.float64),
                   torch.tensor([[0.0], [2.0], [1.0], [1.0], [0.0]], dtype=torch.float64)], 1)
    res = skx.Gradient(times_input=True, dtype="double").fit(net).explain(X)
    w = (net.mlp[2].weight @ torch.diag(1 - torch.tanh(
        net.mlp[0](torch.cat([X[:, :2], net.emb(X[:, 2].long())], 1))[0]) ** 2)
         @ net.mlp[0].weight).detach()  # gradient at row 0
    e = net.emb(X[:1, 2].long()).detach()
    np.testing.assert_allclose(res.values[0, 2, :], (e @ w[:, 2:].T)[0].numpy(), atol=1e-10)
    np.testing.assert_allclose(res.values[0, :2, :], (X[0, :2, None] * w[:, :2].T).numpy(),
                               atol=1e-10)


def test_token_sequence_with_positional_embedding():
    torch.manual_seed(0)
    net = Tokens().double()
    X = torch.randint(0, 10, (4, 5))
    base = torch.zeros(1, 5, dtype=torch.int64)
    res = skx.IntegratedGradients(n=200, dtype="double").fit(net, base).explain(X)
    assert res.values.shape == (4, 5, 2)  # one value per token position
    assert np.abs(res.decomp_sum - res.decomp_goal).max() < 1e-3
    f = net(X) - net(base)
    np.testing.assert_allclose(res.decomp_goal, f.detach().numpy(), atol=1e-12)


def test_skorch_classifier_equals_its_module():
    from skorch import NeuralNetClassifier

    class Classifier(Mixed):
        def forward(self, x_num, x_cat):
            return torch.softmax(super().forward(x_num, x_cat), dim=-1)

    x_num, x_cat = _data(30)
    y = (x_num[:, 0] > 0).long().numpy() + (x_cat[:, 0] > 1).numpy()
    torch.manual_seed(0)
    net = NeuralNetClassifier(Classifier, max_epochs=2, lr=0.1, batch_size=10,
                              train_split=None, verbose=0)
    net.fit({"x_num": x_num.float().numpy(), "x_cat": x_cat.numpy()}, y)
    snap = _snapshot(net.module_)
    X = [x_num[:4].float().numpy(), x_cat[:4].numpy()]
    res = skx.IntegratedGradients(n=10, dtype="double").fit(net, X).explain(X, output_idx=[1, 2])
    assert res.output_names == [[1, 2]]
    plain = skx.IntegratedGradients(n=10, dtype="double", ignore_last_act=False).fit(
        net.module_, X).explain(X, output_idx=[1, 2])
    assert np.abs(res.values[1]).sum() > 0
    # ignore_last_act drops skorch's softmax only: the module's own softmax stays
    for a, b in zip(res.values, plain.values):
        np.testing.assert_allclose(a, b, atol=1e-12)
    _assert_same(net.module_, snap)


# ------------------------------------------------------------------ safety and errors
@pytest.mark.parametrize("cls", [skx.Gradient, skx.SmoothGrad, skx.IntegratedGradients,
                                 skx.ExpectedGradients])
def test_user_model_is_bit_identical_afterwards(cls):
    net = _mixed()
    net.train()
    net.emb_a.weight.requires_grad_(False)
    snap = _snapshot(net)
    x_num, x_cat = _data()
    kw = {"random_state": 0} if cls in (skx.SmoothGrad, skx.ExpectedGradients) else {}
    ex = cls(n=3, **kw) if cls is not skx.Gradient else cls()
    ex.fit(net, [x_num, x_cat]).explain([x_num, x_cat])
    with pytest.raises(ValueError):
        ex.explain([x_num, x_cat + 10])
    _assert_same(net, snap)
    assert net.training


def test_code_out_of_range_names_the_column_and_the_embedding():
    net = _mixed()
    x_num, x_cat = _data()
    ig = skx.IntegratedGradients(n=3).fit(net, [x_num, x_cat])
    bad = x_cat.clone()
    bad[2, 1] = 5
    with pytest.raises(ValueError, match=r"code 5 in row 2 \(fed by column 1 of X\[1\]\) is out "
                                         r"of range for nn.Embedding 'emb_b' with 5 categories"):
        ig.explain([x_num, bad])
    bad[2, 1] = -1
    with pytest.raises(ValueError, match="code -1 in row 2"):
        ig.explain([x_num, bad])
    with pytest.raises(ValueError, match="out of range for nn.Embedding 'emb_a'"):
        skx.IntegratedGradients(n=3).fit(net, [x_num, x_cat + 4])


def test_float_codes_are_refused():
    net = _mixed()
    x_num, x_cat = _data()
    ig = skx.IntegratedGradients(n=3).fit(net, [x_num, x_cat])
    with pytest.raises(TypeError, match=r"X\[1\] holds floating point values.*integer"):
        ig.explain([x_num, x_cat.double()])
    with pytest.raises(TypeError, match="nn.Embedding 'emb_a' received floating point"):
        skx.IntegratedGradients(n=3).fit(net, [x_num, x_cat.double() + 0.5])
    with pytest.raises(TypeError, match="nn.Embedding 'emb_a' received floating point .*int64"):
        skx.Gradient().fit(net).explain([x_num, x_cat.double()])


def test_embeddings_parameter():
    net = _mixed()
    x_num, x_cat = _data()
    with pytest.raises(ValueError, match="'mlp.0' is a Linear, not an nn.Embedding"):
        skx.Gradient(embeddings=["mlp.0"]).fit(net)
    with pytest.raises(ValueError, match="no submodule 'nope'"):
        skx.Gradient(embeddings=["nope"]).fit(net)
    with pytest.raises(ValueError, match="'embeddings' parameter"):
        skx.Gradient(embeddings="all").fit(net)
    # None: the model is run as it is (the codes as floats fail with the generic message)
    with pytest.raises(TypeError, match="need bool / integer inputs"):
        skx.Gradient(embeddings=None).fit(net).explain([x_num, x_cat])
    both = skx.Gradient(times_input=True, dtype="double").fit(net).explain([x_num, x_cat])
    listed = skx.Gradient(times_input=True, dtype="double",
                          embeddings=["emb_a", "emb_b"]).fit(net).explain([x_num, x_cat])
    np.testing.assert_array_equal(both.values[1], listed.values[1])


def test_propagation_methods_refuse_embeddings_and_point_to_the_gradient_family():
    class Direct(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(5, 2)
            self.lin = nn.Linear(2, 1)

        def forward(self, x):
            return self.lin(self.emb(x * 1).flatten(1))  # computed ids: refused

    from sknn_explain.convert.errors import UnsupportedLayerError

    X = torch.randint(0, 5, (4, 1))
    for cls in (skx.LRP, skx.DeepLift, skx.DeepSHAP):
        with pytest.raises(UnsupportedLayerError, match="nn.Embedding at 'emb'"):
            cls().fit(Direct(), X)
    # ... and the claim of that message holds: the gradient methods work on it
    res = skx.IntegratedGradients(n=5).fit(Direct(), X).explain(X)
    assert res.values.shape == (4, 1, 1)


def test_fitted_explainer_pickles_and_explains_the_same():
    net = _mixed()
    x_num, x_cat = _data()
    ig = skx.IntegratedGradients(n=4, dtype="double").fit(net, [x_num, x_cat])
    first = ig.explain([x_num, x_cat]).values
    again = pickle.loads(pickle.dumps(ig)).explain([x_num, x_cat]).values
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)


def test_column_groups_describe_the_encoded_space():
    net = _mixed()
    x_num, x_cat = _data()
    ig = skx.IntegratedGradients(n=4, dtype="double").fit(net, [x_num, x_cat])
    model = ig.model_
    groups = model.column_groups([(2,), (2,)], [3, 2], names=["u", "v", "a", "b"])
    assert groups.names == ["u", "v", "a", "b"]
    # the code column 'a' groups its own (zero-gradient) feature and emb_a's 3 dimensions
    assert groups.groups == [[0], [1], [2, 4, 5, 6], [3, 7, 8]]
    assert groups.encoded_names[4:7] == ["a:emb_a[0]", "a:emb_a[1]", "a:emb_a[2]"]
    encoded = np.random.default_rng(0).normal(size=(3, 9, 2))
    summed = groups.sum(encoded, axis=1)
    np.testing.assert_allclose(summed[:, 2], encoded[:, [2, 4, 5, 6]].sum(1))
