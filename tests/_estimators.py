"""Fitting scikit-learn estimators in tests without their convergence warnings."""

from __future__ import annotations

import warnings


def quiet_fit(est, X, y):
    """``est.fit(X, y)`` with warnings silenced (tiny ``max_iter`` does not converge)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X, y)
