"""Issue #15 item 1: ShapleyValueSampling (captum's) — efficiency, exact Shapley values with
every permutation, agreement with captum, seeding, errors."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from _torch_models import assert_unchanged, snapshot
from _torch_models import perturbation_cnn as _cnn
from _torch_models import perturbation_mlp as _mlp
from _torch_models import seeded_randn as _x
from torch import nn

from sknn_explain import ShapleyValueSampling

MASK = [0, 0, 1, 2, 3]  # 4 groups over 5 columns


def _first_of_each_group(mask) -> list[int]:
    labels = np.asarray(mask)
    return [int(np.flatnonzero(labels == g)[0]) for g in np.unique(labels)]


def _brute_force_shapley(net, X, mask, baseline) -> np.ndarray:
    """Exact Shapley values of the groups against the baseline, ``(n, groups, K)``."""
    labels = np.asarray(mask)
    groups = list(np.unique(labels))
    m = len(groups)

    def value(subset):
        keep = torch.as_tensor(np.isin(labels, [groups[j] for j in subset]))
        with torch.no_grad():
            return net(torch.where(keep, X, torch.full_like(X, baseline))).numpy()

    phi = np.zeros((X.shape[0], m, value([]).shape[1]))
    for i in range(m):
        others = [j for j in range(m) if j != i]
        for size in range(m):
            w = math.factorial(size) * math.factorial(m - size - 1) / math.factorial(m)
            for s in itertools.combinations(others, size):
                phi[:, i] += w * (value([*s, i]) - value(list(s)))
    return phi


@pytest.mark.parametrize("kw", [
    {"n_samples": 3, "random_state": 0},
    {"n_samples": 4, "antithetic": True, "random_state": 1, "baselines": 0.3},
    {"n_samples": 2, "random_state": 2, "feature_mask": MASK, "baselines": -0.5},
    {"n_samples": "all", "feature_mask": MASK},
])
def test_efficiency_holds_exactly_for_every_row(kw):
    net, X = _mlp(), _x(7, 5)
    res = ShapleyValueSampling(**kw).fit(net).explain(X, output_idx=[0, 1, 2])
    cols = _first_of_each_group(kw.get("feature_mask", range(5)))
    total = np.asarray(res.values)[:, cols].sum(1)
    with torch.no_grad():
        expected = (net(X) - net(torch.full((1, 5), kw.get("baselines", 0.0),
                                            dtype=torch.float64))).numpy()
    np.testing.assert_allclose(total, expected, rtol=0, atol=1e-10)


def test_efficiency_on_images_with_every_element_a_player():
    net, X = _cnn(), _x(2, 2, 6, 6)
    res = ShapleyValueSampling(n_samples=2, random_state=0).fit(net).explain(X)
    with torch.no_grad():
        expected = (net(X) - net(torch.zeros(1, 2, 6, 6, dtype=torch.float64))).numpy()
    np.testing.assert_allclose(np.asarray(res.values).sum((1, 2, 3)), expected, rtol=0,
                               atol=1e-10)


@pytest.mark.parametrize("baseline", [0.0, 0.4])
def test_all_permutations_equal_brute_force_shapley(baseline):
    net, X = _mlp(), _x(6, 5, seed=3)
    res = ShapleyValueSampling(n_samples="all", feature_mask=MASK, baselines=baseline).fit(
        net).explain(X, output_idx=[0, 1, 2])
    ref = _brute_force_shapley(net, X, MASK, baseline)
    values = np.asarray(res.values)
    np.testing.assert_allclose(values[:, _first_of_each_group(MASK)], ref, rtol=0, atol=1e-10)
    np.testing.assert_array_equal(values[:, 0], values[:, 1])  # group value on each element


@pytest.mark.parametrize("antithetic", [False, True])
def test_many_samples_converge_to_brute_force_shapley(antithetic):
    # Stated tolerance: 2000 permutations of 4 groups; the estimator's standard error is
    # below 0.01 here, 0.03 leaves > 3 standard errors.
    net, X = _mlp(), _x(4, 5, seed=4)
    res = ShapleyValueSampling(n_samples=2000, feature_mask=MASK, antithetic=antithetic,
                               random_state=0).fit(net).explain(X, output_idx=[0, 1, 2])
    ref = _brute_force_shapley(net, X, MASK, 0.0)
    np.testing.assert_allclose(np.asarray(res.values)[:, _first_of_each_group(MASK)], ref,
                               rtol=0, atol=0.03)


def test_equals_captum_exactly_on_an_additive_model():
    # every permutation gives the same marginal contributions, so any sample size matches;
    # captum accumulates its sums in float32 (a ``.float()`` cast), hence 1e-6
    captum_attr = pytest.importorskip("captum.attr")
    torch.manual_seed(2)
    net = nn.Sequential(nn.Linear(5, 3)).double()
    X = _x(6, 5, seed=5)
    res = ShapleyValueSampling(n_samples=3, feature_mask=MASK, baselines=0.2,
                               random_state=0).fit(net).explain(X, output_idx=[0, 1, 2])
    for t in range(3):
        ref = captum_attr.ShapleyValueSampling(net).attribute(
            X, baselines=0.2, target=t, feature_mask=torch.tensor([MASK]), n_samples=3)
        np.testing.assert_allclose(np.asarray(res.values)[..., t], ref.numpy(), rtol=0,
                                   atol=1e-6)


def test_matches_captum_in_expectation():
    # Stated tolerance: both estimate the same Shapley values from 1500 permutations each;
    # their difference has a standard error below 0.012 here, 0.05 is > 4 of them.
    captum_attr = pytest.importorskip("captum.attr")
    net, X = _mlp(), _x(3, 5, seed=6)
    res = ShapleyValueSampling(n_samples=1500, feature_mask=MASK, random_state=0).fit(
        net).explain(X, output_idx=[0, 1])
    torch.manual_seed(0)
    for t in range(2):
        ref = captum_attr.ShapleyValueSampling(net).attribute(
            X, target=t, feature_mask=torch.tensor([MASK]), n_samples=1500,
            perturbations_per_eval=64)
        np.testing.assert_allclose(np.asarray(res.values)[..., t], ref.numpy(), rtol=0,
                                   atol=0.05)


def test_seeded_reproducibility_and_batch_size_invariance():
    net, X = _mlp(), _x(5, 5, seed=7)
    a = ShapleyValueSampling(n_samples=4, random_state=3).fit(net).explain(X)
    b = ShapleyValueSampling(n_samples=4, random_state=3, batch_size=7).fit(net).explain(X)
    c = ShapleyValueSampling(n_samples=4, random_state=4).fit(net).explain(X)
    np.testing.assert_allclose(np.asarray(a.values), np.asarray(b.values), rtol=0, atol=1e-12)
    assert not np.allclose(np.asarray(a.values), np.asarray(c.values))


def test_antithetic_evaluates_each_permutation_reversed():
    explainer = ShapleyValueSampling(n_samples=5, antithetic=True, random_state=0)
    perms = explainer._permutations(4)
    assert perms.shape == (10, 4)
    np.testing.assert_array_equal(perms[5:], perms[:5, ::-1])


def test_every_model_call_respects_batch_size():
    calls = []

    class Spy(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(5, 2).double()

        def forward(self, x):
            if bool(torch.isfinite(x).all()):  # control flow: runs as a module, not a graph
                calls.append(int(x.shape[0]))
            return self.lin(x)

    ShapleyValueSampling(n_samples=3, batch_size=4, random_state=0).fit(Spy()).explain(
        _x(3, 5))
    assert calls and max(calls) <= 4


def test_model_is_untouched_also_when_explain_raises():
    net = _cnn()
    net.train()
    before = snapshot(net)
    X = _x(2, 2, 6, 6)
    ShapleyValueSampling(n_samples=2, random_state=0).fit(net).explain(X)
    with pytest.raises(ValueError, match="at most 8 groups"):
        ShapleyValueSampling(n_samples="all").fit(net).explain(X)
    assert_unchanged(net, before)
    assert net.training


@pytest.mark.parametrize("make,match", [
    (lambda: ShapleyValueSampling(n_samples=0), "n_samples"),
    (lambda: ShapleyValueSampling(n_samples="many"), "n_samples"),
    (lambda: ShapleyValueSampling(n_samples=True), "n_samples"),
    (lambda: ShapleyValueSampling(antithetic="yes"), "antithetic"),
    (lambda: ShapleyValueSampling(random_state="seed"), "random_state"),
    (lambda: ShapleyValueSampling(baselines=np.inf), "baselines"),
])
def test_bad_parameters_fail_at_fit(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make().fit(_mlp())


@pytest.mark.parametrize("make,match", [
    (lambda: ShapleyValueSampling(feature_mask=[0, 1]), "does not broadcast"),
    (lambda: ShapleyValueSampling(feature_mask=[0.5, 1, 2, 3, 4]), "integer group labels"),
    (lambda: ShapleyValueSampling(baselines=np.zeros(3)), "do not broadcast"),
])
def test_bad_shapes_give_clear_errors(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make().fit(_mlp()).explain(_x(2, 5))


def test_nonfinite_perturbed_outputs_warn_and_give_nan():
    class Log(nn.Module):
        def forward(self, x):
            return torch.log(x[:, :2]).sum(1, keepdim=True) + x[:, 2:].sum(1, keepdim=True)

    X = torch.tensor([[1.0, 2.0, 3.0, 4.0]], dtype=torch.float64)
    with pytest.warns(RuntimeWarning, match="perturbed"):
        res = ShapleyValueSampling(n_samples=2, random_state=0).fit(Log()).explain(X)
    assert np.isnan(np.asarray(res.values)).any()
