"""Metrics of the attributions alone: completeness (against the decomposition goal), sparseness.

Neither calls the model.
"""

from __future__ import annotations

import warnings

import numpy as np

from ._checks import check_matrix, check_weights, to_numpy
from ._evaluation import weighted_mean


def completeness_error(
    attributions: object, goal: object, *, sample_weight: object = None
) -> float:
    """Relative decomposition error: ``sum_i w_i |sum_j a_ij - goal_i| / sum_i w_i |goal_i|``.

    0 means the attributions of every sample add up exactly to its decomposition goal
    (``Attribution.decomp_goal``, e.g. ``f(x) - f(x_ref)`` for Integrated Gradients,
    ``f(x) - f(0)`` for Gradient x Input). Lower is better.

    Parameters
    ----------
    attributions : array-like of shape (n_samples, n_features)
    goal : array-like of shape (n_samples,)
        What each sample's attributions should sum to.
    sample_weight : array-like of shape (n_samples,), optional

    Returns
    -------
    float
        NaN (with a RuntimeWarning) when every goal is 0.

    Examples
    --------
    >>> import numpy as np
    >>> from sknn_explain.metrics import completeness_error
    >>> completeness_error(np.array([[1.0, 2.0], [0.5, 0.5]]), np.array([3.0, 2.0]))
    0.2
    """
    A = check_matrix(attributions, "attributions")
    g = to_numpy(goal).reshape(-1)
    if g.shape != (A.shape[0],):
        raise ValueError(f"goal must have shape ({A.shape[0]},), got {g.shape}")
    if not np.isfinite(g).all():
        raise ValueError("goal contains NaN or infinite values")
    w = check_weights(sample_weight, A.shape[0])
    denom = float(np.sum(w * np.abs(g)))
    if denom == 0:
        warnings.warn(
            "every decomposition goal is 0: the relative completeness error is NaN",
            RuntimeWarning,
            stacklevel=2,
        )
        return float("nan")
    return float(np.sum(w * np.abs(A.sum(axis=1) - g)) / denom)


def sparseness(attributions: object, *, sample_weight: object = None) -> float:
    """Sparseness (Chalasani et al., 2020): mean Gini index of ``|a|``, higher is sparser.

    Per sample, with ``|a|`` sorted ascending, ``G = sum_k (2k - p - 1) |a|_(k) /
    (p sum_k |a|_(k))``: 0 when all features get the same magnitude, ``(p - 1) / p`` when
    one feature gets everything; all-zero rows count as 0.

    Parameters
    ----------
    attributions : array-like of shape (n_samples, n_features)
    sample_weight : array-like of shape (n_samples,), optional

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> from sknn_explain.metrics import sparseness
    >>> sparseness(np.array([[0.0, 0.0, 0.0, 5.0]]))
    0.75
    """
    A = np.sort(np.abs(check_matrix(attributions, "attributions")), axis=1)
    n, p = A.shape
    w = check_weights(sample_weight, n)
    k = np.arange(1, p + 1)
    total = A.sum(axis=1)
    gini = np.divide(
        (A * (2 * k - p - 1)).sum(axis=1), p * total, out=np.zeros(n), where=total > 0
    )
    return weighted_mean(gini, w)
