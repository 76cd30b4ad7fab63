"""Deletion and insertion curves (Petsiuk et al., 2018; Samek et al., 2017) and their AUCs.

Features are replaced by the reference (deletion) or restored from it (insertion), most
relevant first; the AUCs are normalised by ``f(x) - f(reference)`` so that deletion runs
from 1 to 0 and insertion from 0 to 1.
"""

from __future__ import annotations

import warnings

import numpy as np

from ._checks import (
    check_batch_size,
    check_pair,
    check_positive_int,
    check_reference,
    check_target,
    check_weights,
)
from ._evaluation import PredictFn, evaluate_rows, keep_columns


def _ranks(A: np.ndarray, absolute: bool) -> np.ndarray:
    """Rank of each feature per sample, 0 = most relevant (stable for ties)."""
    key = -np.abs(A) if absolute else -A
    order = np.argsort(key, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(A.shape[1])[None, :], axis=1)
    return ranks


def _counts(p: int, n_steps: object) -> np.ndarray:
    """Number of changed features at each point of the curve, from 0 to ``p``."""
    steps = p if n_steps is None else min(check_positive_int(n_steps, "n_steps"), p)
    return np.unique(np.round(np.linspace(0, p, steps + 1)).astype(np.int64))


def _curve(
    kind: str, predict_fn, X, attributions, target, reference, n_steps, absolute, batch_size
) -> tuple[np.ndarray, np.ndarray]:
    """``(fractions, curves)`` of a ``"deletion"`` or ``"insertion"`` curve."""
    predict_fn = keep_columns(predict_fn, X)
    X, A = check_pair(X, attributions)
    n, p = X.shape
    ref = check_reference(reference, X)
    t = check_target(target, n)
    counts = _counts(p, n_steps)
    batch = check_batch_size(batch_size)
    # most relevant = pushes the output away from f(reference): decreasing attribution when
    # f(x) >= f(reference), increasing when f(x) < f(reference)
    ends = evaluate_rows(
        predict_fn, lambda sl: np.stack([X[sl], ref[sl]], axis=1), n, 2, t, batch
    )
    direction = np.where(ends[:, 0] >= ends[:, 1], 1.0, -1.0)
    ranks = _ranks(A * direction[:, None], absolute)

    def rows(sl: slice) -> np.ndarray:
        changed = ranks[sl, None, :] < counts[None, :, None]  # (c, S+1, p)
        x, r = X[sl, None, :], ref[sl, None, :]
        return np.where(changed, r, x) if kind == "deletion" else np.where(changed, x, r)

    curves = evaluate_rows(predict_fn, rows, n, len(counts), t, batch)
    return counts / p, curves


def _normalised_auc(fractions: np.ndarray, curves: np.ndarray, kind: str, w: np.ndarray) -> float:
    """``sum_i w_i sign(d_i) AUC(curve_i - end_i) / sum_i w_i |d_i|``, ``d = start - end``.

    ``start`` is ``f(x)`` for deletion and ``f(reference)`` for insertion, ``end`` the other.
    """
    start, end = (curves[:, 0], curves[:, -1]) if kind == "deletion" else (
        curves[:, -1], curves[:, 0])
    d = start - end
    area = np.trapezoid(curves - end[:, None], fractions, axis=1)
    denom = float(np.sum(w * np.abs(d)))
    if denom <= 1e-12 * max(1.0, float(np.max(np.abs(curves)))):
        warnings.warn(
            "f(x) equals f(reference) for every sample: the curve cannot be normalised and the "
            "AUC is NaN",
            RuntimeWarning,
            stacklevel=4,
        )
        return float("nan")
    return float(np.sum(w * np.sign(d) * area) / denom)


def _auc(kind: str, predict_fn, X, attributions, target, reference, n_steps, absolute,
         sample_weight, batch_size) -> float:
    fractions, curves = _curve(
        kind, predict_fn, X, attributions, target, reference, n_steps, absolute, batch_size
    )
    w = check_weights(sample_weight, curves.shape[0])
    return _normalised_auc(fractions, curves, kind, w)


def deletion_curve(
    predict_fn: PredictFn,
    X: object,
    attributions: object,
    *,
    target: object = None,
    reference: object = None,
    n_steps: int | None = None,
    absolute: bool = False,
    batch_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Model output as the most relevant features are replaced by a reference.

    Step ``s`` replaces the ``counts[s]`` most relevant features of each sample: those with
    the largest attributions when ``f(x) >= f(reference)``, the smallest (most negative)
    when ``f(x) < f(reference)``. The first point is ``f(x)``, the last ``f(reference)``.

    Parameters
    ----------
    predict_fn : callable
        ``predict_fn(X) -> (m,) or (m, k)`` array: the explained model output (for
        classifiers best the function that was explained, e.g. logits).
    X : array-like of shape (n_samples, n_features)
        The explained samples.
    attributions : array-like of shape (n_samples, n_features)
        One attribution per sample and feature, for the output given by ``target``.
    target : int or array-like of int, optional
        Column of ``predict_fn``'s output explained by the attributions (one per sample or
        one for all); required when ``predict_fn`` returns several columns.
    reference : array-like of shape (n_features,) or (n_samples, n_features), optional
        Values that replace "removed" features; default: the column means of ``X``.
    n_steps : int, optional
        Points on the curve after the start; features are changed in groups of about
        ``n_features / n_steps``. Default: one feature per step.
    absolute : bool, default=False
        Order features by ``|a|`` instead of the signed attribution.
    batch_size : int, optional
        Rows per ``predict_fn`` call (default 8192).

    Returns
    -------
    fractions : ndarray of shape (n_points,)
        Fraction of features replaced at each point, from 0 to 1.
    curves : ndarray of shape (n_samples, n_points)
        The explained output at each point.

    Examples
    --------
    >>> import numpy as np
    >>> from sknn_explain.metrics import deletion_curve
    >>> w = np.array([3.0, 1.0, 2.0])
    >>> X = np.array([[1.0, 1.0, 1.0]])
    >>> fractions, curve = deletion_curve(lambda Z: Z @ w, X, X * w, reference=np.zeros(3))
    >>> curve.tolist()
    [[6.0, 3.0, 1.0, 0.0]]
    """
    return _curve(
        "deletion", predict_fn, X, attributions, target, reference, n_steps, absolute, batch_size
    )


def insertion_curve(
    predict_fn: PredictFn,
    X: object,
    attributions: object,
    *,
    target: object = None,
    reference: object = None,
    n_steps: int | None = None,
    absolute: bool = False,
    batch_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Model output as the most relevant features are put back.

    Starts at ``f(reference)`` and ends at ``f(x)``; step ``s`` puts back the
    ``counts[s]`` most relevant features (ordered as in :func:`deletion_curve`).

    Parameters
    ----------
    predict_fn, X, attributions, target, reference, n_steps, absolute, batch_size
        As in :func:`deletion_curve`.

    Returns
    -------
    fractions : ndarray of shape (n_points,)
        Fraction of features put back at each point, from 0 to 1.
    curves : ndarray of shape (n_samples, n_points)
        The explained output at each point.

    Examples
    --------
    >>> import numpy as np
    >>> from sknn_explain.metrics import insertion_curve
    >>> w = np.array([3.0, 1.0, 2.0])
    >>> X = np.array([[1.0, 1.0, 1.0]])
    >>> insertion_curve(lambda Z: Z @ w, X, X * w, reference=np.zeros(3))[1].tolist()
    [[0.0, 3.0, 5.0, 6.0]]
    """
    return _curve(
        "insertion", predict_fn, X, attributions, target, reference, n_steps, absolute,
        batch_size,
    )


def deletion_auc(
    predict_fn: PredictFn,
    X: object,
    attributions: object,
    *,
    target: object = None,
    reference: object = None,
    n_steps: int | None = None,
    absolute: bool = False,
    sample_weight: object = None,
    batch_size: int | None = None,
) -> float:
    """Normalised area under the deletion curve (lower is better).

    0 means the output drops to ``f(reference)`` as soon as the first features go; 1 means
    it stays at ``f(x)`` until the last one; for a linear model and exact attributions
    ``insertion_auc = 1 - deletion_auc``. The curve of sample ``i`` is shifted by
    ``f(reference_i)`` and divided by ``d_i = f(x_i) - f(reference_i)``; samples are pooled
    as ``sum_i w_i sign(d_i) AUC_i / sum_i w_i |d_i|`` (the per-sample normalised AUCs
    averaged with weights ``w_i |d_i|``), which stays stable when some ``d_i`` are near
    zero. NaN (with a RuntimeWarning) when ``f(x) == f(reference)`` for every sample.

    Parameters
    ----------
    predict_fn, X, attributions, target, reference, n_steps, absolute, batch_size
        As in :func:`deletion_curve`.
    sample_weight : array-like of shape (n_samples,), optional

    Returns
    -------
    float

    See Also
    --------
    deletion_curve, insertion_auc

    Examples
    --------
    >>> import numpy as np
    >>> from sknn_explain.metrics import deletion_auc
    >>> w = np.array([3.0, 1.0, 2.0])
    >>> X = np.ones((1, 3))
    >>> good = deletion_auc(lambda Z: Z @ w, X, X * w, reference=np.zeros(3))
    >>> bad = deletion_auc(lambda Z: Z @ w, X, -(X * w), reference=np.zeros(3))
    >>> bool(good < bad)
    True
    """
    return _auc("deletion", predict_fn, X, attributions, target, reference, n_steps, absolute,
                sample_weight, batch_size)


def insertion_auc(
    predict_fn: PredictFn,
    X: object,
    attributions: object,
    *,
    target: object = None,
    reference: object = None,
    n_steps: int | None = None,
    absolute: bool = False,
    sample_weight: object = None,
    batch_size: int | None = None,
) -> float:
    """Normalised area under the insertion curve (higher is better).

    Normalised and pooled over samples as in :func:`deletion_auc` (the curve runs from
    ``f(reference)`` to ``f(x)``, so 1 means the output reaches ``f(x)`` as soon as the
    first features are back). NaN (with a RuntimeWarning) when ``f(x) == f(reference)`` for
    every sample.

    Parameters
    ----------
    predict_fn, X, attributions, target, reference, n_steps, absolute, batch_size
        As in :func:`deletion_curve`.
    sample_weight : array-like of shape (n_samples,), optional

    Returns
    -------
    float

    See Also
    --------
    insertion_curve, deletion_auc

    Examples
    --------
    >>> import numpy as np
    >>> from sknn_explain.metrics import insertion_auc
    >>> w = np.array([3.0, 1.0, 2.0])
    >>> X = np.ones((1, 3))
    >>> round(insertion_auc(lambda Z: Z @ w, X, X * w, reference=np.zeros(3)), 4)
    0.6111
    """
    return _auc("insertion", predict_fn, X, attributions, target, reference, n_steps, absolute,
                sample_weight, batch_size)
