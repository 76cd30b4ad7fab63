"""DeepLift multipliers of a softmax inside the graph that keep summation-to-delta exactly.

The position-wise Rescale rule ``m_x = m * Delta s / Delta x`` loses ``Delta s_j`` wherever
``Delta x_j = 0`` while the other positions change ``s_j`` (an attention score between two
constant tokens, e.g. a CLS token attending to itself). Instead, the softmax is written as
the graph it computes, ``s = exp(u)``, ``u = x - L``, ``L = log(E)``, ``E = sum_i exp(x_i)``,
and DeepLift's Rescale rule is applied to each element-wise step (``exp`` twice, ``log``
once; the sum and the subtraction are linear):

* ``m_u = m * Delta s / Delta u``,
* ``m_L = -sum_j m_u_j``, ``m_E = m_L * Delta L / Delta E``,
* ``m_x = m_u + m_E * Delta exp(x) / Delta x``,

so ``sum m_x Delta x = sum m_u (Delta x - Delta L) = sum m Delta s`` exactly. Where a
difference is below ``eps`` the ratio is the derivative at the midpoint. Masked positions
(:class:`~sknn_explain.layers.MaskedSoftmax`) take no part and get 0.
"""

from __future__ import annotations

import torch

__all__ = ["softmax_deeplift"]


def _ratio(num: torch.Tensor, den: torch.Tensor, fallback: torch.Tensor,
           eps: float) -> torch.Tensor:
    small = den.abs() < eps
    return torch.where(small, fallback, num / torch.where(small, torch.ones_like(den), den))


def softmax_deeplift(x: torch.Tensor, x_ref: torch.Tensor, m: torch.Tensor, dim: int,
                     eps: float, keep: torch.Tensor | None = None) -> torch.Tensor:
    """Input multipliers ``(K, n, *shape)`` of ``softmax(x, dim)`` for output multipliers
    ``m`` ``(K, n, *shape)``.

    Parameters
    ----------
    x, x_ref : torch.Tensor
        The softmax input on the explained samples ``(n, *shape)`` and on the reference
        (``n`` rows or one); additive mask constants already added.
    m : torch.Tensor
        Multipliers of the softmax output, the output axis first.
    dim : int
        The softmax axis of ``x``.
    eps : float
        Differences below ``eps`` use the derivative at the midpoint.
    keep : torch.Tensor of bool, optional
        Positions that take part (broadcast against ``x``); the others are masked out.

    Returns
    -------
    torch.Tensor
        The multipliers of ``x``, same shape as ``m``.
    """
    d = dim if dim < 0 else dim - x.ndim  # the same axis of x and of m (K axis first)
    x_ref = x_ref.broadcast_to(x.shape)
    if keep is None:
        keep = torch.ones_like(x, dtype=torch.bool)
    keep = keep.broadcast_to(x.shape)
    low = torch.finfo(x.dtype).min
    c = torch.maximum(torch.where(keep, x, low).amax(d, keepdim=True),
                      torch.where(keep, x_ref, low).amax(d, keepdim=True))
    zero = torch.zeros_like(x)
    e = torch.where(keep, torch.exp(x - c), zero)
    er = torch.where(keep, torch.exp(x_ref - c), zero)
    big_e, big_er = e.sum(d, keepdim=True), er.sum(d, keepdim=True)
    log_e, log_er = torch.log(big_e), torch.log(big_er)
    u, ur = x - c - log_e, x_ref - c - log_er
    s, sr = e / big_e, er / big_er
    r_u = _ratio(s - sr, u - ur, torch.exp((u + ur) / 2), eps)
    rho = _ratio(e - er, x - x_ref, torch.exp((x + x_ref) / 2 - c), eps)
    q = _ratio(log_e - log_er, big_e - big_er, 2.0 / (big_e + big_er), eps)
    m_u = torch.where(keep, m * r_u, zero)
    m_log = -m_u.sum(d, keepdim=True)
    return torch.where(keep, m_u + m_log * q * rho, zero)
