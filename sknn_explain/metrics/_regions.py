"""Inputs of any rank for the region metrics: checks, regions (segments) and their removal.

The region metrics (:mod:`._region_perturbation`, :mod:`._irof`, :mod:`._road`) take a batch
``X`` of shape ``(n, *shape)`` in the model's layout - ``(n, p)`` tabular, ``(n, C, L)``
signals, ``(n, C, H, W)`` images (channels first) - and attributions of the same shape, or
of the spatial shape ``(n, *spatial)`` / ``(n, 1, *spatial)`` (shared by all channels).
A *region* is a set of input elements removed together: a feature (tabular), or a cell of
:func:`~sknn_explain._segmentation.grid_segments` / a user segment spanning all channels.
"""

from __future__ import annotations

import numpy as np

from .._segmentation import grid_segments
from ._checks import check_target, to_numpy
from ._evaluation import PredictFn, evaluate_rows, pick_target

ORDERS = ("morf", "lerf", "random")


def check_batch(X: object, attributions: object) -> tuple[np.ndarray, np.ndarray]:
    """``X`` ``(n, *shape)`` and attributions broadcast to the same shape (float64)."""
    try:
        x = to_numpy(X)
        a = to_numpy(attributions)
    except (TypeError, ValueError) as err:
        raise TypeError(f"X and attributions must be numeric arrays: {err}") from err
    if x.ndim < 2 or x.shape[0] == 0 or 0 in x.shape:
        raise ValueError(
            f"X must have shape (n_samples, *input_shape) with at least one sample, got {x.shape}"
        )
    if a.shape != x.shape:
        spatial = (x.shape[0], *x.shape[2:])
        if x.ndim >= 3 and a.shape == spatial:
            a = a[:, None]
        if x.ndim >= 3 and a.shape == (x.shape[0], 1, *x.shape[2:]):
            a = np.broadcast_to(a, x.shape)
        else:
            raise ValueError(
                f"attributions have shape {a.shape}, but X has shape {x.shape}; pass one "
                f"attribution per input element (or per position, {spatial}, for all channels)"
            )
    if not np.isfinite(x).all():
        raise ValueError("X contains NaN or infinite values")
    if not np.isfinite(a).all():
        raise ValueError("attributions contain NaN or infinite values")
    return x, np.ascontiguousarray(a)


def check_order(order: object) -> str:
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    return str(order)


def region_labels(
    shape: tuple[int, ...], n: int, region_size: object = None, segments: object = None
) -> np.ndarray:
    """``(n, prod(shape))`` region label per element, ``0 .. S_i - 1`` per sample.

    ``segments`` (integer labels of shape ``shape``, ``shape[1:]``, ``(n, *shape)`` or
    ``(n, *shape[1:])``) wins over the regular grid of ``region_size``.
    """
    if segments is None:
        lab = grid_segments(shape, region_size if len(shape) > 1 else None)
        _, inv = np.unique(lab.reshape(-1), return_inverse=True)
        return np.broadcast_to(inv.reshape(1, -1), (n, inv.size))
    seg = np.asarray(segments)
    if seg.dtype.kind not in "iu":
        raise TypeError(f"segments must hold integer labels, got dtype {seg.dtype}")
    spatial = shape[1:] if len(shape) > 1 else None
    if seg.shape == shape or (spatial is not None and seg.shape == spatial):
        seg = np.broadcast_to(seg, shape)[None]
    elif seg.shape == (n, *shape):
        pass
    elif spatial is not None and seg.shape == (n, *spatial):
        seg = np.broadcast_to(seg[:, None], (n, *shape))
    else:
        allowed = [shape, (n, *shape)] + ([spatial, (n, *spatial)] if spatial else [])
        raise ValueError(f"segments has shape {seg.shape}; expected one of {allowed}")
    seg = np.broadcast_to(seg, (n, *shape)).reshape(n, -1)
    out = np.empty(seg.shape, dtype=np.int64)
    for i in range(n):  # relabel 0 .. S_i - 1 per sample
        out[i] = np.unique(seg[i], return_inverse=True)[1].reshape(-1)
    return out


def region_scores(A: np.ndarray, labels: np.ndarray, how: str) -> tuple[np.ndarray, np.ndarray]:
    """Per sample and region the ``"sum"`` or ``"mean"`` attribution: ``(n, S_max)``, sizes."""
    n = A.shape[0]
    s_max = int(labels.max()) + 1
    flat = (labels + s_max * np.arange(n)[:, None]).reshape(-1)
    sums = np.bincount(flat, weights=A.reshape(-1), minlength=n * s_max).reshape(n, s_max)
    sizes = np.bincount(flat, minlength=n * s_max).reshape(n, s_max)
    if how == "mean":
        sums = np.divide(sums, sizes, out=np.zeros_like(sums), where=sizes > 0)
    return sums, sizes


def region_ranks(
    scores: np.ndarray, sizes: np.ndarray, order: str, rng: np.random.Generator | None
) -> np.ndarray:
    """Removal step of each region, ``0`` first; missing regions (size 0) come last."""
    if order == "random":
        key = rng.random(scores.shape)
    else:
        key = -scores if order == "morf" else scores.copy()
    key = np.where(sizes > 0, key, np.inf)
    idx = np.argsort(key, axis=1, kind="stable")
    ranks = np.empty_like(idx)
    np.put_along_axis(ranks, idx, np.arange(scores.shape[1])[None, :], axis=1)
    return ranks


def replacement(
    X: np.ndarray, perturbation: str, reference: object, value_range: object,
    rng: np.random.Generator,
) -> np.ndarray:
    """``(n, *shape)`` values that removed elements take."""
    if perturbation == "reference":
        if reference is None:
            return np.broadcast_to(X.mean(axis=0), X.shape)
        ref = to_numpy(reference)
        try:
            ref = np.broadcast_to(ref, X.shape)
        except ValueError:
            raise ValueError(
                f"reference of shape {ref.shape} does not broadcast to X's shape {X.shape}"
            ) from None
        if not np.isfinite(ref).all():
            raise ValueError("reference contains NaN or infinite values")
        return ref
    if perturbation == "mean":  # each sample's own mean per channel (its mean for tabular)
        axes = tuple(range(2, X.ndim)) if X.ndim > 2 else (1,)
        return np.broadcast_to(X.mean(axis=axes, keepdims=True), X.shape)
    if perturbation == "uniform":
        lo, hi = (X.min(), X.max()) if value_range is None else value_range
        if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
            raise ValueError(f"value_range must be (low, high) with low <= high, got "
                             f"{value_range!r}")
        return rng.uniform(float(lo), float(hi), size=X.shape)
    raise ValueError(
        f"perturbation must be 'reference', 'mean' or 'uniform', got {perturbation!r}"
    )


def removal_curves(
    predict_fn: PredictFn, X: np.ndarray, fill: np.ndarray, labels: np.ndarray,
    ranks: np.ndarray, counts: np.ndarray, target: object, batch: int,
) -> np.ndarray:
    """``f`` after removing the ``counts[k]`` first regions of each sample: ``(n, K)``."""
    n, shape = X.shape[0], X.shape[1:]
    t = check_target(target, n)
    flat_x, flat_fill = X.reshape(n, -1), fill.reshape(n, -1)
    elem_rank = np.take_along_axis(ranks, labels, axis=1)  # (n, E)

    def rows(sl: slice) -> np.ndarray:
        removed = elem_rank[sl, None, :] < counts[None, :, None]
        return np.where(removed, flat_fill[sl, None, :], flat_x[sl, None, :])

    def call(Z: np.ndarray) -> object:
        return predict_fn(Z.reshape(-1, *shape))

    return evaluate_rows(call, rows, n, len(counts), t, batch)


def predict_target(predict_fn: PredictFn, X: np.ndarray, target: object) -> np.ndarray:
    t = check_target(target, X.shape[0])
    return pick_target(predict_fn(X), t, X.shape[0])
