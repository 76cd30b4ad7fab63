"""Property-based checks over random networks (hypothesis, derandomized).

Random MLPs, CNNs and residual / concatenating nets (random widths, depths, activations,
with and without bias, BatchNorm in eval mode, average / max pooling) must satisfy:

(a) the converted graph equals the model on fresh data;
(b) DeepLift (rescale, reveal_cancel) and DeepSHAP sum to ``f(x) - f(x_ref)`` (resp. the mean
    over the references), with the goal computed on the *original* model;
(c) LRP ("simple", and "epsilon" with a tiny epsilon) conserves ``f(x)`` on bias-free ReLU nets;
(d) Gradient equals ``torch.autograd`` on the original model;
(e) the user's model is bit-identical afterwards (state_dict, training flags, requires_grad,
    .grad, hooks), also after a call that raises.

Everything runs in double precision so the tolerances can be tight. The default profile is
small enough for CI (50 examples per property, about 10-30 s on two cores); ``pytest -m
heavy`` runs the same properties with 300 examples each.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from _torch_models import assert_unchanged, snapshot
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as F

import sknn_explain as sx

CI = settings(
    max_examples=50, derandomize=True, deadline=None, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
HEAVY = settings(CI, max_examples=300)

ACTS = {
    "relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "softplus": nn.Softplus,
    "elu": nn.ELU, "leaky_relu": nn.LeakyReLU, "silu": nn.SiLU, "gelu": nn.GELU,
}
FUNCTIONAL = {
    "relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "softplus": F.softplus,
    "elu": F.elu, "leaky_relu": F.leaky_relu, "silu": F.silu, "gelu": F.gelu,
}
#: double precision: relative tolerance of the exact identities
TOL = 1e-8


# ---------------------------------------------------------------------------- random models
def _random_batchnorm(bn: nn.Module, gen: torch.Generator) -> nn.Module:
    """BatchNorm with non-trivial running statistics and affine parameters, eval mode."""
    n = bn.num_features
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(n, generator=gen) * 0.5)
        bn.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
        bn.weight.copy_(torch.rand(n, generator=gen) + 0.5)
        bn.bias.copy_(torch.randn(n, generator=gen) * 0.3)
    return bn.eval()


class ResMLP(nn.Module):
    """Stem, residual blocks ``h + block(h)``, optional two-branch concatenation, head."""

    def __init__(self, spec: dict, gen: torch.Generator) -> None:
        super().__init__()
        act, bias, w = ACTS[spec["act"]], spec["bias"], spec["width"]
        self.stem = nn.Linear(spec["n_in"], w, bias=bias)
        blocks = []
        for _ in range(spec["depth"]):
            layers = [act(), nn.Linear(w, w, bias=bias)]
            if spec["bn"]:
                layers.append(_random_batchnorm(nn.BatchNorm1d(w), gen))
            blocks.append(nn.Sequential(*layers))
        self.blocks = nn.ModuleList(blocks)
        self.act = act()
        self.act_name, self.functional = spec["act"], spec["functional"]
        self.concat = spec["concat"]
        if self.concat:
            self.branch_a = nn.Linear(w, 3, bias=bias)
            self.branch_b = nn.Linear(w, 2, bias=bias)
            w = 5
        self.head = nn.Linear(w, spec["n_out"], bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        for block in self.blocks:
            h = h + block(h)
        if self.functional:  # torch functions and a constant factor instead of modules
            h = 0.5 * FUNCTIONAL[self.act_name](h)
        else:
            h = self.act(h)
        if self.concat:
            h = torch.cat([self.branch_a(h), self.act(self.branch_b(h))], dim=1)
        return self.head(h)


class ResCNN(nn.Module):
    """Conv stem, a residual conv block, optional channel concatenation, pooling, dense head."""

    def __init__(self, spec: dict, gen: torch.Generator) -> None:
        super().__init__()
        act, bias, c = ACTS[spec["act"]], spec["bias"], spec["width"]
        self.stem = nn.Conv2d(spec["channels"], c, 3, padding=1, bias=bias)
        layers = [act(), nn.Conv2d(c, c, 3, padding=1, bias=bias)]
        if spec["bn"]:
            layers.append(_random_batchnorm(nn.BatchNorm2d(c), gen))
        self.block = nn.Sequential(*layers)
        self.act = act()
        self.concat = spec["concat"]
        self.side = nn.Conv2d(c, 2, 1, bias=bias) if self.concat else None
        self.pool = _pool(spec["pool"])
        c_out = c + 2 if self.concat else c
        size = spec["size"] // 2 if self.pool is not None else spec["size"]
        self.head = nn.Linear(c_out * size * size, spec["n_out"], bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        h = self.act(h + self.block(h))
        if self.concat:
            h = torch.cat([h, self.side(h)], dim=1)
        if self.pool is not None:
            h = self.pool(h)
        return self.head(torch.flatten(h, 1))


def _pool(kind: str | None) -> nn.Module | None:
    return {"avg": nn.AvgPool2d(2), "max": nn.MaxPool2d(2), None: None}[kind]


def _mlp(spec: dict, gen: torch.Generator) -> nn.Module:
    act, bias = ACTS[spec["act"]], spec["bias"]
    layers, width = [], spec["n_in"]
    for h in spec["hidden"]:
        layers.append(nn.Linear(width, h, bias=bias))
        if spec["bn"]:
            layers.append(_random_batchnorm(nn.BatchNorm1d(h), gen))
        layers.append(act())
        width = h
    layers.append(nn.Linear(width, spec["n_out"], bias=bias))
    return nn.Sequential(*layers)


def _cnn(spec: dict, gen: torch.Generator) -> nn.Module:
    act, bias = ACTS[spec["act"]], spec["bias"]
    layers, c, size = [], spec["channels"], spec["size"]
    for out_c, k in spec["convs"]:
        pad = k // 2
        layers.append(nn.Conv2d(c, out_c, k, padding=pad, bias=bias))
        size = size + 2 * pad - k + 1
        if spec["bn"]:
            layers.append(_random_batchnorm(nn.BatchNorm2d(out_c), gen))
        layers.append(act())
        c = out_c
    if spec["pool"] is not None and size >= 2:
        layers.append(_pool(spec["pool"]))
        size //= 2
    layers += [nn.Flatten(), nn.Linear(c * size * size, spec["n_out"], bias=bias)]
    return nn.Sequential(*layers)


def build(spec: dict) -> tuple[nn.Module, tuple[int, ...]]:
    """The model described by ``spec`` (eval mode, float32) and its per-sample input shape."""
    torch.manual_seed(spec["seed"])
    gen = torch.Generator().manual_seed(spec["seed"] + 1)
    kind = spec["kind"]
    if kind == "mlp":
        model, shape = _mlp(spec, gen), (spec["n_in"],)
    elif kind == "res":
        model, shape = ResMLP(spec, gen), (spec["n_in"],)
    elif kind == "cnn":
        model, shape = _cnn(spec, gen), (spec["channels"], spec["size"], spec["size"])
    else:
        model, shape = ResCNN(spec, gen), (spec["channels"], spec["size"], spec["size"])
    return model.eval(), shape


@st.composite
def specs(draw, relu_bias_free: bool = False) -> dict:
    """A random architecture. ``relu_bias_free``: ReLU, no bias, no BatchNorm (LRP-exact)."""
    kind = draw(st.sampled_from(["mlp", "cnn", "res", "rescnn"]))
    spec = {
        "kind": kind,
        "seed": draw(st.integers(0, 10_000)),
        "act": "relu" if relu_bias_free else draw(st.sampled_from(sorted(ACTS))),
        "bias": False if relu_bias_free else draw(st.booleans()),
        "bn": False if relu_bias_free else draw(st.booleans()),
        "n_out": draw(st.integers(1, 4)),
        "concat": draw(st.booleans()),
        # integer-valued data: ties in max pooling, inputs equal to the reference
        "integers": draw(st.booleans()),
    }
    if kind == "mlp":
        spec["n_in"] = draw(st.integers(1, 6))
        spec["hidden"] = draw(st.lists(st.integers(1, 8), min_size=1, max_size=3))
    elif kind == "res":
        spec["n_in"] = draw(st.integers(1, 6))
        spec["width"] = draw(st.integers(2, 8))
        spec["depth"] = draw(st.integers(1, 2))
        spec["functional"] = draw(st.booleans())
    elif kind == "cnn":
        spec["channels"] = draw(st.integers(1, 3))
        spec["size"] = draw(st.integers(3, 7))
        spec["convs"] = draw(st.lists(
            st.tuples(st.integers(1, 4), st.sampled_from([1, 2, 3])), min_size=1, max_size=2))
        spec["pool"] = draw(st.sampled_from([None, "avg", "max"]))
    else:
        spec["channels"] = draw(st.integers(1, 2))
        spec["size"] = draw(st.sampled_from([4, 6]))
        spec["width"] = draw(st.integers(1, 3))
        spec["pool"] = draw(st.sampled_from([None, "avg", "max"]))
    return spec


def data(spec: dict, shape: tuple[int, ...], n: int, offset: int = 0,
         scale: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(spec["seed"] + 7919 * (offset + 1))
    if spec.get("integers"):
        return rng.integers(-2, 3, size=(n, *shape)).astype(np.float64) * scale
    return rng.standard_normal((n, *shape)) * scale


def reference_model(model: nn.Module) -> nn.Module:
    """A double-precision copy of the user's model, to compute the truth with."""
    return copy.deepcopy(model).double().eval()


def f(model: nn.Module, X: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(X)).numpy()


def assert_close(actual: np.ndarray, expected: np.ndarray, tol: float = TOL, what: str = ""):
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    err = float(np.abs(np.asarray(actual) - expected).max(initial=0.0))
    assert err <= tol * scale, f"{what}: max abs error {err:.3g} > {tol:.1g} * {scale:.3g}"


def all_outputs(spec: dict) -> list[int]:
    return list(range(spec["n_out"]))


# ---------------------------------------------------------------------------- the properties
def check_convert(spec: dict) -> None:
    model, shape = build(spec)
    graph = sx.convert(model, input_shape=shape, dtype="double")
    X = data(spec, shape, 5, offset=1, scale=3.0)  # fresh data, larger than the check's
    out = graph(torch.from_numpy(X))
    assert len(out) == 1
    assert_close(out[0].detach().numpy(), f(reference_model(model), X), what="graph vs model")


def check_deeplift(spec: dict, rule_name: str) -> None:
    model, shape = build(spec)
    ref = data(spec, shape, 1, offset=2)
    X = np.concatenate([ref, data(spec, shape, 4, offset=3)])  # one row equals the reference
    res = sx.DeepLift(rule_name=rule_name, dtype="double").fit(model, ref).explain(
        X, output_idx=all_outputs(spec))
    truth = reference_model(model)
    goal = f(truth, X) - f(truth, ref)
    assert_close(res.decomp_goal, goal, what="DeepLift goal")
    assert_close(res.decomp_sum, goal, what="DeepLift sum")


def check_deepshap(spec: dict) -> None:
    model, shape = build(spec)
    refs = data(spec, shape, 3, offset=2)
    X = np.concatenate([refs[:1], data(spec, shape, 3, offset=3)])
    res = sx.DeepSHAP(dtype="double", random_state=0).fit(model, refs).explain(
        X, output_idx=all_outputs(spec))
    truth = reference_model(model)
    goal = f(truth, X) - f(truth, refs).mean(0, keepdims=True)
    assert_close(res.decomp_goal, goal, what="DeepSHAP goal")
    assert_close(res.decomp_sum, goal, what="DeepSHAP sum")


def check_lrp_conservation(spec: dict) -> None:
    model, shape = build(spec)
    X = data(spec, shape, 4, offset=4)
    fx = f(reference_model(model), X)
    for rule_name, rule_param in (("simple", None), ("epsilon", 1e-12)):
        # Add split proportionally (innsight's default "equal" split drops the share of a
        # summand that is exactly 0, e.g. a residual branch behind a dead ReLU: documented)
        rules = {key: rule_name for key in ("Dense", "Conv", "AvgPool", "MaxPool", "Add")}
        params = None if rule_param is None else {
            key: rule_param for key in ("Dense", "Conv", "AvgPool", "MaxPool", "Add")}
        res = sx.LRP(rule_name=rules, rule_param=params, dtype="double").fit(
            model).explain(X, output_idx=all_outputs(spec))
        assert_close(res.decomp_sum, fx, tol=1e-7, what=f"LRP {rule_name} sum")


def check_gradient(spec: dict) -> None:
    model, shape = build(spec)
    X = data(spec, shape, 4, offset=5)
    res = sx.Gradient(dtype="double").fit(model).explain(X, output_idx=all_outputs(spec))
    truth = reference_model(model)
    x = torch.from_numpy(X).requires_grad_(True)
    out = truth(x)
    expected = np.stack(
        [torch.autograd.grad(out[:, j].sum(), x, retain_graph=True)[0].numpy()
         for j in range(spec["n_out"])], axis=-1)
    assert_close(res.values, expected, what="Gradient vs autograd")


def _noop_hook(*args):
    return None


def check_unchanged(spec: dict) -> None:
    model, shape = build(spec)
    rng = np.random.default_rng(spec["seed"])
    # a user's model in an arbitrary state: train or eval, some frozen parameters, stale
    # .grad buffers, forward (pre-)hooks
    model.train(bool(rng.integers(2)))
    params = list(model.parameters())
    for p in params:
        p.requires_grad_(bool(rng.integers(2)) or p is params[-1])
    model(torch.randn(2, *shape)).sum().backward()
    model.register_forward_hook(_noop_hook)
    next(iter(model.children())).register_forward_pre_hook(_noop_hook)
    before = snapshot(model)
    X = data(spec, shape, 3, offset=6)
    bad = data(spec, (*shape[:-1], shape[-1] + 1), 2)
    explainers = [
        sx.Gradient(dtype="double"), sx.IntegratedGradients(n=3), sx.DeepLift(),
        sx.LRP(rule_name="epsilon"), sx.DeepSHAP(limit_ref=2, random_state=0),
    ]
    graph = sx.convert(model, input_shape=shape)
    assert graph is not None
    assert_unchanged(model, before)
    for ex in explainers:
        ex.fit(model, X)
        assert_unchanged(model, before)
        ex.explain(X)
        assert_unchanged(model, before)
        with pytest.raises(ValueError):
            ex.explain(bad)
        assert_unchanged(model, before)
    # the forward itself still behaves as before
    assert all(math.isfinite(v) for v in f(reference_model(model), X).ravel())


# ---------------------------------------------------------------------------- the tests
def _property(strategy, check, profile, **kwargs):
    @profile
    @given(spec=strategy)
    def test(spec):
        event(spec["kind"])
        check(spec, **kwargs)

    return test


_CASES = {
    "convert_equals_model": (specs(), check_convert, {}),
    "deeplift_rescale_sums_to_delta": (specs(), check_deeplift, {"rule_name": "rescale"}),
    "deeplift_reveal_cancel_sums_to_delta": (
        specs(), check_deeplift, {"rule_name": "reveal_cancel"}),
    "deepshap_sums_to_delta": (specs(), check_deepshap, {}),
    "lrp_conserves_relevance": (specs(relu_bias_free=True), check_lrp_conservation, {}),
    "gradient_equals_autograd": (specs(), check_gradient, {}),
    "model_unchanged": (specs(), check_unchanged, {}),
}

for _name, (_strategy, _check, _kwargs) in _CASES.items():
    globals()[f"test_{_name}"] = _property(_strategy, _check, CI, **_kwargs)
    globals()[f"test_{_name}_heavy"] = pytest.mark.heavy(
        _property(_strategy, _check, HEAVY, **_kwargs))
