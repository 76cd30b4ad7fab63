"""Region perturbation / pixel flipping (Bach et al., 2015; Samek et al., 2017) and AOPC.

Regions (features, signal segments, image patches) are removed cumulatively in the order of
their summed relevance - most relevant first (MoRF), least relevant first (LeRF) or at
random - and the explained output is recorded after each step. AOPC, the area over the
perturbation curve, averages ``f(x) - f(x^(k))`` over the steps ``k = 0 .. L``.
"""

from __future__ import annotations

import numpy as np

from ._checks import as_generator, check_batch_size, check_positive_int, check_weights
from ._evaluation import PredictFn, weighted_mean
from ._regions import (
    check_batch,
    check_order,
    region_labels,
    region_ranks,
    region_scores,
    removal_curves,
    replacement,
)


def region_perturbation_curve(
    predict_fn: PredictFn,
    X: object,
    attributions: object,
    *,
    target: object = None,
    order: str = "morf",
    region_size: object = None,
    segments: object = None,
    n_regions: int | None = None,
    perturbation: str = "reference",
    reference: object = None,
    value_range: tuple[float, float] | None = None,
    random_state: object = None,
    batch_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Model output as regions are removed cumulatively in the order of their relevance.

    Step ``k`` has the first ``k`` regions of each sample removed (regions ordered by the
    sum of their attributions: decreasing for ``"morf"``, increasing for ``"lerf"``, random
    for ``"random"``). With ``region_size=1`` on images this is pixel flipping (all
    channels of a pixel at once); on tabular data every feature is a region and, with the
    default reference, the MoRF curve is :func:`deletion_curve` with signed ordering.

    Parameters
    ----------
    predict_fn : callable
        ``predict_fn(Z) -> (m,) or (m, k)`` on a batch ``Z`` of shape ``(m, *input_shape)``.
    X : array-like of shape (n_samples, ...)
        Model layout: ``(n, p)``, ``(n, C, L)`` or ``(n, C, H, W)`` (channels first).
    attributions : array-like
        Same shape as ``X``, or ``(n, *spatial)`` / ``(n, 1, *spatial)`` for all channels.
    target : int or array-like of int, optional
        Output column explained (one per sample or one for all); required when
        ``predict_fn`` returns several columns.
    order : {"morf", "lerf", "random"}, default="morf"
    region_size : int or tuple of int, optional
        Cell size of the regular grid over the spatial axes (regions span all channels);
        default: at most 8 cells per axis (see ``grid_segments``). Ignored for tabular X.
    segments : array-like of int, optional
        Custom regions instead of the grid: labels of shape ``input_shape``, the spatial
        shape, or either with a leading sample axis.
    n_regions : int, optional
        Steps of the curve (regions removed in all); default: every region.
    perturbation : {"reference", "mean", "uniform"}, default="reference"
        Removed elements take the reference value, the sample's own mean (per channel) or
        values drawn once per sample from ``U(value_range)`` (Samek et al.'s choice).
    reference : float or array-like, optional
        Broadcastable to ``X``; default: the mean of ``X`` over samples.
    value_range : (float, float), optional
        Range of ``"uniform"``; default: ``(X.min(), X.max())``.
    random_state : int, RandomState instance or None
        Seed of ``"uniform"`` values and of the ``"random"`` order.
    batch_size : int, optional
        Rows per ``predict_fn`` call (default 8192).

    Returns
    -------
    n_removed : ndarray of shape (n_points,)
        Regions removed at each point, ``0 .. n_regions``.
    curves : ndarray of shape (n_samples, n_points)
        The explained output after each step (the first column is ``f(x)``).

    Examples
    --------
    >>> import numpy as np
    >>> from sknn_explain.metrics import region_perturbation_curve
    >>> w = np.array([3.0, 1.0, 2.0])
    >>> X = np.ones((1, 3))
    >>> region_perturbation_curve(lambda Z: Z @ w, X, X * w, reference=0.0)[1].tolist()
    [[6.0, 3.0, 1.0, 0.0]]
    """
    x, a = check_batch(X, attributions)
    n, shape = x.shape[0], x.shape[1:]
    order = check_order(order)
    rng = as_generator(random_state)
    labels = region_labels(shape, n, region_size, segments)
    scores, sizes = region_scores(a.reshape(n, -1), labels, "sum")
    s_min = int((sizes > 0).sum(axis=1).min())
    steps = s_min if n_regions is None else check_positive_int(n_regions, "n_regions")
    if steps > s_min:
        raise ValueError(f"n_regions={steps} exceeds the number of regions ({s_min})")
    fill = replacement(x, perturbation, reference, value_range, rng)
    ranks = region_ranks(scores, sizes, order, rng)
    counts = np.arange(steps + 1)
    curves = removal_curves(
        predict_fn, x, fill, labels, ranks, counts, target, check_batch_size(batch_size)
    )
    return counts, curves


def aopc(
    predict_fn: PredictFn,
    X: object,
    attributions: object,
    *,
    target: object = None,
    order: str = "morf",
    region_size: object = None,
    segments: object = None,
    n_regions: int | None = None,
    perturbation: str = "reference",
    reference: object = None,
    value_range: tuple[float, float] | None = None,
    sample_weight: object = None,
    random_state: object = None,
    batch_size: int | None = None,
) -> float:
    """Area over the perturbation curve (Samek et al., 2017).

    ``AOPC = 1 / (L + 1) sum_{k=0}^{L} (f(x) - f(x^(k)))`` averaged over samples, with
    ``x^(k)`` the input after ``k`` steps of :func:`region_perturbation_curve`. For
    ``order="morf"`` higher is better (the output falls fast); for ``order="lerf"`` lower
    is better. Not normalised: it is in the units of the explained output.

    Parameters
    ----------
    predict_fn, X, attributions, target, order, region_size, segments, n_regions
        As in :func:`region_perturbation_curve`.
    perturbation, reference, value_range, random_state, batch_size
        As in :func:`region_perturbation_curve`.
    sample_weight : array-like of shape (n_samples,), optional

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> from sknn_explain.metrics import aopc
    >>> w = np.array([3.0, 1.0, 2.0])
    >>> X = np.ones((1, 3))
    >>> aopc(lambda Z: Z @ w, X, X * w, reference=0.0)  # (0 + 3 + 5 + 6) / 4
    3.5
    """
    _, curves = region_perturbation_curve(
        predict_fn, X, attributions, target=target, order=order, region_size=region_size,
        segments=segments, n_regions=n_regions, perturbation=perturbation,
        reference=reference, value_range=value_range, random_state=random_state,
        batch_size=batch_size,
    )
    w = check_weights(sample_weight, curves.shape[0])
    return weighted_mean((curves[:, :1] - curves).mean(axis=1), w)
