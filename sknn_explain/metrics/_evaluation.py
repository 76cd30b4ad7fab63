"""Calling the explained model on perturbed rows: in a few large batches, one output per row."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from ._checks import to_numpy

#: ``predict_fn(X) -> (m,) or (m, k)``: the explained model output
PredictFn = Callable[[np.ndarray], object]
#: ``explain_fn(X, target) -> (m, n_features)``: attributions of rows for output indices
ExplainFn = Callable[[np.ndarray, "np.ndarray | None"], object]


def keep_columns(predict_fn: PredictFn, X: object) -> PredictFn:
    """Call ``predict_fn`` with DataFrames named like ``X`` when ``X`` is one.

    A model fitted on a DataFrame (a Pipeline, say) warns "X does not have valid feature
    names" when called with bare arrays; the perturbed rows keep ``X``'s column names
    (values as float64, since perturbations mix in reference values).
    """
    columns = getattr(X, "columns", None)
    if columns is None:
        return predict_fn

    def call(rows: np.ndarray) -> object:
        return predict_fn(pd.DataFrame(rows, columns=columns))

    return call


def pick_target(out: object, target: np.ndarray | None, m: int) -> np.ndarray:
    """The explained output per perturbed row: ``(m,)``."""
    arr = to_numpy(out)
    if arr.ndim == 2 and arr.shape[1] == 1 and target is None:
        arr = arr[:, 0]
    if arr.shape[:1] != (m,) or arr.ndim > 2:
        raise ValueError(
            f"predict_fn returned shape {arr.shape} for {m} rows; expected ({m},) or ({m}, k)"
        )
    if arr.ndim == 1:
        if target is not None and (target != 0).any():
            raise ValueError("predict_fn returns one output, so target can only be 0 or None")
        return arr
    if target is None:
        raise ValueError(
            f"predict_fn returns {arr.shape[1]} outputs per row; pass target (an output index, "
            "or one per sample) to say which output the attributions explain"
        )
    if target.max() >= arr.shape[1]:
        raise ValueError(
            f"target index {int(target.max())} is out of range for {arr.shape[1]} outputs"
        )
    return arr[np.arange(m), target]


def evaluate_rows(
    predict_fn: PredictFn,
    make_rows: Callable[[slice], np.ndarray],
    n: int,
    per_sample: int,
    target: np.ndarray | None,
    batch_size: int,
) -> np.ndarray:
    """``f`` on ``per_sample`` perturbed rows of every sample: ``(n, per_sample)``.

    ``make_rows(samples)`` builds the ``(len, per_sample, p)`` perturbed rows of a slice of
    samples; slices hold as many samples as fit in ``batch_size`` rows (at least one), so
    ``predict_fn`` is called ``ceil(n * per_sample / batch_size)`` times or so.
    """
    chunk = max(1, batch_size // per_sample)
    out = np.empty((n, per_sample))
    for start in range(0, n, chunk):
        sl = slice(start, min(n, start + chunk))
        rows = make_rows(sl)
        m = rows.shape[0] * per_sample
        t = None if target is None else np.repeat(target[sl], per_sample)
        out[sl] = pick_target(predict_fn(rows.reshape(m, -1)), t, m).reshape(-1, per_sample)
    return out


def weighted_mean(values: np.ndarray, w: np.ndarray) -> float:
    ok = np.isfinite(values) & (w > 0)
    if not ok.any():
        return float("nan")
    return float(np.average(values[ok], weights=w[ok]))
