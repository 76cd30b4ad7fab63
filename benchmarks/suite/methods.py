"""What is compared: for each method, our explainer and its peers on one :class:`Case`.

A method entry gives ``ours(case) -> fitted explainer`` (fit is not timed: converting the
model is a one-off) and ``peers(case, targets) -> {peer label: {way: call}}`` where each call
returns ``(n, *input_shape, k)``. ``check`` says how the two sides are compared before timing:
``"exact"`` (same deterministic computation: max |ours - peer|) or ``"stat"`` (both draw
random noise / baselines / coalitions: the mean |ours - peer| relative to mean |peer|, which
shrinks with more samples but is not zero).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import sknn_explain as skx

from . import peers
from .models import Case

#: SmoothGrad noise: sd = NOISE_LEVEL * (max(X) - min(X)) on both sides
NOISE_LEVEL = 0.1


@dataclass(frozen=True)
class Method:
    name: str
    ours: Callable[[Case], object]
    peers: Callable[[Case, list[int]], dict[str, dict[str, Callable[[], object]]]]
    check: str
    tabular_only: bool = False
    rows: int | None = None  # explain only the first `rows` rows (slow peers)


def _captum(method: str, case: Case, targets: list[int], *, rows: int | None = None) -> dict:
    X = case.X[:agnostic_rows(case, rows)]
    sd = NOISE_LEVEL * float(X.max() - X.min())
    n_steps = lime_nsamples(case) if method == "LIME" else case.n_steps
    fn = peers.captum_attribute(method, case.model, X, case.X_ref, n_steps, sd)
    ways = {"looped": partial(peers.looped, fn, X, targets)}
    if len(targets) > 1:
        ways["batched"] = partial(peers.batched, fn, X, targets)
    return {"captum": ways}


def _zennit(case: Case, targets: list[int]) -> dict:
    lrp = peers.ZennitLRP(case.model)
    ways = {"looped": partial(peers.looped, lrp.attribute, case.X, targets)}
    if len(targets) > 1:
        ways["batched"] = partial(peers.batched, lrp.attribute, case.X, targets)
    return {"zennit": ways}


def _deepshap_peers(case: Case, targets: list[int]) -> dict:
    out = _captum("DeepSHAP", case, targets)
    if len(targets) == case.n_out:  # shap explains every output, it cannot select
        out["shap"] = {"all outputs": partial(peers.shap_deep, case.model, case.X, case.X_ref)}
    return out


def kernel_nsamples(case: Case) -> int:
    """shap's ``nsamples="auto"``: ``2 M + 2048`` coalitions (``2 M + 64`` when quick)."""
    return 2 * case.X.shape[1] + (64 if case.quick else 2048)


def lime_nsamples(case: Case) -> int:
    return 100 if case.quick else 1000


def agnostic_rows(case: Case, rows: int | None) -> int | None:
    """KernelSHAP / LIME explain only a few rows (their peers take seconds per row)."""
    return None if rows is None else (1 if case.quick else rows)


def _kernel_peers(case: Case, targets: list[int], rows: int) -> dict:
    def call():
        X = case.X[:agnostic_rows(case, rows)]
        values = peers.shap_kernel(case.model, X, case.X_ref, kernel_nsamples(case))
        return values[..., targets]

    return {"shap": {"all outputs": call}}


def _lrp_rules(case: Case) -> dict:
    """LRP-epsilon 0.01 on Dense/Conv; residual sums split in proportion (zennit's Norm)."""
    return dict(rule_name={"Dense": "epsilon", "Conv": "epsilon", "Add": "epsilon",
                           "AvgPool": "simple"},
                rule_param={"Dense": 0.01, "Conv": 0.01, "Add": 0.0})


KERNEL_ROWS, LIME_ROWS = 10, 3

METHODS = [
    Method("Gradient", lambda c: skx.Gradient().fit(c.model),
           partial(_captum, "Gradient"), "exact"),
    Method("x Input", lambda c: skx.Gradient(times_input=True).fit(c.model),
           partial(_captum, "x Input"), "exact"),
    Method("SmoothGrad", lambda c: skx.SmoothGrad(
        n=c.n_steps, noise_level=NOISE_LEVEL, noise_scale="batch", random_state=0).fit(c.model),
        partial(_captum, "SmoothGrad"), "stat"),
    Method("IntegratedGradients", lambda c: skx.IntegratedGradients(n=c.n_steps).fit(
        c.model, c.X_ref[:1]), partial(_captum, "IntegratedGradients"), "exact"),
    Method("ExpectedGradients", lambda c: skx.ExpectedGradients(
        n=c.n_steps, random_state=0).fit(c.model, c.X_ref),
        partial(_captum, "ExpectedGradients"), "stat"),
    Method("DeepLift", lambda c: skx.DeepLift().fit(c.model, c.X_ref[:1]),
           partial(_captum, "DeepLift"), "exact"),
    Method("DeepSHAP", lambda c: skx.DeepSHAP(limit_ref=len(c.X_ref)).fit(c.model, c.X_ref),
           _deepshap_peers, "exact"),
    Method("LRP epsilon", lambda c: skx.LRP(**_lrp_rules(c)).fit(c.model), _zennit, "exact"),
    Method("KernelSHAP", lambda c: skx.KernelSHAP(
        n_samples=kernel_nsamples(c), limit_ref=None, random_state=0, dtype="float").fit(
        c.model, c.X_ref), partial(_kernel_peers, rows=KERNEL_ROWS), "stat",
        tabular_only=True, rows=KERNEL_ROWS),
    Method("LIME", lambda c: skx.LIME(
        n_samples=lime_nsamples(c), random_state=0, dtype="float").fit(c.model, c.X_ref),
        partial(_captum, "LIME", rows=LIME_ROWS), "n/a",
        tabular_only=True, rows=LIME_ROWS),
]


def explain_ours(explainer, case: Case, targets: list[int], rows: int | None):
    """Our attributions ``(n, *input_shape, k)`` as a numpy array."""
    X = case.X[:agnostic_rows(case, rows)]
    return explainer.explain(X, output_idx=targets).values


def method_names() -> list[str]:
    return [m.name for m in METHODS]


def methods_for(case: Case) -> list[Method]:
    return [m for m in METHODS if case.tabular or not m.tabular_only]

