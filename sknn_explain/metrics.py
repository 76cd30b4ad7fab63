"""Explanation-quality metrics and scikit-learn scorers.

Two layers:

* **Functions on arrays** (:func:`deletion_auc`, :func:`insertion_auc`,
  :func:`faithfulness_correlation`, :func:`infidelity`, :func:`max_sensitivity`,
  :func:`completeness_error`, :func:`sparseness`, plus the raw :func:`deletion_curve` /
  :func:`insertion_curve`). They take tabular data ``X`` ``(n, p)``, attributions ``(n, p)``
  and a prediction function ``predict_fn(X) -> (m,) or (m, k)`` (e.g. a fitted model's
  ``predict_proba`` or :meth:`AttributionTransformer.explained_output`), and call the model on
  all perturbed rows in a few large batches: no Python loop over samples, steps or
  perturbations.
* **Scorers** (:func:`get_explanation_scorer`, :func:`make_explanation_scorer`):
  ``scorer(estimator, X, y=None)`` for a fitted
  :class:`~sknn_explain.sklearn.AttributionTransformer` or a Pipeline containing one, so
  ``GridSearchCV(..., scoring=get_explanation_scorer("neg_deletion_auc"))`` tunes explainer
  hyperparameters. As in scikit-learn, higher is always better: metrics where lower is
  better are negated and named ``neg_*``.

Definitions (``f`` is the explained output, ``r`` the reference, ``a`` the attributions):

* **deletion / insertion** (Petsiuk et al., 2018; Samek et al., 2017): features are
  replaced by ``r`` (deletion) or restored from ``r`` to ``x`` (insertion), most relevant
  first: in order of decreasing attribution when ``f(x) >= f(r)`` (the usual case for the
  predicted class), of increasing attribution when ``f(x) < f(r)``. The area under ``f``
  over the fraction of features changed is normalised by ``f(x) - f(r)``, so deletion
  runs from 1 to 0 and insertion from 0 to 1. Lower deletion AUC and higher insertion AUC
  are better; exact attributions of a linear model attain the best possible values.
* **completeness error**: ``sum_i |sum_j a_ij - goal_i| / sum_i |goal_i|`` where the goal
  is the method's decomposition goal (e.g. ``f(x) - f(x_ref)``).
* **faithfulness correlation** (Bhatt et al., 2020): Pearson correlation, over random
  feature subsets ``S``, between ``sum_{j in S} a_j`` and ``f(x) - f(x_S <- r_S)``.
* **infidelity** (Yeh et al., 2019): ``E[(I . a - (f(x) - f(x - I)))^2]`` with ``I`` a
  random subset of ``x - r`` (``perturbation="reference"``, for attributions that sum to
  an output difference: IG, DeepLift, SHAP, LRP, Gradient x Input) or Gaussian noise
  (``perturbation="noise"``, for plain gradients).
* **max-sensitivity** (Yeh et al., 2019): ``max ||a(y) - a(x)|| / ||a(x)||`` over ``y``
  drawn uniformly from an L-infinity ball around ``x``.
* **sparseness** (Chalasani et al., 2020): Gini index of ``|a|`` per sample, 0 for equal
  attributions, ``(p - 1) / p`` when one feature gets everything.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.utils import check_random_state

__all__ = [
    "ExplainedRows",
    "ExplanationScorer",
    "completeness_error",
    "deletion_auc",
    "deletion_curve",
    "faithfulness_correlation",
    "get_explanation_scorer",
    "get_explanation_scorer_names",
    "infidelity",
    "insertion_auc",
    "insertion_curve",
    "make_explanation_scorer",
    "max_sensitivity",
    "sparseness",
]

#: perturbed rows per ``predict_fn`` call when ``batch_size`` is None
DEFAULT_BATCH_ROWS = 8192

PredictFn = Callable[[np.ndarray], object]
ExplainFn = Callable[[np.ndarray, "np.ndarray | None"], object]


# ---------------------------------------------------------------------------------- validation
def _to_numpy(a: object) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().to("cpu", torch.float64).numpy()
    if hasattr(a, "to_numpy"):  # pandas
        return np.asarray(a.to_numpy(), dtype=np.float64)
    return np.asarray(a, dtype=np.float64)


def _check_matrix(a: object, name: str) -> np.ndarray:
    try:
        arr = _to_numpy(a)
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


def _check_pair(X: object, attributions: object) -> tuple[np.ndarray, np.ndarray]:
    X = _check_matrix(X, "X")
    A = _check_matrix(attributions, "attributions")
    if A.shape != X.shape:
        raise ValueError(
            f"attributions have shape {A.shape}, but X has shape {X.shape}; pass one attribution "
            "per sample and feature (for several outputs, select one per sample first)"
        )
    return X, A


def _check_reference(reference: object, X: np.ndarray) -> np.ndarray:
    """``(n, p)`` reference rows (default: the column means of ``X``)."""
    n, p = X.shape
    if reference is None:
        return np.broadcast_to(X.mean(axis=0), (n, p))
    ref = _to_numpy(reference)
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


def _check_target(target: object, n: int) -> np.ndarray | None:
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


def _check_weights(sample_weight: object, n: int) -> np.ndarray:
    if sample_weight is None:
        return np.ones(n)
    w = _to_numpy(sample_weight).reshape(-1)
    if w.shape != (n,):
        raise ValueError(f"sample_weight must have shape ({n},), got {w.shape}")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("sample_weight must be finite and non-negative")
    return w


def _check_positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _check_batch_size(batch_size: object) -> int:
    if batch_size is None:
        return DEFAULT_BATCH_ROWS
    return _check_positive_int(batch_size, "batch_size")


# ---------------------------------------------------------------------------------- model calls
def _keep_columns(predict_fn: PredictFn, X: object) -> PredictFn:
    """Call ``predict_fn`` with DataFrames named like ``X`` when ``X`` is one.

    A model fitted on a DataFrame (a Pipeline, say) warns "X does not have valid feature
    names" when called with bare arrays; the perturbed rows keep ``X``'s column names
    (values as float64, since perturbations mix in reference values).
    """
    columns = getattr(X, "columns", None)
    if columns is None:
        return predict_fn
    import pandas as pd

    def call(rows: np.ndarray) -> object:
        return predict_fn(pd.DataFrame(rows, columns=columns))

    return call


def _pick(out: object, target: np.ndarray | None, m: int) -> np.ndarray:
    """The explained output per perturbed row: ``(m,)``."""
    arr = _to_numpy(out)
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


def _evaluate(
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
        out[sl] = _pick(predict_fn(rows.reshape(m, -1)), t, m).reshape(-1, per_sample)
    return out


def _weighted_mean(values: np.ndarray, w: np.ndarray) -> float:
    ok = np.isfinite(values) & (w > 0)
    if not ok.any():
        return float("nan")
    return float(np.average(values[ok], weights=w[ok]))


# ---------------------------------------------------------------------------------- curves
def _ranks(A: np.ndarray, absolute: bool) -> np.ndarray:
    """Rank of each feature per sample, 0 = most relevant (stable for ties)."""
    key = -np.abs(A) if absolute else -A
    order = np.argsort(key, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(A.shape[1])[None, :], axis=1)
    return ranks


def _counts(p: int, n_steps: object) -> np.ndarray:
    steps = p if n_steps is None else min(_check_positive_int(n_steps, "n_steps"), p)
    return np.unique(np.round(np.linspace(0, p, steps + 1)).astype(np.int64))


def _curve(
    kind: str, predict_fn, X, attributions, target, reference, n_steps, absolute, batch_size
) -> tuple[np.ndarray, np.ndarray]:
    predict_fn = _keep_columns(predict_fn, X)
    X, A = _check_pair(X, attributions)
    n, p = X.shape
    ref = _check_reference(reference, X)
    t = _check_target(target, n)
    counts = _counts(p, n_steps)
    batch = _check_batch_size(batch_size)
    # most relevant = pushes the output away from f(reference): decreasing attribution when
    # f(x) >= f(reference), increasing when f(x) < f(reference)
    ends = _evaluate(
        predict_fn, lambda sl: np.stack([X[sl], ref[sl]], axis=1), n, 2, t, batch
    )
    direction = np.where(ends[:, 0] >= ends[:, 1], 1.0, -1.0)
    ranks = _ranks(A * direction[:, None], absolute)

    def rows(sl: slice) -> np.ndarray:
        changed = ranks[sl, None, :] < counts[None, :, None]  # (c, S+1, p)
        x, r = X[sl, None, :], ref[sl, None, :]
        return np.where(changed, r, x) if kind == "deletion" else np.where(changed, x, r)

    curves = _evaluate(predict_fn, rows, n, len(counts), t, batch)
    return counts / p, curves


_CURVE_PARAMS = """
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
        Order features by ``|a|`` instead of the signed attribution."""


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
    return _curve(
        "insertion", predict_fn, X, attributions, target, reference, n_steps, absolute,
        batch_size,
    )


deletion_curve.__doc__ = f"""Model output as the most relevant features are replaced by a reference.

    Step ``s`` replaces the ``counts[s]`` most relevant features of each sample: those with
    the largest attributions when ``f(x) >= f(reference)``, the smallest (most negative)
    when ``f(x) < f(reference)``. The first point is ``f(x)``, the last ``f(reference)``.
    {_CURVE_PARAMS}
    batch_size : int, optional
        Rows per ``predict_fn`` call (default {DEFAULT_BATCH_ROWS}).

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

insertion_curve.__doc__ = f"""Model output as the most relevant features are put back.

    Starts at ``f(reference)`` and ends at ``f(x)``; step ``s`` puts back the
    ``counts[s]`` most relevant features (ordered as in :func:`deletion_curve`).
    {_CURVE_PARAMS}
    batch_size : int, optional
        Rows per ``predict_fn`` call (default {DEFAULT_BATCH_ROWS}).

    Returns
    -------
    fractions : ndarray of shape (n_points,)
    curves : ndarray of shape (n_samples, n_points)

    Examples
    --------
    >>> import numpy as np
    >>> from sknn_explain.metrics import insertion_curve
    >>> w = np.array([3.0, 1.0, 2.0])
    >>> X = np.array([[1.0, 1.0, 1.0]])
    >>> insertion_curve(lambda Z: Z @ w, X, X * w, reference=np.zeros(3))[1].tolist()
    [[0.0, 3.0, 5.0, 6.0]]
    """


def _normalised_auc(
    fractions: np.ndarray, curves: np.ndarray, start: np.ndarray, end: np.ndarray, w: np.ndarray,
    anchor: np.ndarray,
) -> float:
    """``sum_i w_i sign(d_i) AUC(curve_i - anchor_i) / sum_i w_i |d_i|``, ``d = start - end``."""
    d = start - end
    area = np.trapezoid(curves - anchor[:, None], fractions, axis=1)
    denom = float(np.sum(w * np.abs(d)))
    if denom <= 1e-12 * max(1.0, float(np.max(np.abs(curves)))):
        warnings.warn(
            "f(x) equals f(reference) for every sample: the curve cannot be normalised and the "
            "AUC is NaN",
            RuntimeWarning,
            stacklevel=3,
        )
        return float("nan")
    return float(np.sum(w * np.sign(d) * area) / denom)


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
    fractions, curves = deletion_curve(
        predict_fn, X, attributions, target=target, reference=reference, n_steps=n_steps,
        absolute=absolute, batch_size=batch_size,
    )
    w = _check_weights(sample_weight, curves.shape[0])
    return _normalised_auc(fractions, curves, curves[:, 0], curves[:, -1], w, curves[:, -1])


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
    fractions, curves = insertion_curve(
        predict_fn, X, attributions, target=target, reference=reference, n_steps=n_steps,
        absolute=absolute, batch_size=batch_size,
    )
    w = _check_weights(sample_weight, curves.shape[0])
    return _normalised_auc(fractions, curves, curves[:, -1], curves[:, 0], w, curves[:, 0])


_AUC_NORM = """The curve of sample ``i`` is shifted by ``f(reference_i)`` and divided by
    ``d_i = f(x_i) - f(reference_i)``; samples are pooled as
    ``sum_i w_i sign(d_i) AUC_i / sum_i w_i |d_i|`` (the per-sample normalised AUCs averaged
    with weights ``w_i |d_i|``), which stays stable when some ``d_i`` are near zero. NaN
    (with a RuntimeWarning) when ``f(x) == f(reference)`` for every sample."""

deletion_auc.__doc__ = f"""Normalised area under the deletion curve (lower is better).

    0 means the output drops to ``f(reference)`` as soon as the first features go; 1 means
    it stays at ``f(x)`` until the last one; for a linear model and exact attributions
    ``insertion_auc = 1 - deletion_auc``. {_AUC_NORM}
    {_CURVE_PARAMS}
    sample_weight : array-like of shape (n_samples,), optional
    batch_size : int, optional
        Rows per ``predict_fn`` call.

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

insertion_auc.__doc__ = f"""Normalised area under the insertion curve (higher is better).

    {_AUC_NORM}
    {_CURVE_PARAMS}
    sample_weight : array-like of shape (n_samples,), optional
    batch_size : int, optional
        Rows per ``predict_fn`` call.

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> from sknn_explain.metrics import insertion_auc
    >>> w = np.array([3.0, 1.0, 2.0])
    >>> X = np.ones((1, 3))
    >>> round(insertion_auc(lambda Z: Z @ w, X, X * w, reference=np.zeros(3)), 4)
    0.6111
    """


# ---------------------------------------------------------------------------------- completeness
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
    A = _check_matrix(attributions, "attributions")
    g = _to_numpy(goal).reshape(-1)
    if g.shape != (A.shape[0],):
        raise ValueError(f"goal must have shape ({A.shape[0]},), got {g.shape}")
    if not np.isfinite(g).all():
        raise ValueError("goal contains NaN or infinite values")
    w = _check_weights(sample_weight, A.shape[0])
    denom = float(np.sum(w * np.abs(g)))
    if denom == 0:
        warnings.warn(
            "every decomposition goal is 0: the relative completeness error is NaN",
            RuntimeWarning,
            stacklevel=2,
        )
        return float("nan")
    return float(np.sum(w * np.abs(A.sum(axis=1) - g)) / denom)


# ---------------------------------------------------------------------------------- faithfulness
def _random_subsets(rng: np.random.Generator, n: int, t: int, p: int, size: int) -> np.ndarray:
    keys = rng.random((n, t, p))
    idx = np.argpartition(keys, size - 1, axis=-1)[..., :size] if size < p else None
    mask = np.zeros((n, t, p), dtype=bool)
    if idx is None:
        mask[:] = True
    else:
        np.put_along_axis(mask, idx, True, axis=-1)
    return mask


def _rng(random_state: object) -> np.random.Generator:
    seed = check_random_state(random_state).randint(0, 2**31 - 1)
    return np.random.default_rng(seed)


def faithfulness_correlation(
    predict_fn: PredictFn,
    X: object,
    attributions: object,
    *,
    target: object = None,
    reference: object = None,
    n_subsets: int = 32,
    subset_size: int | None = None,
    sample_weight: object = None,
    random_state: object = None,
    batch_size: int | None = None,
) -> float:
    """Faithfulness correlation (Bhatt et al., 2020): higher is better, at most 1.

    For each sample, ``n_subsets`` random feature subsets ``S`` of ``subset_size`` features
    are replaced by the reference; the Pearson correlation between ``sum_{j in S} a_j`` and
    the output drop ``f(x) - f(x_S <- r_S)`` is averaged over samples (samples where either
    side is constant are skipped). Exact attributions of a linear model score 1.

    Parameters
    ----------
    predict_fn, X, attributions, target, reference
        As in :func:`deletion_auc`.
    n_subsets : int, default=32
        Random subsets per sample.
    subset_size : int, optional
        Features per subset; default ``max(1, n_features // 4)``.
    sample_weight : array-like of shape (n_samples,), optional
    random_state : int, RandomState instance or None
        Seed of the subsets.
    batch_size : int, optional
        Rows per ``predict_fn`` call.

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> from sknn_explain.metrics import faithfulness_correlation
    >>> rng = np.random.default_rng(0)
    >>> X, w = rng.normal(size=(20, 6)), rng.normal(size=6)
    >>> exact = (X - X.mean(0)) * w
    >>> round(faithfulness_correlation(lambda Z: Z @ w, X, exact, random_state=0), 6)
    1.0
    """
    predict_fn = _keep_columns(predict_fn, X)
    X, A = _check_pair(X, attributions)
    n, p = X.shape
    ref = _check_reference(reference, X)
    t = _check_target(target, n)
    n_sub = _check_positive_int(n_subsets, "n_subsets")
    size = max(1, p // 4) if subset_size is None else _check_positive_int(subset_size,
                                                                            "subset_size")
    if size > p:
        raise ValueError(f"subset_size={size} is larger than the number of features ({p})")
    w = _check_weights(sample_weight, n)
    masks = _random_subsets(_rng(random_state), n, n_sub, p, size)

    def rows(sl: slice) -> np.ndarray:
        perturbed = np.where(masks[sl], ref[sl, None, :], X[sl, None, :])
        return np.concatenate([X[sl, None, :], perturbed], axis=1)

    out = _evaluate(predict_fn, rows, n, n_sub + 1, t, _check_batch_size(batch_size))
    drop = out[:, :1] - out[:, 1:]  # (n, T)
    summed = np.einsum("ntp,np->nt", masks, A)
    ds = summed - summed.mean(axis=1, keepdims=True)
    dd = drop - drop.mean(axis=1, keepdims=True)
    denom = np.sqrt((ds**2).sum(axis=1) * (dd**2).sum(axis=1))
    scale = np.abs(drop).max(axis=1) * np.abs(summed).max(axis=1)
    valid = denom > 1e-12 * np.maximum(scale, 1e-300)
    corr = np.full(n, np.nan)
    corr[valid] = (ds * dd).sum(axis=1)[valid] / denom[valid]
    return _weighted_mean(corr, w)


# ---------------------------------------------------------------------------------- infidelity
def infidelity(
    predict_fn: PredictFn,
    X: object,
    attributions: object,
    *,
    target: object = None,
    perturbation: str = "reference",
    reference: object = None,
    n_perturbations: int = 32,
    noise_scale: float = 0.1,
    scale: object = None,
    normalize: bool = False,
    sample_weight: object = None,
    random_state: object = None,
    batch_size: int | None = None,
) -> float:
    """Infidelity (Yeh et al., 2019): ``E[(I . a - (f(x) - f(x - I)))^2]``, lower is better.

    Parameters
    ----------
    predict_fn, X, attributions, target, reference
        As in :func:`deletion_auc`.
    perturbation : {"reference", "noise"}, default="reference"
        ``"reference"``: each feature is independently (probability 1/2) replaced by the
        reference, and the predicted change is the sum of the attributions of the replaced
        features - the right test for attributions that decompose an output difference
        (IG, DeepLift, SHAP, LRP, Gradient x Input). ``"noise"``: ``I ~ N(0, (noise_scale
        * scale)^2)`` and the predicted change is ``I . a`` - the right test for plain
        gradients (Gradient, SmoothGrad).
    n_perturbations : int, default=32
        Perturbations per sample.
    noise_scale : float, default=0.1
        Noise standard deviation relative to ``scale`` (``"noise"`` only).
    scale : array-like of shape (n_features,), optional
        Per-feature scale of the noise; default: the standard deviation of ``X``.
    normalize : bool, default=False
        Rescale the attributions of each sample by the least-squares optimal factor
        ``beta`` first (Yeh et al.'s scale-invariant variant).
    sample_weight : array-like of shape (n_samples,), optional
    random_state : int, RandomState instance or None
    batch_size : int, optional

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> from sknn_explain.metrics import infidelity
    >>> rng = np.random.default_rng(0)
    >>> X, w = rng.normal(size=(10, 4)), np.array([1.0, -2.0, 0.5, 3.0])
    >>> infidelity(lambda Z: Z @ w, X, np.tile(w, (10, 1)), perturbation="noise",
    ...            random_state=0) < 1e-20
    True
    """
    predict_fn = _keep_columns(predict_fn, X)
    X, A = _check_pair(X, attributions)
    n, p = X.shape
    t = _check_target(target, n)
    n_pert = _check_positive_int(n_perturbations, "n_perturbations")
    w = _check_weights(sample_weight, n)
    rng = _rng(random_state)
    if perturbation == "reference":
        ref = _check_reference(reference, X)
        masks = rng.random((n, n_pert, p)) < 0.5
        predicted = np.einsum("ntp,np->nt", masks, A)

        def perturbed(sl: slice) -> np.ndarray:
            return np.where(masks[sl], ref[sl, None, :], X[sl, None, :])
    elif perturbation == "noise":
        if not np.isscalar(noise_scale) or not noise_scale > 0:
            raise ValueError(f"noise_scale must be a positive number, got {noise_scale!r}")
        sd = X.std(axis=0) if scale is None else _to_numpy(scale).reshape(-1)
        if sd.shape != (p,):
            raise ValueError(f"scale must have shape ({p},), got {sd.shape}")
        noise = rng.standard_normal((n, n_pert, p)) * (float(noise_scale) * sd)
        predicted = np.einsum("ntp,np->nt", noise, A)

        def perturbed(sl: slice) -> np.ndarray:
            return X[sl, None, :] - noise[sl]
    else:
        raise ValueError(f"perturbation must be 'reference' or 'noise', got {perturbation!r}")

    def rows(sl: slice) -> np.ndarray:
        return np.concatenate([X[sl, None, :], perturbed(sl)], axis=1)

    out = _evaluate(predict_fn, rows, n, n_pert + 1, t, _check_batch_size(batch_size))
    actual = out[:, :1] - out[:, 1:]
    if normalize:
        num = (predicted * actual).sum(axis=1)
        den = (predicted**2).sum(axis=1)
        beta = np.divide(num, den, out=np.zeros(n), where=den > 0)
        predicted = predicted * beta[:, None]
    return _weighted_mean(((predicted - actual) ** 2).mean(axis=1), w)


# ---------------------------------------------------------------------------------- robustness
def max_sensitivity(
    explain_fn: ExplainFn,
    X: object,
    attributions: object = None,
    *,
    target: object = None,
    radius: float = 0.1,
    scale: object = None,
    n_perturbations: int = 10,
    norm: float = 2,
    normalize: bool = True,
    sample_weight: object = None,
    random_state: object = None,
) -> float:
    """Max-sensitivity (Yeh et al., 2019): how much the explanation moves, lower is better.

    For each sample, ``n_perturbations`` points ``y`` are drawn uniformly from the box
    ``|y_j - x_j| <= radius * scale_j`` and explained with the same target; the score is
    the mean over samples of ``max_y ||a(y) - a(x)|| / ||a(x)||`` (without the division when
    ``normalize=False``). All perturbed points are explained in one ``explain_fn`` call.

    Parameters
    ----------
    explain_fn : callable
        ``explain_fn(X, target) -> (m, n_features)`` attributions of the rows of ``X`` for
        the output indices ``target`` (an int array, or None when ``target`` is None).
    X : array-like of shape (n_samples, n_features)
    attributions : array-like of shape (n_samples, n_features), optional
        ``a(x)``; computed with ``explain_fn`` when None.
    target : int or array-like of int, optional
    radius : float, default=0.1
        Half-width of the box, relative to ``scale``.
    scale : array-like of shape (n_features,), optional
        Per-feature scale; default: the standard deviation of ``X``.
    n_perturbations : int, default=10
    norm : float, default=2
        Order of the vector norm (``numpy.linalg.norm``'s ``ord``; ``np.inf`` for max).
    normalize : bool, default=True
        Divide by ``||a(x)||`` (0 / 0 counts as 0).
    sample_weight : array-like of shape (n_samples,), optional
    random_state : int, RandomState instance or None

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> from sknn_explain.metrics import max_sensitivity
    >>> w = np.array([1.0, -2.0, 0.5])
    >>> gradient = lambda Z, target: np.tile(w, (len(Z), 1))  # a linear model's gradient
    >>> max_sensitivity(gradient, np.ones((4, 3)), random_state=0)
    0.0
    """
    X = _check_matrix(X, "X")
    n, p = X.shape
    t = _check_target(target, n)
    if not np.isscalar(radius) or not radius > 0:
        raise ValueError(f"radius must be a positive number, got {radius!r}")
    n_pert = _check_positive_int(n_perturbations, "n_perturbations")
    w = _check_weights(sample_weight, n)
    sd = X.std(axis=0) if scale is None else _to_numpy(scale).reshape(-1)
    if sd.shape != (p,):
        raise ValueError(f"scale must have shape ({p},), got {sd.shape}")

    def explain(Z: np.ndarray, tz: np.ndarray | None) -> np.ndarray:
        out = _to_numpy(explain_fn(Z, tz))
        if out.shape != Z.shape:
            raise ValueError(
                f"explain_fn returned shape {out.shape} for input of shape {Z.shape}; expected "
                "one attribution per row and feature"
            )
        return out

    A = explain(X, t) if attributions is None else _check_pair(X, attributions)[1]
    rng = _rng(random_state)
    delta = rng.uniform(-1.0, 1.0, size=(n, n_pert, p)) * (float(radius) * sd)
    Y = (X[:, None, :] + delta).reshape(n * n_pert, p)
    AY = explain(Y, None if t is None else np.repeat(t, n_pert)).reshape(n, n_pert, p)
    diff = np.linalg.norm(AY - A[:, None, :], ord=norm, axis=-1).max(axis=1)
    if normalize:
        base = np.linalg.norm(A, ord=norm, axis=-1)
        diff = np.divide(diff, base, out=np.where(diff > 0, np.inf, 0.0), where=base > 0)
    if (np.isinf(diff) & (w > 0)).any():
        return float("inf")
    return _weighted_mean(diff, w)


# ---------------------------------------------------------------------------------- sparseness
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
    A = np.sort(np.abs(_check_matrix(attributions, "attributions")), axis=1)
    n, p = A.shape
    w = _check_weights(sample_weight, n)
    k = np.arange(1, p + 1)
    total = A.sum(axis=1)
    gini = np.divide(
        (A * (2 * k - p - 1)).sum(axis=1), p * total, out=np.zeros(n), where=total > 0
    )
    return _weighted_mean(gini, w)


# ---------------------------------------------------------------------------------- scorers
@dataclass
class ExplainedRows:
    """Everything a scorer needs about a fitted transformer's explanations of ``X``.

    Produced by ``AttributionTransformer.explained_rows(X)``: one row per explained
    (sample, output) pair - one per sample for a single target, ``n_classes`` per sample
    for ``target="all"``.

    Attributes
    ----------
    X : ndarray of shape (m, n_features)
        The sample of each row.
    values : ndarray of shape (m, n_features)
        Its attributions.
    target : ndarray of shape (m,)
        Column of ``predict_fn``'s output that the row explains.
    goal : ndarray of shape (m,) or None
        The method's decomposition goal (None if it has none).
    sample_index : ndarray of shape (m,)
        Index of the row's sample in the original ``X``.
    predict_fn : callable
        ``predict_fn(X) -> (m, n_columns)``: the explained outputs.
    explain_fn : callable
        ``explain_fn(X, target) -> (m, n_features)``.
    reference : ndarray of shape (n_features,)
        Replacement values for "removed" features.
    scale : ndarray of shape (n_features,)
        Per-feature scale for noise / robustness perturbations.
    """

    X: np.ndarray
    values: np.ndarray
    target: np.ndarray
    goal: np.ndarray | None
    sample_index: np.ndarray
    predict_fn: PredictFn
    explain_fn: ExplainFn
    reference: np.ndarray
    scale: np.ndarray


def _completeness_from_rows(rows: ExplainedRows, w: np.ndarray, **kwargs) -> float:
    goal = rows.goal
    if goal is None:  # methods without a goal: measured against f(x) - f(reference)
        out = _to_numpy(rows.predict_fn(np.vstack([rows.X, rows.reference[None, :]])))
        m = rows.X.shape[0]
        goal = out[np.arange(m), rows.target] - out[m, rows.target]
    return completeness_error(rows.values, goal, sample_weight=w, **kwargs)


def _with_predict(func):
    def run(rows: ExplainedRows, w: np.ndarray, **kwargs) -> float:
        kwargs.setdefault("reference", rows.reference)
        if func is infidelity:
            kwargs.setdefault("scale", rows.scale)
        return func(
            rows.predict_fn, rows.X, rows.values, target=rows.target, sample_weight=w, **kwargs
        )

    return run


def _sensitivity_from_rows(rows: ExplainedRows, w: np.ndarray, **kwargs) -> float:
    kwargs.setdefault("scale", rows.scale)
    return max_sensitivity(
        rows.explain_fn, rows.X, rows.values, target=rows.target, sample_weight=w, **kwargs
    )


def _sparseness_from_rows(rows: ExplainedRows, w: np.ndarray, **kwargs) -> float:
    return sparseness(rows.values, sample_weight=w, **kwargs)


#: metric name -> (evaluator, greater_is_better, uses random_state)
_METRICS: dict[str, tuple[Callable[..., float], bool, bool]] = {
    "completeness_error": (_completeness_from_rows, False, False),
    "deletion_auc": (_with_predict(deletion_auc), False, False),
    "insertion_auc": (_with_predict(insertion_auc), True, False),
    "faithfulness_correlation": (_with_predict(faithfulness_correlation), True, True),
    "infidelity": (_with_predict(infidelity), False, True),
    "max_sensitivity": (_sensitivity_from_rows, False, True),
    "sparseness": (_sparseness_from_rows, True, False),
}


def _locate(estimator: object, X: object) -> tuple[object, object]:
    """The AttributionTransformer in ``estimator`` and ``X`` as that step receives it."""
    if hasattr(estimator, "explained_rows"):
        return estimator, X
    steps = getattr(estimator, "steps", None)
    if isinstance(steps, list):
        for i, (_, step) in enumerate(steps):
            if hasattr(step, "explained_rows"):
                return step, (estimator[:i].transform(X) if i > 0 else X)
    best = getattr(estimator, "best_estimator_", None)
    if best is not None:
        return _locate(best, X)
    raise TypeError(
        f"explanation scorers need a fitted AttributionTransformer or a Pipeline containing "
        f"one, got {type(estimator).__name__}"
    )


class ExplanationScorer:
    """A scikit-learn scorer ``scorer(estimator, X, y=None)`` for explanation quality.

    Use :func:`make_explanation_scorer` or :func:`get_explanation_scorer` to build one.
    ``estimator`` is a fitted :class:`~sknn_explain.sklearn.AttributionTransformer`, a
    Pipeline containing one (``X`` is passed through the steps before it) or a fitted
    search whose ``best_estimator_`` is one of those. ``y`` is ignored: the metrics judge
    the explanation of the model, not the model. Returns ``sign * metric`` so that higher
    is better.

    Parameters
    ----------
    metric : str
        A metric name accepted by :func:`make_explanation_scorer`.
    sign : {1, -1}
        -1 for metrics where lower is better.
    kwargs : dict
        Keyword arguments of the metric function.
    """

    def __init__(self, metric: str, sign: int, kwargs: dict) -> None:
        self.metric = metric
        self.sign = sign
        self.kwargs = kwargs

    def __call__(
        self, estimator: object, X: object, y: object = None, sample_weight: object = None
    ) -> float:
        transformer, Xt = _locate(estimator, X)
        rows = transformer.explained_rows(Xt)
        n = int(rows.sample_index.max()) + 1 if rows.sample_index.size else 0
        w = _check_weights(sample_weight, n)[rows.sample_index]
        func = _METRICS[self.metric][0]
        return self.sign * func(rows, w, **self.kwargs)

    def __repr__(self) -> str:
        args = "".join(f", {k}={v!r}" for k, v in self.kwargs.items())
        prefix = "" if self.sign > 0 else "neg_"
        return f"ExplanationScorer('{prefix}{self.metric}'{args})"


def make_explanation_scorer(metric: str, **kwargs: object) -> ExplanationScorer:
    """Build a scorer for an explanation-quality metric.

    Parameters
    ----------
    metric : str
        ``"completeness_error"``, ``"deletion_auc"``, ``"insertion_auc"``,
        ``"faithfulness_correlation"``, ``"infidelity"``, ``"max_sensitivity"`` or
        ``"sparseness"``. The reference (default: the transformer's ``reference_``, the mean
        of its training data) and the perturbation scale (its ``scale_``) come from the
        transformer unless given.
    **kwargs
        Keyword arguments of the metric function (e.g. ``n_steps=10``,
        ``perturbation="noise"``). For the random metrics ``random_state`` defaults to 0,
        so every candidate of a grid search is judged on the same perturbations.

    Returns
    -------
    ExplanationScorer
        Returns the metric for "higher is better" metrics and its negative otherwise.

    Examples
    --------
    >>> from sknn_explain.metrics import make_explanation_scorer
    >>> make_explanation_scorer("deletion_auc", n_steps=10)
    ExplanationScorer('neg_deletion_auc', n_steps=10)
    """
    if metric not in _METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {sorted(_METRICS)}")
    _, greater, random = _METRICS[metric]
    if random:
        kwargs.setdefault("random_state", 0)
    for bad in ("target", "sample_weight", "explain_fn", "predict_fn", "X", "attributions"):
        if bad in kwargs:
            raise TypeError(f"{bad} is set by the scorer and cannot be given")
    return ExplanationScorer(metric, 1 if greater else -1, dict(kwargs))


def get_explanation_scorer_names() -> list[str]:
    """Names accepted by :func:`get_explanation_scorer` (and ``AttributionTransformer``'s
    ``scoring``).

    Examples
    --------
    >>> from sknn_explain.metrics import get_explanation_scorer_names
    >>> "neg_deletion_auc" in get_explanation_scorer_names()
    True
    """
    return sorted(name if greater else f"neg_{name}" for name, (_, greater, _) in
                  _METRICS.items())


def get_explanation_scorer(name: str | ExplanationScorer) -> ExplanationScorer:
    """A scorer by its scikit-learn-style name (``"neg_deletion_auc"``, ``"insertion_auc"``...).

    Parameters
    ----------
    name : str or ExplanationScorer
        One of :func:`get_explanation_scorer_names`; a scorer is returned unchanged.

    Returns
    -------
    ExplanationScorer

    Examples
    --------
    >>> from sknn_explain.metrics import get_explanation_scorer
    >>> get_explanation_scorer("faithfulness_correlation")
    ExplanationScorer('faithfulness_correlation', random_state=0)
    """
    if isinstance(name, ExplanationScorer):
        return name
    if not isinstance(name, str):
        raise TypeError(f"scorer name must be a string, got {type(name).__name__}")
    names = get_explanation_scorer_names()
    if name not in names:
        raise ValueError(f"unknown explanation scorer {name!r}; choose one of {names}")
    metric = name[4:] if name.startswith("neg_") else name
    return make_explanation_scorer(metric)

