"""Iterative removal of features, IROF (Rieger & Hansen, 2020).

Segments (superpixels, grid cells, tabular features) are removed cumulatively in order of
decreasing *mean* relevance; the explained output, divided by ``f(x)``, is recorded over the
fraction of segments removed, and IROF is the area over that curve.
"""

from __future__ import annotations

import warnings

import numpy as np

from ._checks import as_generator, check_batch_size, check_weights
from ._evaluation import PredictFn, weighted_mean
from ._regions import (
    check_batch,
    region_labels,
    region_ranks,
    region_scores,
    removal_curves,
    replacement,
)


def irof_curve(
    predict_fn: PredictFn,
    X: object,
    attributions: object,
    *,
    target: object = None,
    segments: object = None,
    region_size: object = None,
    perturbation: str = "mean",
    reference: object = None,
    value_range: tuple[float, float] | None = None,
    random_state: object = None,
    batch_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``f(x^(k)) / f(x)`` after removing the ``k`` segments of highest mean relevance.

    Parameters
    ----------
    predict_fn : callable
        ``predict_fn(Z) -> (m,) or (m, k)`` on a batch of shape ``(m, *input_shape)``; best
        a class probability (IROF divides by ``f(x)``).
    X : array-like of shape (n_samples, ...)
        Model layout (channels first).
    attributions : array-like
        Same shape as ``X``, or ``(n, *spatial)`` / ``(n, 1, *spatial)``.
    target : int or array-like of int, optional
    segments : array-like of int, optional
        Segment labels: of shape ``input_shape`` or spatial shape (shared by all samples),
        or with a leading sample axis (e.g. SLIC superpixels per image). Default: the
        regular grid of ``region_size`` (every feature for tabular data).
    region_size : int or tuple of int, optional
        Grid cell size when ``segments`` is None.
    perturbation : {"mean", "reference", "uniform"}, default="mean"
        Value of removed elements: the sample's mean per channel (as the paper), the
        reference, or uniform noise (see :func:`region_perturbation_curve`).
    reference, value_range, random_state, batch_size
        As in :func:`region_perturbation_curve`.

    Returns
    -------
    n_removed : ndarray of shape (S_max + 1,)
        Segments removed at each point.
    curves : ndarray of shape (n_samples, S_max + 1)
        ``f(x^(k)) / f(x)``; a sample with ``S_i < S_max`` segments stays at its last value.

    Examples
    --------
    >>> import numpy as np
    >>> from sknn_explain.metrics import irof_curve
    >>> w = np.array([3.0, 1.0, 2.0])
    >>> X = np.ones((1, 3))
    >>> irof_curve(lambda Z: Z @ w, X, X * w, perturbation="reference", reference=0.0)[1]
    array([[1.        , 0.5       , 0.16666667, 0.        ]])
    """
    x, a = check_batch(X, attributions)
    n, shape = x.shape[0], x.shape[1:]
    rng = as_generator(random_state)
    labels = region_labels(shape, n, region_size, segments)
    scores, sizes = region_scores(a.reshape(n, -1), labels, "mean")
    fill = replacement(x, perturbation, reference, value_range, rng)
    ranks = region_ranks(scores, sizes, "morf", rng)
    counts = np.arange(scores.shape[1] + 1)
    curves = removal_curves(
        predict_fn, x, fill, labels, ranks, counts, target, check_batch_size(batch_size)
    )
    y0 = curves[:, :1]
    tiny = np.abs(y0) <= 1e-12 * max(1.0, float(np.abs(curves).max()))
    if tiny.any():
        warnings.warn(
            f"f(x) is 0 for {int(tiny.sum())} sample(s): IROF divides by it, their curves are NaN",
            RuntimeWarning, stacklevel=2,
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(tiny, np.nan, curves / np.where(tiny, 1.0, y0))
    return counts, ratio


def irof(
    predict_fn: PredictFn,
    X: object,
    attributions: object,
    *,
    target: object = None,
    segments: object = None,
    region_size: object = None,
    perturbation: str = "mean",
    reference: object = None,
    value_range: tuple[float, float] | None = None,
    sample_weight: object = None,
    random_state: object = None,
    batch_size: int | None = None,
) -> float:
    """IROF (Rieger & Hansen, 2020): area over the normalised removal curve, higher is better.

    Per sample with ``S`` segments, ``IROF = 1 - trapz(f(x^(k)) / f(x), k / S)`` over
    ``k = 0 .. S`` (the fraction of segments removed runs from 0 to 1), averaged over
    samples (samples with ``f(x) = 0`` are skipped with a warning). Quantus's ``IROF``
    reports the unnormalised ``S - trapz_{k=1..S}(f(x^(k)) / f(x))`` instead.

    Parameters
    ----------
    predict_fn, X, attributions, target, segments, region_size, perturbation
        As in :func:`irof_curve`.
    reference, value_range, random_state, batch_size
        As in :func:`irof_curve`.
    sample_weight : array-like of shape (n_samples,), optional

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> from sknn_explain.metrics import irof
    >>> w = np.array([3.0, 1.0, 2.0])
    >>> X = np.ones((1, 3))
    >>> round(irof(lambda Z: Z @ w, X, X * w, perturbation="reference", reference=0.0), 4)
    0.6111
    """
    x, _ = check_batch(X, attributions)
    n_seg = (region_labels(x.shape[1:], x.shape[0], region_size, segments).max(axis=1) + 1)
    _, ratio = irof_curve(
        predict_fn, X, attributions, target=target, segments=segments,
        region_size=region_size, perturbation=perturbation, reference=reference,
        value_range=value_range, random_state=random_state, batch_size=batch_size,
    )
    w = check_weights(sample_weight, ratio.shape[0])
    scores = np.array([
        1.0 - np.trapezoid(r[: s + 1], np.arange(s + 1) / s) for r, s in zip(ratio, n_seg)
    ])
    return weighted_mean(scores, w)
