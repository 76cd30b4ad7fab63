"""Weighted least-squares solvers of the agnostic surrogates, many targets at once.

:func:`constrained_wls` is Kernel SHAP's regression with the efficiency constraint;
:func:`weighted_ridge` is LIME's ridge surrogate with its feature selection.
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading
from collections.abc import Callable, Iterator

import numpy as np
from threadpoolctl import ThreadpoolController

__all__ = ["constrained_wls", "constrained_wls_se", "weighted_ridge"]

#: float64 values of the Gram sub-blocks that one batched subset-ridge step gathers
#: (targets x M candidates x (k+1)^2): 2^21 values = 16 MiB, so forward selection over
#: thousands of targets (samples x outputs) runs in bounded memory
_RIDGE_STEP_VALUES = 2**21


#: per thread: inside :func:`single_threaded_blas` already (nested calls enter it once)
_blas_state = threading.local()


@functools.lru_cache(maxsize=1)
def _blas_libraries() -> tuple:
    """threadpoolctl's controllers of the BLAS libraries loaded in this process."""
    return tuple(ThreadpoolController().select(user_api="blas").lib_controllers)


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """numpy's BLAS (OpenBLAS) on one thread for the duration (threadpoolctl, as
    scikit-learn does around small solves).

    The surrogates' solves are small (coalitions x features): a second thread gains
    nothing there, and OpenBLAS's threads then spin-wait on the cores that torch's own
    threads need for the next model call. On 2 cores that contention made Kernel SHAP
    2-5x slower (1056 coalitions, 16 features: 3.8 ms with numpy's BLAS on one thread,
    10-22 ms without); the numbers are the same up to the summation order (1e-16).
    """
    if getattr(_blas_state, "depth", 0):  # already inside: one limit is enough
        yield
        return
    # the libraries found once; their thread counts read and set directly around each
    # solve (threadpoolctl's limit() re-inspects every library per call: ~30 us)
    changed = []
    _blas_state.depth = 1
    try:
        for lib in _blas_libraries():
            before = lib.num_threads
            if before != 1:
                lib.set_num_threads(1)
                changed.append((lib, before))
        yield
    finally:
        for lib, before in changed:
            lib.set_num_threads(before)
        _blas_state.depth = 0


def _one_blas_thread(func: Callable) -> Callable:
    """Run ``func`` under :func:`single_threaded_blas`."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with single_threaded_blas():
            return func(*args, **kwargs)

    return wrapper


@_one_blas_thread
def constrained_wls(
    z: np.ndarray, weights: np.ndarray, y: np.ndarray, total: np.ndarray
) -> np.ndarray:
    """Weighted least squares ``y ~ z @ phi`` subject to ``sum(phi) = total``, many targets.

    Parameters
    ----------
    z : ``(S, M)`` design (0/1), weights : ``(S,)``, y : ``(S, T)``, total : ``(T,)``

    Returns
    -------
    phi : ``(M, T)``, with ``phi.sum(0) == total`` up to rounding.

    Examples
    --------
    >>> import numpy as np
    >>> z = np.array([[1, 0], [0, 1]])
    >>> constrained_wls(z, np.ones(2), np.array([[1.0], [2.0]]), np.array([3.0]))[:, 0]
    array([1., 2.])
    """
    z = z.astype(np.float64)
    m = z.shape[1]
    if m == 1:
        return total[None, :].copy()
    design = z[:, :-1] - z[:, -1:]
    target = y - z[:, -1:] * total[None, :]
    sw = np.sqrt(weights)[:, None]
    head = np.linalg.lstsq(sw * design, sw * target, rcond=None)[0]
    return np.vstack([head, total[None, :] - head.sum(0, keepdims=True)])


@_one_blas_thread
def constrained_wls_se(
    z: np.ndarray, weights: np.ndarray, y: np.ndarray, phi: np.ndarray, strata: np.ndarray,
    covered: np.ndarray,
) -> np.ndarray:
    """Standard errors of :func:`constrained_wls` on stratified paired coalitions.

    The solution is a smooth function of the weighted moments ``A = sum w z z^T`` and
    ``b = sum w z y``; to first order (delta method) its error is
    ``P sum_j (h_j - mean)`` with ``h_j = sum_(c in pair j) w_c z_c (y_c - z_c . phi)`` and
    ``P = A^-1 - A^-1 1 1^T A^-1 / (1^T A^-1 1)`` (the efficiency constraint has no error).
    Pairs are a simple random sample without replacement within their stratum, so the
    variance is the sum over strata of ``n_s (1 - f_s)`` times the sample variance of
    ``P h_j`` (finite-population correction ``f_s``: enumerated strata add nothing).

    Parameters
    ----------
    z : ``(S, M)`` coalitions, complement pairs on consecutive rows; weights : ``(S,)``;
    y : ``(S, T)``; phi : ``(M, T)`` the solution; strata : ``(S,)`` stratum of each row;
    covered : fraction of each stratum's pairs in ``z`` (indexed by stratum)

    Returns
    -------
    se : ``(M, T)``
    """
    zf = z.astype(np.float64)
    gram = zf.T @ (weights[:, None] * zf)
    inv = _gram_inverse(gram)
    one = inv.sum(1)
    proj = inv - np.outer(one, one) / one.sum()
    # a pair's influence h_j = z_a r_a + z_b r_b with z_b = 1 - z_a is z_a (r_a - r_b) + r_b 1,
    # and P 1 = 0: so P h_j = (P z_a) d_j with d_j = r_a - r_b, a rank-one (M, T) term per
    # pair, and its per-stratum variance takes two matrix products (no (pairs, M, T) array)
    u = zf[0::2] @ proj.T  # (J, M)
    resid = weights[:, None] * (y - zf @ phi)  # (S, T)
    d = resid[0::2] - resid[1::2]  # (J, T)
    first, second, n_s = _stratum_moments(u, d, strata[0::2], len(covered))
    f = np.asarray(covered, dtype=np.float64)[:, None, None]
    n = n_s.astype(np.float64)[:, None, None]
    mean = first / np.maximum(n, 1.0)
    sample_var = (second / np.maximum(n, 1.0) - mean**2) * (n / np.maximum(n - 1.0, 1.0))
    # a stratum with one pair has no within-stratum spread to measure: bound it by its size
    term = np.where(n > 1, n * (1 - f) * np.maximum(sample_var, 0.0), (1 - f) * first**2)
    var = term[(f[:, 0, 0] < 1.0) & (n_s > 0)].sum(0)
    return np.sqrt(var)


def _gram_inverse(gram: np.ndarray) -> np.ndarray:
    """``pinv(gram)``: the plain inverse where it is one (8x faster than the SVD on 16
    features), the pseudo-inverse of a singular or ill-conditioned Gram matrix."""
    with contextlib.suppress(np.linalg.LinAlgError), np.errstate(all="ignore"):
        inv = np.linalg.inv(gram)
        check = gram @ inv
        check.flat[:: len(gram) + 1] -= 1.0
        if np.abs(check).max() <= 1e-9:  # also False for NaN
            return inv
    return np.linalg.pinv(gram)


#: (pairs x strata x features) values up to which the per-stratum moments of
#: :func:`constrained_wls_se` are two matrix products over a stratum-indicator design
#: (8 MiB); beyond, one pair of products per stratum
_ONE_PRODUCT_MOMENTS = 2**20


def _stratum_moments(
    u: np.ndarray, d: np.ndarray, stratum: np.ndarray, n_strata: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per stratum ``s``: ``sum_j u_j d_j^T`` and ``sum_j u_j^2 (d_j^2)^T`` over its pairs
    ``j`` (``(n_strata, M, T)`` each) and its number of pairs."""
    j, m = u.shape
    n_s = np.bincount(stratum, minlength=n_strata)
    if j * n_strata * m <= _ONE_PRODUCT_MOMENTS:
        onehot = (stratum[:, None] == np.arange(n_strata)).astype(u.dtype)
        us = (onehot[:, :, None] * u[:, None, :]).reshape(j, n_strata * m)
        first = (us.T @ d).reshape(n_strata, m, -1)
        second = ((us * us).T @ (d * d)).reshape(n_strata, m, -1)
        return first, second, n_s
    first = np.zeros((n_strata, m, d.shape[1]))
    second = np.zeros_like(first)
    for s in np.flatnonzero(n_s):
        rows = stratum == s
        us, ds = u[rows], d[rows]
        first[s], second[s] = us.T @ ds, (us * us).T @ (ds * ds)
    return first, second, n_s


def _subset_ridge(
    gram: np.ndarray, cross: np.ndarray, yy: np.ndarray, idx: np.ndarray, alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """Ridge fits on feature subsets ``idx`` (``(T, ..., k)``) of centred data, batched.

    Returns coefficients ``(T, ..., k)`` and weighted residual sums of squares ``(T, ...)``.
    """
    g = gram[idx[..., :, None], idx[..., None, :]]
    t_index = np.arange(idx.shape[0]).reshape((-1,) + (1,) * (idx.ndim - 1))
    b = cross.T[t_index, idx]
    reg = g + alpha * np.eye(idx.shape[-1])
    beta = (np.linalg.pinv(reg) @ b[..., None])[..., 0]
    quad = (beta[..., None, :] @ g @ beta[..., :, None])[..., 0, 0]
    rss = yy.reshape((-1,) + (1,) * (idx.ndim - 2)) - 2 * (beta * b).sum(-1) + quad
    return beta, rss


@_one_blas_thread
def weighted_ridge(
    z: np.ndarray,
    weights: np.ndarray,
    y: np.ndarray,
    *,
    alpha: float,
    feature_selection: str = "none",
    n_features: int = 10,
) -> np.ndarray:
    """LIME's surrogate: ``Ridge(alpha).fit(z, y, sample_weight=weights)`` for many targets.

    Parameters
    ----------
    z : ``(N, M)``, weights : ``(N,)``, y : ``(N, T)``
    alpha : float
        Ridge penalty (intercept not penalised), as scikit-learn's ``Ridge``.
    feature_selection : {"none", "forward", "highest_weights", "auto"}
        "forward": greedy forward selection of ``n_features`` features by the weighted
        residual sum of squares (i.e. weighted R^2); "highest_weights": the ``n_features``
        largest ``|coef|`` of the full fit, refitted; "auto": forward for
        ``n_features <= 6``, else highest_weights (lime's rule). Selection is per target.

    Returns
    -------
    coef : ``(M, T)``, zero for unselected features.

    Examples
    --------
    >>> import numpy as np
    >>> z = np.random.default_rng(0).integers(0, 2, size=(50, 3))
    >>> y = z @ np.array([[1.0], [-2.0], [0.5]]) + 3.0
    >>> weighted_ridge(z, np.ones(50), y, alpha=0.0)[:, 0].round(6)
    array([ 1. , -2. ,  0.5])
    >>> coef = weighted_ridge(z, np.ones(50), y, alpha=0.0, feature_selection="forward",
    ...                       n_features=1)
    >>> coef[:, 0] != 0
    array([False,  True, False])
    """
    z = z.astype(np.float64)
    m = z.shape[1]
    t = y.shape[1]
    w = weights  # sklearn semantics: the penalty is relative to the raw sample weights
    zbar = (w @ z) / w.sum()
    ybar = (w @ y) / w.sum()
    zc, yc = z - zbar, y - ybar
    if feature_selection == "auto":
        feature_selection = "forward" if n_features <= 6 else "highest_weights"
    if feature_selection == "none" or n_features >= m:
        sw = np.sqrt(w)[:, None]
        design = np.vstack([sw * zc, math.sqrt(alpha) * np.eye(m)])
        target = np.vstack([sw * yc, np.zeros((m, t))])
        return np.linalg.lstsq(design, target, rcond=None)[0]
    gram = zc.T @ (w[:, None] * zc)
    cross = zc.T @ (w[:, None] * yc)
    yy = (w[:, None] * yc**2).sum(0)
    k = int(n_features)
    coef = np.zeros((m, t))
    step = max(1, _RIDGE_STEP_VALUES // (m * (k + 1) ** 2))
    for start in range(0, t, step):
        stop = min(t, start + step)
        tc = stop - start
        sub_cross, sub_yy = cross[:, start:stop], yy[start:stop]
        if feature_selection == "highest_weights":
            full = np.linalg.solve(gram + alpha * np.eye(m), sub_cross) if alpha > 0 else (
                np.linalg.lstsq(gram, sub_cross, rcond=None)[0]
            )
            chosen = np.sort(np.argsort(-np.abs(full), axis=0, kind="stable")[:k].T, axis=1)
        else:  # forward
            chosen = np.zeros((tc, 0), dtype=np.int64)
            for _ in range(k):
                cand = np.broadcast_to(np.arange(m), (tc, m))
                idx = np.concatenate(
                    [np.broadcast_to(chosen[:, None, :], (tc, m, chosen.shape[1])),
                     cand[..., None]], axis=-1,
                )
                _, rss = _subset_ridge(gram, sub_cross, sub_yy, idx, alpha)
                taken = (chosen[:, :, None] == np.arange(m)[None, None, :]).any(1)
                rss = np.where(taken, np.inf, rss)
                chosen = np.concatenate([chosen, rss.argmin(1)[:, None]], axis=1)
        beta, _ = _subset_ridge(gram, sub_cross, sub_yy, chosen, alpha)
        cols = np.broadcast_to(np.arange(start, stop)[:, None], chosen.shape)
        coef[chosen, cols] = beta
    return coef
