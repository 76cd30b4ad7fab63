"""Input checks shared by the metrics: arrays, references, targets, weights, counts, seeds.

Every check converts what it accepts (numpy, pandas, torch) to float64 numpy and raises a
``ValueError`` / ``TypeError`` that names the argument otherwise.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch
from sklearn.utils import check_random_state

#: perturbed rows per ``predict_fn`` call when ``batch_size`` is None
DEFAULT_BATCH_ROWS = 8192


def to_numpy(a: object) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().to("cpu", torch.float64).numpy()
    if hasattr(a, "to_numpy"):  # pandas
        return np.asarray(a.to_numpy(), dtype=np.float64)
    return np.asarray(a, dtype=np.float64)


def check_matrix(a: object, name: str) -> np.ndarray:
    try:
        arr = to_numpy(a)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} could not be converted to a float array: {err}") from err
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array (n_samples, n_features), got shape {arr.shape}"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def check_pair(X: object, attributions: object) -> tuple[np.ndarray, np.ndarray]:
    X = check_matrix(X, "X")
    A = check_matrix(attributions, "attributions")
    if A.shape != X.shape:
        raise ValueError(
            f"attributions have shape {A.shape}, but X has shape {X.shape}; pass one attribution "
            "per sample and feature (for several outputs, select one per sample first)"
        )
    return X, A


def check_reference(reference: object, X: np.ndarray) -> np.ndarray:
    """``(n, p)`` reference rows (default: the column means of ``X``)."""
    n, p = X.shape
    if reference is None:
        return np.broadcast_to(X.mean(axis=0), (n, p))
    ref = to_numpy(reference)
    if ref.shape == (p,):
        ref = np.broadcast_to(ref, (n, p))
    elif ref.shape == (1, p):
        ref = np.broadcast_to(ref[0], (n, p))
    elif ref.shape != (n, p):
        raise ValueError(
            f"reference must have shape ({p},) or ({n}, {p}) to match X, got {ref.shape}"
        )
    if not np.isfinite(ref).all():
        raise ValueError("reference contains NaN or infinite values")
    return ref


def check_target(target: object, n: int) -> np.ndarray | None:
    if target is None:
        return None
    t = np.asarray(target)
    if t.ndim == 0:
        t = np.full(n, t)
    if t.shape != (n,) or t.dtype.kind not in "iu":
        raise ValueError(
            f"target must be an int or an int array with one output index per sample ({n}), "
            f"got {np.asarray(target)!r:.80}"
        )
    if (t < 0).any():
        raise ValueError("target output indices must be non-negative")
    return t.astype(np.int64)


def check_weights(sample_weight: object, n: int) -> np.ndarray:
    if sample_weight is None:
        return np.ones(n)
    w = to_numpy(sample_weight).reshape(-1)
    if w.shape != (n,):
        raise ValueError(f"sample_weight must have shape ({n},), got {w.shape}")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("sample_weight must be finite and non-negative")
    return w


def check_positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def check_batch_size(batch_size: object) -> int:
    if batch_size is None:
        return DEFAULT_BATCH_ROWS
    return check_positive_int(batch_size, "batch_size")


def as_generator(random_state: object) -> np.random.Generator:
    """A numpy ``Generator`` seeded from scikit-learn's ``random_state`` convention."""
    seed = check_random_state(random_state).randint(0, 2**31 - 1)
    return np.random.default_rng(seed)
