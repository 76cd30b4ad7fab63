"""Grad-CAM (Selvaraju et al., 2017) and Grad-CAM++ (Chattopadhay et al., 2018).

For a convolutional layer with activations ``A`` of shape ``(C, *space)`` and the gradients
``g = dS/dA`` of an output score ``S``:

* Grad-CAM (captum's ``LayerGradCam``): channel weights ``w_c = mean_space g_c``, heatmap
  ``relu(sum_c w_c A_c)``.
* Grad-CAM++: ``w_c = sum_ij alpha_cij relu(g_cij)`` with
  ``alpha_cij = g_cij^2 / (2 g_cij^2 + sum_ab A_cab g_cij^3)`` (0 where ``g_cij = 0``).
  This is the paper's closed form (its eq. 19) for the score ``Y = exp(S)``: the second and
  third derivatives of ``exp(S)`` are written with powers of the first derivative, which
  **assumes that S is piecewise linear in A** (ReLU / max-pooling / linear layers above the
  layer, so the higher derivatives of S vanish). As in the authors' code and
  pytorch-grad-cam the weights use ``dS/dA`` rather than ``dY/dA = exp(S) dS/dA``: every
  heatmap is the paper's divided by the positive constant ``exp(S)`` of its sample and
  output, the same map up to scale.

The heatmap, ``(n, 1, *space)`` per output, is upsampled to the input's spatial size
(``upsample="bilinear"`` / ``"nearest"``, captum's ``LayerAttribution.interpolate``) or kept
at the layer's resolution (``upsample=None``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .._validation import BOOLEAN, StrOptions
from ._layer_target import TailForward
from .gradient import _COMMON_DOC
from .layer import LayerExplainer, _tail_gradients

__all__ = ["GradCAM", "GradCAMPlusPlus", "gradcam_plus_plus_weights"]

_DOC = _COMMON_DOC.split("    embeddings :")[0]


def gradcam_plus_plus_weights(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """Grad-CAM++ channel weights ``(n, C, K)`` from activations ``(n, C, *space)`` and
    gradients ``(n, C, *space, K)`` of the scores (see the module docstring)."""
    space = tuple(range(2, acts.ndim))
    total = acts.sum(dim=space).reshape(*acts.shape[:2], *([1] * (acts.ndim - 2)), 1)
    g2 = grads * grads
    den = 2 * g2 + total * g2 * grads
    alpha = torch.where(den != 0, g2 / torch.where(den != 0, den, torch.ones_like(den)),
                        torch.zeros_like(den))
    return (alpha * grads.clamp(min=0)).sum(dim=space)


class GradCAM(LayerExplainer):
    __doc__ = f"""Grad-CAM (Selvaraju et al., 2017): class activation maps from gradients.

    For every selected output, the channels of ``layer`` (a convolutional layer's output,
    ``(C, L)`` or ``(C, H, W)``) are weighted by the mean of their gradients over space, and
    the weighted sum of the activations is the heatmap (captum's ``LayerGradCam``, then
    ``LayerAttribution.interpolate`` to the input size). All selected outputs come from one
    forward and one batched backward pass.

    Parameters
    ----------
    layer : str
        The convolutional layer: a node of the converted graph or a torch module path
        (``"features.3"``).
    relu_attributions : bool, default=True
        Keep only the positive part of the heatmap (the paper's ReLU).
    upsample : {{"bilinear", "nearest"}} or None, default="bilinear"
        Interpolate the heatmap to the input's spatial size (``"bilinear"`` is linear for
        signals); None keeps the layer's resolution.
    {_DOC}
    Notes
    -----
    ``explain`` returns an Attribution with values ``(n, 1, *space, n_outputs)``; its
    ``inputs`` are the channel mean of the explained input (upsampled) or of the layer's
    activation (``upsample=None``), so the image plots overlay the heatmap on them.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from sknn_explain import GradCAM
    >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    >>> GradCAM("0").fit(net).explain(torch.randn(2, 1, 8, 8)).values.shape
    (2, 1, 8, 8, 3)
    """

    method_name = "GradCAM"
    _parameter_constraints = {
        **LayerExplainer._parameter_constraints, "relu_attributions": BOOLEAN,
        "upsample": [StrOptions({"bilinear", "nearest"}), None],
    }

    def __init__(
        self, layer, relu_attributions=True, upsample="bilinear", *, ignore_last_act=True,
        channels_first=True, dtype="float", device="cpu", batch_size=None, verbose=False,
        space="network",
    ):
        super().__init__(
            ignore_last_act=ignore_last_act, channels_first=channels_first, dtype=dtype,
            device=device, batch_size=batch_size, verbose=verbose,
        )
        self.layer = layer
        self.relu_attributions = relu_attributions
        self.upsample = upsample
        self.space = space

    def _result_channels_first(self) -> bool:
        # an upsampled heatmap is an input-shaped image: the user's layout
        return True if self.upsample is None else bool(self.channels_first)

    def _channel_weights(self, acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        """``(n, C, K)``: Grad-CAM's spatial mean of the gradients."""
        return grads.mean(dim=tuple(range(2, acts.ndim)))

    def _attribute_layer(self, xs, target, selection, batch_size):
        tail = TailForward(self.graph_, target)
        acts, context = self._layer_values(xs, tail, batch_size)
        if acts.ndim not in (3, 4):
            raise ValueError(
                f"{type(self).__name__} needs a convolutional layer with output (C, L) or "
                f"(C, H, W); {target!r} has per-sample shape {tuple(acts.shape[1:])}")

        grads, preds = _tail_gradients(self, tail, acts, context, selection)
        weights = self._channel_weights(acts, grads)  # (n, C, K)
        cam = torch.einsum("nc...,nck->nk...", acts, weights)  # (n, K, *space)
        if self.relu_attributions:
            cam = cam.clamp(min=0)
        if self.upsample is None:
            image = acts.mean(dim=1, keepdim=True)
            names = [[f"{target}:{self.method_name}"]] + [
                [f"{p}{i + 1}" for i in range(s)]
                for p, s in zip(("L",) if acts.ndim == 3 else ("H", "W"), acts.shape[2:])]
        else:
            size = tuple(xs[0].shape[2:])
            if len(size) != acts.ndim - 2:
                raise ValueError(
                    f"cannot upsample the {target!r} heatmap {tuple(acts.shape[2:])} to an "
                    f"input of per-sample shape {tuple(xs[0].shape[1:])}; use upsample=None")
            mode = "linear" if (self.upsample == "bilinear" and len(size) == 1) else self.upsample
            cam = F.interpolate(cam, size=size, mode=mode)
            image = xs[0].mean(dim=1, keepdim=True)
            names = [[self.method_name]] + [
                [f"{p}{i + 1}" for i in range(s)]
                for p, s in zip(("L",) if len(size) == 1 else ("H", "W"), size)]
        values = cam.movedim(1, -1).unsqueeze(1)  # (n, 1, *space, K)
        return values, image, names, preds, None


class GradCAMPlusPlus(GradCAM):
    __doc__ = f"""Grad-CAM++ (Chattopadhay et al., 2018): Grad-CAM with pixel-wise weights.

    Channel weights ``w_c = sum_ij alpha_cij relu(g_cij)`` with
    ``alpha_cij = g_cij^2 / (2 g_cij^2 + sum_ab A_cab g_cij^3)``, ``g = dS/dA`` (the paper's
    closed form for ``exp(S)``, which assumes a score piecewise linear in the layer's
    activations, e.g. ReLU networks; the heatmaps are the paper's divided by the positive
    constant ``exp(S)`` per sample and output, as in the authors' code). Heatmap
    ``relu(sum_c w_c A_c)``, upsampled as in :class:`GradCAM`.

    Parameters
    ----------
    layer : str
        The convolutional layer: a node of the converted graph or a torch module path.
    relu_attributions : bool, default=True
        Keep only the positive part of the heatmap.
    upsample : {{"bilinear", "nearest"}} or None, default="bilinear"
        As in :class:`GradCAM`.
    {_DOC}
    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from sknn_explain import GradCAMPlusPlus
    >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    >>> GradCAMPlusPlus("1", upsample=None).fit(net).explain(torch.randn(2, 1, 8, 8)).values.shape
    (2, 1, 6, 6, 3)
    """

    method_name = "GradCAMPlusPlus"

    def _channel_weights(self, acts, grads):
        return gradcam_plus_plus_weights(acts, grads)
