"""LayerNorm / RMSNorm in the propagation methods.

Notation per normalised vector (the last ``len(normalized_shape)`` axes, ``D`` values):
``c = x - mean(x)`` (LayerNorm; ``c = x`` for RMSNorm), ``v = mean(c^2)``,
``s = 1 / sqrt(v + eps)``, ``y = weight * c * s + bias``.

LRP (AttnLRP's identity rule, Achtibat et al., ICML 2024, Sec. 3.3): ``s`` is treated as a
constant (detached at the sample's own input), so the layer is the linear map
``y = W x + bias`` with ``W = diag(weight * s) (I - 1/D)`` (``I`` for RMSNorm), and the
layer's LRP rule (the "Dense" rule) runs on that map: centering and the affine weight
share relevance proportionally, ``bias`` absorbs its share. Without a bias the layer
conserves relevance (up to the rule's stabiliser).

DeepLift / DeepSHAP (rescale with DeepLIFT's product rule, Shrikumar et al., 2017): with
averages ``c_bar = (c_x + c_r) / 2``, ``s_bar = (s_x + s_r) / 2`` over input and reference,

* ``Delta(c s) = c_bar Delta(s) + s_bar Delta(c)`` (exact for any two factors),
* ``Delta(s) = (Delta s / Delta v) Delta(v)`` (rescale of the scalar ``v -> s``; the
  derivative ``-(v + eps)^(-3/2) / 2`` at the midpoint where ``|Delta v| < eps``),
* ``Delta(v) = sum_j (2 c_bar_j / D) Delta(c_j)`` (exact: ``a^2 - b^2 = (a + b)(a - b)``),
* ``Delta(c) = Delta(x) - mean(Delta(x))`` (linear).

So with output multipliers ``m`` and ``u = weight * m``:
``m_c = u s_bar + (sum_i u_i c_bar_i) (Delta s / Delta v) 2 c_bar / D`` and ``m_x`` is the
centering (symmetric) applied to ``m_c``. Every step is exact, so summation-to-delta holds
to rounding. Connection Weights has no data-free meaning for a per-sample normalisation
and is refused.
"""

from __future__ import annotations

import math

import torch

from ..layers import LayerNorm, RMSNorm
from ..rules.modifiers import KEEP, Modifier
from ._ops import LinearOp

__all__ = ["NormOp", "norm_deeplift"]

Norm = LayerNorm | RMSNorm


def _flat(layer: Norm, t: torch.Tensor, lead: int) -> torch.Tensor:
    """``t`` as ``(*t.shape[:lead], L, D)`` with ``D`` the normalised values."""
    d = math.prod(layer.normalized_shape)
    return t.reshape(*t.shape[:lead], -1, d)


def _center(layer: Norm, t: torch.Tensor) -> torch.Tensor:
    return t - t.mean(-1, keepdim=True) if layer.centered else t


def _flat_param(layer: Norm, p: torch.Tensor | None) -> torch.Tensor | None:
    return None if p is None else p.reshape(-1)


def _scale(layer: Norm, xf: torch.Tensor) -> torch.Tensor:
    """``s = 1 / sqrt(v + eps)`` per vector, ``(n, L, 1)``."""
    c = _center(layer, xf)
    return torch.rsqrt((c * c).mean(-1, keepdim=True) + layer.variance_eps(xf.dtype))


class NormOp(LinearOp):
    """The layer with ``s`` detached at ``x``: ``x' -> W x' + bias`` (AttnLRP identity rule).

    The unmodified map is applied in closed form; weight modifiers (``w+``, ``w^2``, ...)
    act on the explicit per-vector matrices ``W`` ``(n, L, D, D)``.
    """

    def __init__(self, layer: Norm, x: torch.Tensor) -> None:
        self.layer, self.in_shape = layer, tuple(x.shape[1:])
        self.s = _scale(layer, _flat(layer, x, 1))  # (n, L, 1)
        w = _flat_param(layer, layer.weight)
        self.gs = self.s if w is None else self.s * w  # (n, L, D)
        self.bias = _flat_param(layer, layer.bias)

    def _matrix(self) -> torch.Tensor:
        d = self.gs.shape[-1]
        eye = torch.eye(d, dtype=self.gs.dtype, device=self.gs.device)
        a = eye - 1.0 / d if self.layer.centered else eye
        return self.gs.expand(*self.gs.shape[:-1], d).unsqueeze(-1) * a  # (n, L, D, D)

    def fwd(self, x: torch.Tensor, weights: Modifier = KEEP,
            bias: Modifier | None = None) -> torch.Tensor:
        xf = _flat(self.layer, x, 1)
        if weights is KEEP:
            out = self.gs * _center(self.layer, xf)
        else:
            out = torch.einsum("nlij,nlj->nli", weights(self._matrix()), xf)
        if bias is not None and self.bias is not None:
            out = out + bias(self.bias)
        return out.reshape(x.shape)

    def bwd(self, g: torch.Tensor, weights: Modifier = KEEP) -> torch.Tensor:
        gf = _flat(self.layer, g, 2)
        if weights is KEEP:
            out = _center(self.layer, self.gs * gf)
        else:
            out = torch.einsum("nlij,knli->knlj", weights(self._matrix()), gf)
        return out.reshape(g.shape)


def norm_deeplift(layer: Norm, m: torch.Tensor, x: torch.Tensor, r: torch.Tensor,
                  eps: float) -> torch.Tensor:
    """Input multipliers ``(K, n, *in)`` from output multipliers ``m`` (module docstring)."""
    xf = _flat(layer, x, 1)
    rf = _flat(layer, r.expand_as(x), 1)
    mf = _flat(layer, m, 2)
    ve = layer.variance_eps(x.dtype)
    cx, cr = _center(layer, xf), _center(layer, rf)
    vx, vr = (cx * cx).mean(-1, keepdim=True), (cr * cr).mean(-1, keepdim=True)
    sx, sr = torch.rsqrt(vx + ve), torch.rsqrt(vr + ve)
    w = _flat_param(layer, layer.weight)
    u = mf if w is None else mf * w
    c_bar, s_bar = (cx + cr) / 2, (sx + sr) / 2
    dv = vx - vr
    small = dv.abs() < eps
    ratio = (sx - sr) / torch.where(small, torch.ones_like(dv), dv)
    if bool(small.any()):
        slope = -0.5 * torch.pow((vx + vr) / 2 + ve, -1.5)
        ratio = torch.where(small, slope, ratio)
    m_s = (u * c_bar).sum(-1, keepdim=True)
    m_c = u * s_bar + m_s * ratio * (2.0 / xf.shape[-1]) * c_bar
    return _center(layer, m_c).reshape(m.shape)
