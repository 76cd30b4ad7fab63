"""The peers, each called its fastest documented way.

Every peer that takes a ``target`` is offered two ways and the suite times both:

* ``batched``: all targets at once, the inputs repeated once per target
  (``X.repeat_interleave(k, 0)`` with ``target = [t_0..t_k-1] * n``); captum splits the
  work with ``internal_batch_size`` / ``nt_samples_batch_size`` /
  ``perturbations_per_eval`` where it has them; where it has none (Saliency,
  InputXGradient, DeepLift, DeepLiftShap, GradientShap, GuidedBackprop, Deconvolution,
  LayerGradCam) and for zennit (one backward pass with a one-hot start relevance per
  (row, target)) the repeated rows are fed in chunks of about :data:`PEER_CALL_VALUES`
  input values per call, as an expert would (:func:`batched`);
* ``looped``: one call per target on the original rows.

Every function returns an array ``(n, *input_shape, k)`` so it can be compared with ours.
"""

from __future__ import annotations

import copy
import sys
import types
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

Attribute = Callable[[torch.Tensor, torch.Tensor | int], torch.Tensor]


#: input values per call of a batched way that the peer does not split itself (the repeated
#: rows times the rows the method makes of each: 2 x references for DeepLiftShap, 2 for
#: DeepLift, noise samples for GradientShap). Measured on this suite's models (2 cores,
#: sixth #20 session): one call with every repeated row took up to 6x longer than chunks
#: (captum DeepLiftShap, 3x64x64 CNN, 100 targets: 19.4 s in one call, 3.0 s in chunks of
#: 2^19 values, 3.8 s looped; Saliency there 0.77 s vs 0.29 s); 2^19 was the fastest chunk
#: size or within 20 % of it on the 3x64x64 and 3x32x32 CNNs and the MLP
PEER_CALL_VALUES = 2**19


def batched(attribute: Attribute, X: torch.Tensor, targets: Sequence[int],
            expand: int | None = None) -> np.ndarray:
    """All targets at once: rows repeated per target, one target per repeated row.

    ``expand=None``: one call (the peer splits the work itself). Else the repeated rows go in
    chunks of :func:`chunk_rows` rows per call, ``expand`` being the number of rows the
    method makes of each (1 for plain gradients).
    """
    n, k = X.shape[0], len(targets)
    Xr = X.repeat_interleave(k, 0)
    target = torch.as_tensor(list(targets)).repeat(n)
    step = len(Xr) if expand is None else chunk_rows(X.shape[1:], expand)
    a = torch.cat([attribute(Xr[s:s + step], target[s:s + step]).detach()
                   for s in range(0, len(Xr), step)])
    return a.reshape(n, k, *a.shape[1:]).movedim(1, -1).numpy()  # layer shape for layer methods


def chunk_rows(shape: Sequence[int], expand: int = 1) -> int:
    """Repeated rows per call of a chunked batched way: about :data:`PEER_CALL_VALUES` input
    values, counting the ``expand`` rows the method makes of each."""
    return max(1, PEER_CALL_VALUES // (expand * int(np.prod(shape))))


def looped(attribute: Attribute, X: torch.Tensor, targets: Sequence[int]) -> np.ndarray:
    """One call per target."""
    return torch.stack([attribute(X, int(t)).detach() for t in targets], -1).numpy()


def rows_per_call(shape: Sequence[int]) -> int:
    """captum's ``internal_batch_size``: about 2^21 input values per model call."""
    return max(64, 2**21 // int(np.prod(shape)))


# ------------------------------------------------------------------------------ captum
def captum_attribute(method: str, model: nn.Module, X: torch.Tensor, X_ref: torch.Tensor,
                     n_steps: int, sd: float) -> Attribute:
    """``attribute(x, target)`` of the captum method that matches our ``method``."""
    from captum import attr

    ibs = rows_per_call(X.shape[1:])
    base = X_ref[:1]
    if method == "Gradient":
        return lambda x, t: attr.Saliency(model).attribute(x, target=t, abs=False)
    if method == "x Input":
        return lambda x, t: attr.InputXGradient(model).attribute(x, target=t)
    if method == "IntegratedGradients":
        return lambda x, t: attr.IntegratedGradients(model).attribute(
            x, baselines=base, target=t, n_steps=n_steps, method="riemann_right",
            internal_batch_size=ibs)
    if method == "SmoothGrad":
        return lambda x, t: attr.NoiseTunnel(attr.Saliency(model)).attribute(
            x, nt_type="smoothgrad", nt_samples=n_steps, stdevs=sd, target=t, abs=False,
            nt_samples_batch_size=max(1, ibs // x.shape[0]))
    if method == "ExpectedGradients":
        return lambda x, t: attr.GradientShap(model).attribute(
            x, baselines=X_ref, target=t, n_samples=n_steps, stdevs=0.0)
    if method == "DeepLift":
        return lambda x, t: attr.DeepLift(model).attribute(x, baselines=base, target=t)
    if method == "DeepSHAP":
        return lambda x, t: attr.DeepLiftShap(model).attribute(x, baselines=X_ref, target=t)
    if method == "LIME":
        baseline = X_ref.mean(0, keepdim=True)
        return lambda x, t: attr.Lime(model).attribute(
            x, baselines=baseline, target=t, n_samples=n_steps,
            perturbations_per_eval=n_steps)
    raise KeyError(method)


def captum_perturbation(method: str, model: nn.Module, X: torch.Tensor, n_samples: int,
                        window: tuple[int, ...] | None,
                        mask: torch.Tensor | None) -> Attribute:
    """``attribute(x, target)`` of captum's Occlusion / FeatureAblation /
    ShapleyValueSampling (baseline 0, ``perturbations_per_eval`` sized to about
    :func:`rows_per_call` rows per model call: their fastest documented use)."""
    from captum import attr

    ibs = rows_per_call(X.shape[1:])

    def ppe(x: torch.Tensor) -> int:
        return max(1, ibs // x.shape[0])

    fmask = None if mask is None else mask.unsqueeze(0)
    if method == "Occlusion":
        return lambda x, t: attr.Occlusion(model).attribute(
            x, sliding_window_shapes=window, strides=window, baselines=0.0, target=t,
            perturbations_per_eval=ppe(x))
    if method == "FeatureAblation":
        return lambda x, t: attr.FeatureAblation(model).attribute(
            x, baselines=0.0, target=t, feature_mask=fmask, perturbations_per_eval=ppe(x))
    if method == "ShapleyValueSampling":
        return lambda x, t: attr.ShapleyValueSampling(model).attribute(
            x, baselines=0.0, target=t, feature_mask=fmask, n_samples=n_samples,
            perturbations_per_eval=ppe(x))
    raise KeyError(method)


def captum_modified_backward(method: str, model: nn.Module) -> Attribute:
    """``attribute(x, target)`` of captum's GuidedBackprop / Deconvolution."""
    from captum import attr

    cls = {"GuidedBackprop": attr.GuidedBackprop, "Deconvolution": attr.Deconvolution}[method]
    return lambda x, t: cls(model).attribute(x, target=t)


def captum_layer(method: str, model: nn.Module, layer: str, X: torch.Tensor,
                 X_ref: torch.Tensor, n_steps: int) -> Attribute:
    """``attribute(x, target)`` of captum's LayerGradCam (upsampled bilinearly to the input,
    ``LayerAttribution.interpolate``) / LayerIntegratedGradients (``riemann_right``)."""
    from captum import attr

    module = dict(model.named_modules())[layer]
    if method == "GradCAM":
        size = tuple(X.shape[2:])

        def gradcam(x, t):
            a = attr.LayerGradCam(model, module).attribute(x, target=t, relu_attributions=True)
            return attr.LayerAttribution.interpolate(a, size, interpolate_mode="bilinear")

        return gradcam
    if method == "LayerIntegratedGradients":
        ibs = rows_per_call(X.shape[1:])
        return lambda x, t: attr.LayerIntegratedGradients(model, module).attribute(
            x, baselines=X_ref[:1], target=t, n_steps=n_steps, method="riemann_right",
            internal_batch_size=ibs)
    raise KeyError(method)


# ------------------------------------------------------------------------------ zennit
def load_zennit():
    """``(zennit.rules, zennit.layer)``; zennit imports torchvision at import time, which is
    not installed: stub it just for the import (as ``tests/test_lrp.py`` does)."""
    stubbed = []
    try:
        import torchvision  # noqa: F401
    except ImportError:
        tv, tvm, tvr = (types.ModuleType(n) for n in
                        ("torchvision", "torchvision.models", "torchvision.models.resnet"))

        class _Block(nn.Module):
            pass

        tvr.Bottleneck = tvr.BasicBlock = _Block
        tv.models, tvm.resnet = tvm, tvr
        for mod in (tv, tvm, tvr):
            sys.modules[mod.__name__] = mod
            stubbed.append(mod.__name__)
    try:
        import zennit.layer as zlayer
        import zennit.rules as zrules
    finally:
        for name in stubbed:
            sys.modules.pop(name, None)
    return zrules, zlayer


class ZennitLRP:
    """LRP-epsilon with zennit hooks on a copy of the model (the user's model stays clean).

    Epsilon(eps) on Linear/Conv, Pass on ReLU and BatchNorm, Norm on average pooling and on
    residual sums (zennit's ResNet canonizer routes them through ``zennit.layer.Sum``),
    MaxPool unhooked (the gradient goes to the winner).
    """

    def __init__(self, model: nn.Module, eps: float = 0.01, stabilizer: float = 1e-30):
        zr, zlayer = load_zennit()
        self.model = copy.deepcopy(model)
        for m in self.model.modules():
            if hasattr(m, "merge"):
                m.merge = zlayer.Sum(dim=-1)
        self.handles = []
        for m in self.model.modules():
            if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):
                self.handles.append(zr.Epsilon(eps).register(m))
            elif isinstance(m, (nn.ReLU, nn.modules.batchnorm._BatchNorm)):
                self.handles.append(zr.Pass().register(m))
            elif isinstance(m, (zlayer.Sum, nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
                self.handles.append(zr.Norm(stabilizer=stabilizer).register(m))

    def attribute(self, x: torch.Tensor, target: torch.Tensor | int) -> torch.Tensor:
        """Relevance of ``target`` (one per row, or one for all rows)."""
        xg = x.clone().requires_grad_(True)
        out = self.model(xg)
        rows = torch.arange(out.shape[0])
        seed = torch.zeros_like(out)
        seed[rows, target] = out[rows, target].detach()
        (g,) = torch.autograd.grad(out, xg, seed)
        return g


# ------------------------------------------------------------------------------ shap
def shap_deep(model: nn.Module, X: torch.Tensor, X_ref: torch.Tensor) -> np.ndarray:
    """``shap.DeepExplainer(model, X_ref).shap_values(X)``: every output in one call."""
    import shap

    values = shap.DeepExplainer(model, X_ref).shap_values(X, check_additivity=False)
    return _last_axis_outputs(values, X.shape[0])


def shap_kernel(model: nn.Module, X: torch.Tensor, X_ref: torch.Tensor,
                nsamples: int) -> np.ndarray:
    """``shap.KernelExplainer(f, X_ref).shap_values(X, nsamples, l1_reg=False)``, every
    output in one call (the same unregularised regression as ours)."""
    import shap

    def f(a: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.as_tensor(a, dtype=torch.float32)).numpy()

    np.random.seed(0)  # noqa: NPY002 - shap draws from numpy's global state
    values = shap.KernelExplainer(f, X_ref.numpy()).shap_values(
        X.numpy(), nsamples=nsamples, l1_reg=False, silent=True)
    return _last_axis_outputs(values, X.shape[0])


def _last_axis_outputs(values, n: int) -> np.ndarray:
    """shap returns a list per output (old) or outputs on the last axis (new)."""
    if isinstance(values, list):
        return np.stack([np.asarray(v) for v in values], -1)
    values = np.asarray(values)
    return values if values.shape[0] == n else np.moveaxis(values, 0, -1)
