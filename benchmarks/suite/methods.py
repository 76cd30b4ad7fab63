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

import numpy as np
import torch

import sknn_explain as skx

from . import peers
from .models import Case

#: the way of a peer call that explains every output at once (it cannot select outputs)
ALL_OUTPUTS = "all outputs"

#: SmoothGrad noise: sd = NOISE_LEVEL * (max(X) - min(X)) on both sides
NOISE_LEVEL = 0.1


@dataclass(frozen=True)
class Method:
    name: str
    ours: Callable[[Case], object]
    peers: Callable[[Case, list[int]], dict[str, dict[str, Callable[[], object]]]]
    check: str
    tabular_only: bool = False
    #: explain only the first ``rows`` rows (slow peers); an int or ``rows(case) -> int``
    rows: int | Callable[[Case], int] | None = None
    layers: dict[str, str] | None = None  # layer methods: case name -> module path (others skip)


def _captum(method: str, case: Case, targets: list[int], *, rows: int | None = None) -> dict:
    X = case.X[:agnostic_rows(case, rows)]
    sd = NOISE_LEVEL * float(X.max() - X.min())
    n_steps = lime_nsamples(case) if method == "LIME" else case.n_steps
    fn = peers.captum_attribute(method, case.model, X, case.X_ref, n_steps, sd)
    return {"captum": _ways(fn, X, targets, CAPTUM_EXPAND[method](case))}


#: rows that each captum method makes of one input row in one model call (see
#: ``peers.batched``); None: the method splits its work itself (internal_batch_size,
#: nt_samples_batch_size, perturbations_per_eval), its batched way is one call
CAPTUM_EXPAND = {
    "Gradient": lambda case: 1, "x Input": lambda case: 1, "DeepLift": lambda case: 2,
    "DeepSHAP": lambda case: 2 * len(case.X_ref),
    "ExpectedGradients": lambda case: case.n_steps,
    "IntegratedGradients": lambda case: None, "SmoothGrad": lambda case: None,
    "LIME": lambda case: None,
}


def _zennit(case: Case, targets: list[int]) -> dict:
    lrp = peers.ZennitLRP(case.model)
    return {"zennit": _ways(lrp.attribute, case.X, targets, expand=1)}


def _deepshap_peers(case: Case, targets: list[int]) -> dict:
    out = _captum("DeepSHAP", case, targets, rows=DEEPSHAP_ROWS)
    if len(targets) == case.n_out:  # shap explains every output, it cannot select
        X = case.X[:agnostic_rows(case, DEEPSHAP_ROWS)]
        out["shap"] = {ALL_OUTPUTS: partial(peers.shap_deep, case.model, X, case.X_ref)}
    return out


def kernel_nsamples(case: Case) -> int:
    """shap's ``nsamples="auto"``: ``2 M + 2048`` coalitions (``2 M + 64`` when quick)."""
    return 2 * case.X.shape[1] + (64 if case.quick else 2048)


def lime_nsamples(case: Case) -> int:
    return 100 if case.quick else 1000


def standard_or_full(standard: int, full: int) -> Callable[[Case], int]:
    """A row count that depends on the suite's size (``--full`` or the standard)."""
    return lambda case: full if case.full else standard


def agnostic_rows(case: Case, rows: int | Callable[[Case], int] | None) -> int | None:
    """KernelSHAP / LIME / DeepSHAP explain only a few rows (their peers take seconds per
    row); ``rows`` is a count or a function of the case."""
    if rows is None:
        return None
    return 1 if case.quick else (rows(case) if callable(rows) else rows)


def _kernel_peers(case: Case, targets: list[int], rows: int) -> dict:
    """shap explains every output in one call (sliced to ``targets`` by the worker, which
    times the call once per model and reuses it for every output count)."""
    X = case.X[:agnostic_rows(case, rows)]
    return {"shap": {ALL_OUTPUTS: partial(peers.shap_kernel, case.model, X, case.X_ref,
                                          kernel_nsamples(case))}}


def _lrp_rules(case: Case) -> dict:
    """LRP-epsilon 0.01 on Dense/Conv; residual sums split in proportion (zennit's Norm)."""
    return dict(rule_name={"Dense": "epsilon", "Conv": "epsilon", "Add": "epsilon",
                           "AvgPool": "simple"},
                rule_param={"Dense": 0.01, "Conv": 0.01, "Add": 0.0})


def _ways(fn, X: torch.Tensor, targets: list[int], expand: int | None = None) -> dict:
    """The looped and (for several targets) the batched way of a peer's ``attribute``;
    ``expand`` as in ``peers.batched`` (None: one call)."""
    ways = {"looped": partial(peers.looped, fn, X, targets)}
    if len(targets) > 1:
        ways["batched"] = partial(peers.batched, fn, X, targets, expand=expand)
    return ways


#: patches per spatial axis (default 8); the 100-class CNN's per-target peer loops over 64
#: patches took minutes per cell, so it has 4 x 4 patches of 16 x 16 pixels
PATCHES = {"CNN 3x64x64, 100 classes": 4}


def patch_window(case: Case) -> tuple[int, ...]:
    """Occlusion window (= stride): 4 features; all channels x 1/8 of each spatial axis."""
    shape = tuple(case.X.shape[1:])
    if len(shape) == 1:
        return (4,)
    per_axis = PATCHES.get(case.name, 8)
    return (shape[0], *[max(1, s // per_axis) for s in shape[1:]])


def shapley_samples(case: Case) -> int:
    """ShapleyValueSampling permutations: the path steps on tabular data, 5 on images and
    signals, 2 on the 100-class CNN (captum's per-target loop took 48 s per call on the
    ResNet with 20, and loops over 100 targets on the large CNN)."""
    if case.tabular or case.full:
        return case.n_steps
    return min(2 if case.n_out > 10 else 5, case.n_steps)


def patch_mask(case: Case) -> torch.Tensor | None:
    """FeatureAblation / ShapleyValueSampling groups: the Occlusion windows of images and
    signals (shared by all channels); every feature alone for tabular data (None)."""
    shape = tuple(case.X.shape[1:])
    if len(shape) == 1:
        return None
    window = patch_window(case)[1:]
    grid = [s // w for s, w in zip(shape[1:], window)]
    labels = torch.arange(int(np.prod(grid))).reshape(grid)
    for axis, w in enumerate(window):
        labels = labels.repeat_interleave(w, dim=axis)
    return labels.expand(*shape).contiguous()


def _perturbation_peers(method: str, case: Case, targets: list[int], *,
                        rows: int | None = None) -> dict:
    X = case.X[:agnostic_rows(case, rows)]
    n_samples = shapley_samples(case) if method == "ShapleyValueSampling" else case.n_steps
    fn = peers.captum_perturbation(method, case.model, X, n_samples, patch_window(case),
                                   patch_mask(case))
    return {"captum": _ways(fn, X, targets)}


def _modified_backward_peers(method: str, case: Case, targets: list[int]) -> dict:
    return {"captum": _ways(peers.captum_modified_backward(method, case.model), case.X,
                            targets, expand=1)}


def _layer_peers(method: str, layers: dict[str, str], case: Case, targets: list[int]) -> dict:
    fn = peers.captum_layer(method, case.model, layers[case.name], case.X, case.X_ref,
                            case.n_steps)
    # LayerGradCam has no internal batching; LayerIntegratedGradients has internal_batch_size
    return {"captum": _ways(fn, case.X, targets, expand=1 if method == "GradCAM" else None)}


def _mask_array(case: Case):
    mask = patch_mask(case)
    return None if mask is None else mask.numpy()


#: the last convolution's ReLU of the image models (GradCAM needs spatial axes)
IMAGE_LAYERS = {"CNN 3x32x32": "4", "ResNet 3x24x24 (BN, residual)": "block2.relu2",
                "CNN 3x64x64, 100 classes": "10"}
#: LayerIntegratedGradients also on the MLPs' last hidden ReLU and the signal CNN
HIDDEN_LAYERS = {**IMAGE_LAYERS, "MLP 100-256-256-10": "3", "wide MLP 200-3x512-10": "5",
                 "signal 1D-CNN 4x256": "7"}

#: rows explained by the slow model-agnostic / sampling methods (standard size, full size)
KERNEL_ROWS = standard_or_full(5, 10)
LIME_ROWS = 3
SHAPLEY_ROWS = standard_or_full(8, 16)
def DEEPSHAP_ROWS(case: Case) -> int:  # noqa: N802 - used like the row constants above
    """DeepSHAP runs every row against every reference row (up to 32): the peers' calls take
    15-35 s on 1000 tabular rows, and captum's batched-targets call on 64 images of 3x32x32
    (64 x 10 targets x 32 references in one graph) needed over 20 GB. So the suite explains
    the first 64 tabular rows and the first 8 images / signals."""
    return 64 if case.tabular else 8

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
           _deepshap_peers, "exact", rows=DEEPSHAP_ROWS),
    Method("LRP epsilon", lambda c: skx.LRP(**_lrp_rules(c)).fit(c.model), _zennit, "exact"),
    Method("KernelSHAP", lambda c: skx.KernelSHAP(
        n_samples=kernel_nsamples(c), limit_ref=None, random_state=0, dtype="float").fit(
        c.model, c.X_ref), partial(_kernel_peers, rows=KERNEL_ROWS), "stat",
        tabular_only=True, rows=KERNEL_ROWS),
    Method("LIME", lambda c: skx.LIME(
        n_samples=lime_nsamples(c), random_state=0, dtype="float").fit(c.model, c.X_ref),
        partial(_captum, "LIME", rows=LIME_ROWS), "n/a",
        tabular_only=True, rows=LIME_ROWS),
    Method("Occlusion", lambda c: skx.Occlusion(
        sliding_window_shapes=patch_window(c), strides=patch_window(c), baselines=0.0,
        dtype="float").fit(c.model), partial(_perturbation_peers, "Occlusion"), "exact"),
    Method("FeatureAblation", lambda c: skx.FeatureAblation(
        feature_mask=_mask_array(c), baselines=0.0, dtype="float").fit(c.model),
        partial(_perturbation_peers, "FeatureAblation"), "exact"),
    Method("ShapleyValueSampling", lambda c: skx.ShapleyValueSampling(
        n_samples=shapley_samples(c), feature_mask=_mask_array(c), baselines=0.0, random_state=0,
        dtype="float").fit(c.model),
        partial(_perturbation_peers, "ShapleyValueSampling", rows=SHAPLEY_ROWS), "stat",
        rows=SHAPLEY_ROWS),
    Method("GuidedBackprop", lambda c: skx.GuidedBackprop().fit(c.model),
           partial(_modified_backward_peers, "GuidedBackprop"), "exact"),
    Method("Deconvolution", lambda c: skx.Deconvolution().fit(c.model),
           partial(_modified_backward_peers, "Deconvolution"), "exact"),
    Method("GradCAM", lambda c: skx.GradCAM(layer=IMAGE_LAYERS[c.name]).fit(c.model),
           partial(_layer_peers, "GradCAM", IMAGE_LAYERS), "exact", layers=IMAGE_LAYERS),
    Method("LayerIntegratedGradients", lambda c: skx.LayerIntegratedGradients(
        layer=HIDDEN_LAYERS[c.name], n=c.n_steps).fit(c.model, c.X_ref[:1]),
        partial(_layer_peers, "LayerIntegratedGradients", HIDDEN_LAYERS), "exact",
        layers=HIDDEN_LAYERS),
]


def explain_ours(explainer, case: Case, targets: list[int], rows: int | None):
    """Our attributions ``(n, *input_shape, k)`` as a numpy array."""
    X = case.X[:agnostic_rows(case, rows)]
    return explainer.explain(X, output_idx=targets).values


def method_names() -> list[str]:
    return [m.name for m in METHODS]


def methods_for(case: Case) -> list[Method]:
    return [m for m in METHODS if (case.tabular or not m.tabular_only)
            and (m.layers is None or case.name in m.layers)]

