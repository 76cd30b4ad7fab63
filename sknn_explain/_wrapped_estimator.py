"""The estimator an :class:`~sknn_explain.transformer.AttributionTransformer` wraps.

Fitting it (a clone, seeded; skorch nets get float32 data and encoded labels), checking that a
prefit one is fitted, and scoring it by permutation importance with the same data conventions.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from sklearn.base import clone, is_classifier
from sklearn.exceptions import NotFittedError
from sklearn.inspection import permutation_importance
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted, column_or_1d
from torch import nn

from ._default_network import default_estimator


def skorch_kind(est: object) -> str | None:
    """"binary", "classifier" or "net" (regressors, plain NeuralNet) for skorch nets, else None."""
    try:
        from skorch import NeuralNet, NeuralNetBinaryClassifier, NeuralNetClassifier
    except ImportError:  # pragma: no cover - skorch is a dependency
        return None
    if not isinstance(est, NeuralNet):
        return None
    if isinstance(est, NeuralNetBinaryClassifier):
        return "binary"
    if isinstance(est, NeuralNetClassifier):
        return "classifier"
    return "net"


def safe_is_classifier(est: object) -> bool:
    """``is_classifier`` that is False (not an error) for torch modules and plain objects."""
    if isinstance(est, nn.Module):
        return False
    try:
        return bool(is_classifier(est))
    except (AttributeError, TypeError):
        return False


def check_fitted_estimator(est: object) -> None:
    """Raise ``NotFittedError`` unless ``est`` (given with ``prefit=True``) is fitted."""
    if skorch_kind(est) is not None:
        if not getattr(est, "initialized_", False):
            raise NotFittedError(
                f"prefit=True, but the skorch {type(est).__name__} is not fitted; call "
                "net.fit(X, y) first or use prefit=False"
            )
        return
    if isinstance(est, nn.Module):
        return
    try:
        check_is_fitted(est)
    except NotFittedError as err:
        raise NotFittedError(
            f"prefit=True, but the {type(est).__name__} is not fitted; fit it first or use "
            "prefit=False"
        ) from err
    except TypeError as err:
        raise TypeError(
            f"estimator must be a skorch net, a torch module or a fitted scikit-learn "
            f"estimator, got {type(est).__name__}"
        ) from err


def _seeded_fit(est: object, seed: int | None, X, y, fit_params: dict) -> None:
    """Fit; skorch nets under a forked, seeded torch RNG (the global state is restored)."""
    if seed is None or skorch_kind(est) is None:
        est.fit(X, y, **fit_params)
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        est.fit(X, y, **fit_params)


def _skorch_regression_target(y: object) -> np.ndarray:
    """Regression targets as skorch nets are fitted on: float32, ``(n, n_targets)``."""
    y = np.asarray(y, dtype=np.float32)
    return y.reshape(-1, 1) if y.ndim == 1 else y


def fit_estimator(
    estimator: object,
    X: np.ndarray,
    y: object,
    seed: int | None,
    fit_params: dict,
    model_input: Callable[[np.ndarray], object],
) -> tuple[object, np.ndarray | None]:
    """Clone and fit ``estimator`` (None: :func:`default_estimator` for ``y``'s kind).

    ``model_input(X)`` is what a scikit-learn estimator is fitted on (a DataFrame when the
    transformer saw column names). Returns the fitted estimator and the class labels (None
    for regressors).
    """
    if estimator is None:
        kind = type_of_target(y, input_name="y", raise_unknown=True)
        if kind in ("binary", "multiclass"):
            classes = np.unique(y)
            if len(classes) < 2:
                raise ValueError(
                    f"y has 1 class ({classes[0]!r}); a classifier needs at least 2 classes"
                )
            est = default_estimator(True, seed)
        elif kind in ("continuous", "continuous-multioutput"):
            est = default_estimator(False, seed)
        else:
            raise ValueError(
                f"the default estimator supports class labels or continuous targets, got a "
                f"{kind} target; pass an estimator"
            )
    else:
        est = clone(estimator)
    skorch = skorch_kind(est)
    classes = None
    if skorch in ("binary", "classifier"):
        classes, encoded = np.unique(column_or_1d(y), return_inverse=True)
        if len(classes) < 2:
            raise ValueError(
                f"y has 1 class ({classes[0]!r}); a classifier needs at least 2 classes"
            )
        if skorch == "binary":
            if len(classes) != 2:
                raise ValueError(
                    f"NeuralNetBinaryClassifier needs 2 classes, y has {len(classes)}"
                )
            y_fit = encoded.astype(np.float32)
        else:
            y_fit = encoded.astype(np.int64)
        _seeded_fit(est, seed, X.astype(np.float32), y_fit, fit_params)
    elif skorch is not None:
        y_fit = _skorch_regression_target(y)
        _seeded_fit(est, seed, X.astype(np.float32), y_fit, fit_params)
    else:
        if not hasattr(est, "fit"):
            raise TypeError(
                f"{type(est).__name__} has no fit method; pass a fitted model with "
                "prefit=True"
            )
        est.fit(model_input(X), y, **fit_params)
        if safe_is_classifier(est):
            classes = np.asarray(est.classes_)
    return est, classes


def permutation_importances(
    est: object,
    X: np.ndarray,
    y: object,
    classes: np.ndarray | None,
    model_input: Callable[[np.ndarray], object],
    n_repeats: int,
    random_state: object,
) -> np.ndarray:
    """``permutation_importance(est, X, y, ...).importances_mean``.

    The data and labels are given to the estimator as :func:`fit_estimator` gave them
    (float32 and labels encoded by their index in ``classes`` for skorch nets).
    """
    skorch = skorch_kind(est)
    if skorch is not None:
        X = np.asarray(X, dtype=np.float32)
        if skorch in ("binary", "classifier"):
            y = np.searchsorted(classes, column_or_1d(y))
        else:
            y = _skorch_regression_target(y)
    else:
        X = model_input(X)
    if not callable(getattr(est, "score", None)):
        raise TypeError(
            f"importance='permutation' uses the estimator's score method, which "
            f"{type(est).__name__} does not have; use importance='attribution' or an "
            "estimator with score (a scikit-learn estimator, a skorch classifier / regressor)"
        )
    result = permutation_importance(est, X, y, n_repeats=n_repeats, random_state=random_state)
    return np.asarray(result.importances_mean, dtype=np.float64)
