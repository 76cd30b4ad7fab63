"""Model-agnostic explainers: :class:`LIME` and :class:`KernelSHAP`.

Both only *evaluate* the model, so they explain torch modules, skorch nets, converted graphs,
any fitted scikit-learn estimator (``predict_proba`` / ``decision_function`` / ``predict``,
neural or not) and plain prediction functions alike.

Interpretable features
    Tabular columns, or grid segments of signals / images (see
    :mod:`sknn_explain._segmentation`; custom label arrays via ``segments``). A binary vector
    ``z`` switches features on (value of the explained sample ``x``) or off (value of a
    reference). A feature's attribution is spread evenly over its input elements, so the
    attributions keep the input shape and summing them over a segment gives the feature's
    value.

Kernel SHAP (Lundberg & Lee, 2017)
    ``v(z) = mean_b f(z * x + (1 - z) * b)`` over the background rows ``b`` (interventional
    expectation), solved as a weighted least-squares problem with the Shapley kernel weights
    and the efficiency constraint ``sum(phi) = link(f(x)) - link(mean f(X_ref))`` enforced
    exactly by eliminating one variable (as ``shap`` does). All ``2^M - 2`` coalitions are
    enumerated when ``M <= 12`` (``n_samples="auto"``) or when ``n_samples >= 2^M - 2``; the
    result then *is* the exact Shapley value. Otherwise coalition sizes are enumerated or
    sampled with complement pairs exactly like ``shap.KernelExplainer``.

LIME (Ribeiro et al., 2016)
    Perturbations ``z`` switch off a uniformly drawn number (``1..M``) of random features;
    the first perturbation is ``x`` itself. Off features take the mean of ``X_ref``
    (``baseline="mean"``) or the values of one random row of ``X_ref`` per perturbation
    (``baseline="sample"``). Kernel ``pi(z) = exp(-d(z)^2 / (2 kernel_width^2))`` (lime's
    ``sqrt(exp(-d^2 / w^2))``) on the cosine distance ``d(z) = 1 - sqrt(|z| / M)`` between
    ``z`` and the all-on vector (lime's image / text distance). The surrogate is
    ``sklearn.linear_model.Ridge(alpha).fit(z, f, sample_weight=pi)``, computed in closed
    form for all samples and outputs at once.

Mixed-type DataFrames
    Fitted on a scikit-learn estimator / Pipeline (or a prediction function) with a pandas
    DataFrame ``X_ref`` holding text, ``category``, datetime or missing values (anything a
    float array cannot hold exactly), both explainers work on the raw columns: each column
    is coded by its distinct values over ``X_ref`` and ``X`` (a missing value is a value of
    its own), coalitions swap codes, and every model call gets a DataFrame with the user's
    columns, column order and dtypes (same categories, bools stay bool, NaN stays NaN), so
    the pipeline does its own encoding and imputation. One attribution per original column.
    ``X`` must then be a DataFrame with the same columns in the same order; values unseen in
    ``X_ref`` are allowed as far as the pipeline accepts them (a pipeline that refuses an
    unknown category raises a ValueError naming the column and value).
    ``Attribution.inputs`` holds the raw values (an object array). LIME needs
    ``baseline="sample"`` there (a mean of text has no meaning).

Both explainers draw one set of coalitions / perturbations per ``explain`` call and use it
for every sample, so one weighted least-squares solve serves all samples and outputs, and a
sample's attributions do not depend on which other samples are explained with it (for an
int ``random_state``).
"""

from __future__ import annotations

import copy
import functools
import itertools
import math
import warnings
from collections.abc import Sequence
from numbers import Integral, Real

import numpy as np
import pandas as pd
import torch
from scipy.special import comb

from .._batching import auto_batch_size
from .._data import InputBatch
from .._model import call_forward, describe_rows, nonfinite_message, predict
from .._output_selection import OutputSelection
from .._segmentation import FeatureMap, build_feature_map
from .._validation import (
    NON_NEGATIVE_REAL,
    POSITIVE_INT,
    RANDOM_STATE,
    Interval,
    SequenceOf,
    StrOptions,
)
from ..convert.graph import Graph
from ._predict_fn import (
    RESPONSE_METHODS,
    FunctionModel,
    NativeInputs,
    RawColumns,
    SklearnModel,
    as_predict_model,
    is_torch_like,
    native_dtypes,
    needs_raw_columns,
    user_float_dtype,
)
from .base import Explainer, random_streams

__all__ = [
    "KernelSHAP",
    "LIME",
    "constrained_wls",
    "kernel_shap_coalitions",
    "lime_perturbations",
    "masked_outputs",
    "weighted_ridge",
]

#: "auto" enumerates every coalition up to this many features
MAX_EXACT_FEATURES = 12
_LINKS = ("identity", "logit")
_SELECTIONS = ("none", "auto", "forward", "highest_weights")
_BASELINES = ("mean", "sample")
_LOGIT_EPS = 1e-12
#: default rows per model call on CPU (bigger chunks fall out of cache and run slower)
CPU_MAX_ROWS = 4096


# ---------------------------------------------------------------------------- coalitions
def _all_coalitions(m: int) -> tuple[np.ndarray, np.ndarray]:
    codes = np.arange(1, 2**m - 1, dtype=np.int64)
    z = ((codes[:, None] >> np.arange(m)) & 1).astype(bool)
    size = z.sum(1)
    w = (m - 1) / (comb(m, size) * size * (m - size))
    return z, w / w.sum()


def kernel_shap_coalitions(
    n_features: int, n_samples: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Coalitions and Shapley-kernel weights for Kernel SHAP (shap's sampling scheme).

    Parameters
    ----------
    n_features : int
        Number of players ``M`` (>= 2).
    n_samples : int
        Number of coalitions to evaluate. ``>= 2^M - 2`` enumerates all of them.
    rng : numpy Generator

    Returns
    -------
    z : ndarray of bool, ``(S, M)``
        Coalitions (True: feature present), never empty or full.
    weights : ndarray, ``(S,)``
        Regression weights (sum 1).
    exact : bool
        Whether all coalitions were enumerated.

    Notes
    -----
    Subset sizes ``s`` and ``M - s`` are handled together, in the order 1, 2, ...: a size is
    enumerated completely (with its complements) while the remaining budget times its
    share of the Shapley kernel mass covers all its subsets; the rest of the budget draws
    sizes from the remaining kernel mass and random subsets of that size, each followed by
    its complement; repeated draws increase a coalition's weight instead of adding a row.
    This is the algorithm of ``shap.KernelExplainer``.

    Examples
    --------
    >>> import numpy as np
    >>> z, w, exact = kernel_shap_coalitions(4, 100, np.random.default_rng(0))
    >>> z.shape, exact
    ((14, 4), True)
    >>> z, w, exact = kernel_shap_coalitions(20, 100, np.random.default_rng(0))
    >>> z.shape, exact, bool(np.isclose(w.sum(), 1))
    ((100, 20), False, True)
    """
    m = int(n_features)
    if m < 2:
        raise ValueError(f"Kernel SHAP coalitions need at least 2 features, got {m}")
    if m <= 30 and n_samples >= 2**m - 2:
        z, w = _all_coalitions(m)
        return z, w, True
    n_sizes = math.ceil((m - 1) / 2)
    n_paired = (m - 1) // 2
    sizes = np.arange(1, n_sizes + 1)
    weight_vector = (m - 1.0) / (sizes * (m - sizes))
    weight_vector[:n_paired] *= 2
    weight_vector /= weight_vector.sum()

    masks: list[np.ndarray] = []
    weights: list[float] = []
    n_full = 0
    left = int(n_samples)
    remaining = weight_vector.copy()
    for size in range(1, n_sizes + 1):
        paired = size <= n_paired
        n_subsets = comb(m, size, exact=True) * (2 if paired else 1)
        if left * remaining[size - 1] / n_subsets < 1.0 - 1e-8:
            break
        n_full += 1
        left -= n_subsets
        if remaining[size - 1] < 1.0:
            remaining /= 1 - remaining[size - 1]
        w = weight_vector[size - 1] / comb(m, size, exact=True) / (2 if paired else 1)
        for idx in itertools.combinations(range(m), size):
            mask = np.zeros(m, dtype=bool)
            mask[list(idx)] = True
            masks.append(mask)
            weights.append(w)
            if paired:
                masks.append(~mask)
                weights.append(w)
    n_fixed = len(masks)
    left = int(n_samples) - n_fixed
    if n_full != n_sizes and left > 0:
        probs = weight_vector.copy()
        probs[:n_paired] /= 2  # each draw below adds a pair
        probs = probs[n_full:]
        probs /= probs.sum()
        draw_sizes = rng.choice(len(probs), 4 * left, p=probs) + n_full + 1
        seen: dict[bytes, int] = {}
        rand_weights: list[float] = []
        block = 1024
        pos = 0
        while left > 0 and pos < len(draw_sizes):
            chunk = draw_sizes[pos : pos + block]
            ranks = np.argsort(rng.random((len(chunk), m)), axis=1).argsort(axis=1)
            chunk_masks = ranks < chunk[:, None]
            for mask, size in zip(chunk_masks, chunk):
                pos += 1
                key = np.packbits(mask).tobytes()
                row = seen.get(key)
                if row is None:
                    seen[key] = len(rand_weights)
                    masks.append(mask)
                    rand_weights.append(1.0)
                    left -= 1
                else:
                    rand_weights[row] += 1.0
                if left > 0 and size <= n_paired:
                    if row is None:
                        masks.append(~mask)
                        rand_weights.append(1.0)
                        left -= 1
                    else:
                        rand_weights[row + 1] += 1.0
                if left <= 0:
                    break
        rw = np.asarray(rand_weights)
        rw *= weight_vector[n_full:].sum() / rw.sum()
        weights.extend(rw.tolist())
    z = np.asarray(masks, dtype=bool).reshape(-1, m)
    w = np.asarray(weights, dtype=np.float64)
    return z, w / w.sum(), False


def lime_perturbations(
    n_features: int, n_samples: int, kernel_width: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """LIME's binary perturbations and their kernel weights.

    Row 0 is the explained sample (all features on); every other row switches off
    ``k ~ Uniform{1, ..., M}`` randomly chosen features.

    Returns
    -------
    z : ndarray of bool, ``(n_samples, M)``
    weights : ndarray, ``(n_samples,)``
        ``exp(-d^2 / (2 kernel_width^2))`` with the cosine distance ``d = 1 - sqrt(|z| / M)``
        to the all-on vector.

    Examples
    --------
    >>> import numpy as np
    >>> z, w = lime_perturbations(5, 10, 0.25, np.random.default_rng(0))
    >>> z.shape, bool(z[0].all()), float(w[0])
    ((10, 5), True, 1.0)
    """
    m = int(n_features)
    n_off = rng.integers(1, m + 1, size=n_samples - 1)
    ranks = np.argsort(rng.random((n_samples - 1, m)), axis=1).argsort(axis=1)
    z = np.vstack([np.ones((1, m), dtype=bool), ranks >= n_off[:, None]])
    dist = 1.0 - np.sqrt(z.sum(1) / m)
    return z, np.exp(-(dist**2) / (2.0 * float(kernel_width) ** 2))


# ---------------------------------------------------------------------------- solvers
def constrained_wls(
    z: np.ndarray, weights: np.ndarray, y: np.ndarray, total: np.ndarray
) -> np.ndarray:
    """Weighted least squares ``y ~ z @ phi`` subject to ``sum(phi) = total``, many targets.

    Parameters
    ----------
    z : ``(S, M)`` design (0/1), weights : ``(S,)``, y : ``(S, T)``, total : ``(T,)``

    Returns
    -------
    phi : ``(M, T)``, with ``phi.sum(0) == total`` up to rounding.

    Examples
    --------
    >>> import numpy as np
    >>> z = np.array([[1, 0], [0, 1]])
    >>> constrained_wls(z, np.ones(2), np.array([[1.0], [2.0]]), np.array([3.0]))[:, 0]
    array([1., 2.])
    """
    z = z.astype(np.float64)
    m = z.shape[1]
    if m == 1:
        return total[None, :].copy()
    design = z[:, :-1] - z[:, -1:]
    target = y - z[:, -1:] * total[None, :]
    sw = np.sqrt(weights)[:, None]
    head = np.linalg.lstsq(sw * design, sw * target, rcond=None)[0]
    return np.vstack([head, total[None, :] - head.sum(0, keepdims=True)])


def _subset_ridge(
    gram: np.ndarray, cross: np.ndarray, yy: np.ndarray, idx: np.ndarray, alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """Ridge fits on feature subsets ``idx`` (``(T, ..., k)``) of centred data, batched.

    Returns coefficients ``(T, ..., k)`` and weighted residual sums of squares ``(T, ...)``.
    """
    g = gram[idx[..., :, None], idx[..., None, :]]
    t_index = np.arange(idx.shape[0]).reshape((-1,) + (1,) * (idx.ndim - 1))
    b = cross.T[t_index, idx]
    reg = g + alpha * np.eye(idx.shape[-1])
    beta = (np.linalg.pinv(reg) @ b[..., None])[..., 0]
    quad = (beta[..., None, :] @ g @ beta[..., :, None])[..., 0, 0]
    rss = yy.reshape((-1,) + (1,) * (idx.ndim - 2)) - 2 * (beta * b).sum(-1) + quad
    return beta, rss


def weighted_ridge(
    z: np.ndarray,
    weights: np.ndarray,
    y: np.ndarray,
    *,
    alpha: float,
    feature_selection: str = "none",
    n_features: int = 10,
) -> np.ndarray:
    """LIME's surrogate: ``Ridge(alpha).fit(z, y, sample_weight=weights)`` for many targets.

    Parameters
    ----------
    z : ``(N, M)``, weights : ``(N,)``, y : ``(N, T)``
    alpha : float
        Ridge penalty (intercept not penalised), as scikit-learn's ``Ridge``.
    feature_selection : {"none", "forward", "highest_weights", "auto"}
        "forward": greedy forward selection of ``n_features`` features by the weighted
        residual sum of squares (i.e. weighted R^2); "highest_weights": the ``n_features``
        largest ``|coef|`` of the full fit, refitted; "auto": forward for
        ``n_features <= 6``, else highest_weights (lime's rule). Selection is per target.

    Returns
    -------
    coef : ``(M, T)``, zero for unselected features.

    Examples
    --------
    >>> import numpy as np
    >>> z = np.random.default_rng(0).integers(0, 2, size=(50, 3))
    >>> y = z @ np.array([[1.0], [-2.0], [0.5]]) + 3.0
    >>> weighted_ridge(z, np.ones(50), y, alpha=0.0)[:, 0].round(6)
    array([ 1. , -2. ,  0.5])
    >>> coef = weighted_ridge(z, np.ones(50), y, alpha=0.0, feature_selection="forward",
    ...                       n_features=1)
    >>> coef[:, 0] != 0
    array([False,  True, False])
    """
    z = z.astype(np.float64)
    m = z.shape[1]
    t = y.shape[1]
    w = weights  # sklearn semantics: the penalty is relative to the raw sample weights
    zbar = (w @ z) / w.sum()
    ybar = (w @ y) / w.sum()
    zc, yc = z - zbar, y - ybar
    if feature_selection == "auto":
        feature_selection = "forward" if n_features <= 6 else "highest_weights"
    if feature_selection == "none" or n_features >= m:
        sw = np.sqrt(w)[:, None]
        design = np.vstack([sw * zc, math.sqrt(alpha) * np.eye(m)])
        target = np.vstack([sw * yc, np.zeros((m, t))])
        return np.linalg.lstsq(design, target, rcond=None)[0]
    gram = zc.T @ (w[:, None] * zc)
    cross = zc.T @ (w[:, None] * yc)
    yy = (w[:, None] * yc**2).sum(0)
    k = int(n_features)
    coef = np.zeros((m, t))
    step = max(1, 2**21 // (m * (k + 1) ** 2))
    for start in range(0, t, step):
        stop = min(t, start + step)
        tc = stop - start
        sub_cross, sub_yy = cross[:, start:stop], yy[start:stop]
        if feature_selection == "highest_weights":
            full = np.linalg.solve(gram + alpha * np.eye(m), sub_cross) if alpha > 0 else (
                np.linalg.lstsq(gram, sub_cross, rcond=None)[0]
            )
            chosen = np.sort(np.argsort(-np.abs(full), axis=0, kind="stable")[:k].T, axis=1)
        else:  # forward
            chosen = np.zeros((tc, 0), dtype=np.int64)
            for _ in range(k):
                cand = np.broadcast_to(np.arange(m), (tc, m))
                idx = np.concatenate(
                    [np.broadcast_to(chosen[:, None, :], (tc, m, chosen.shape[1])),
                     cand[..., None]], axis=-1,
                )
                _, rss = _subset_ridge(gram, sub_cross, sub_yy, idx, alpha)
                taken = (chosen[:, :, None] == np.arange(m)[None, None, :]).any(1)
                rss = np.where(taken, np.inf, rss)
                chosen = np.concatenate([chosen, rss.argmin(1)[:, None]], axis=1)
        beta, _ = _subset_ridge(gram, sub_cross, sub_yy, chosen, alpha)
        cols = np.broadcast_to(np.arange(start, stop)[:, None], chosen.shape)
        coef[chosen, cols] = beta
    return coef


# ---------------------------------------------------------------------------- model calls
def masked_outputs(
    forward,
    xs: Sequence[torch.Tensor],
    fmap: FeatureMap,
    z: np.ndarray,
    bases: Sequence[torch.Tensor],
    selection: OutputSelection,
    batch_size: int,
    *,
    base_index: np.ndarray | None = None,
    verbose: bool = False,
    desc: str = "",
) -> torch.Tensor:
    """Mean selected model output of every sample under every coalition.

    For sample ``a`` and coalition ``s`` the model sees ``where(z[s], x_a, b)`` for every
    base row ``b`` (``base_index is None``: all rows of ``bases``, averaged) or for the single
    row ``bases[base_index[s]]``. Rows are built and evaluated ``batch_size`` at a time: every
    model call gets at most ``batch_size`` rows, also when there are more base rows than that.

    Returns
    -------
    Tensor, float64, ``(n, S, K_total)``

    Examples
    --------
    >>> import numpy as np, torch
    >>> from sknn_explain._output_selection import resolve_outputs
    >>> from sknn_explain._segmentation import build_feature_map
    >>> forward = lambda xs: [xs[0].sum(1, keepdim=True)]
    >>> x, background = torch.ones(1, 3), torch.zeros(2, 3)
    >>> z = np.array([[True, False, False], [True, True, False]])
    >>> sel = resolve_outputs(None, None, [["Y1"]])
    >>> fmap = build_feature_map([(3,)])
    >>> masked_outputs(forward, [x], fmap, z, [background], sel, 64)[0, :, 0]
    tensor([1., 2.], dtype=torch.float64)
    """
    n, s_total = xs[0].shape[0], z.shape[0]
    device, dtype = xs[0].device, xs[0].dtype
    flat_x = [x.reshape(n, -1) for x in xs]
    flat_b = [b.reshape(b.shape[0], -1) for b in bases]
    # lerp(off, on, w) with w in {0, 1} returns exactly `off` or `on` and runs several times
    # faster than where(); it needs on - off to be finite, so huge values use where()
    largest = max(float(t.abs().max()) for t in (*flat_x, *flat_b))
    use_lerp = dtype.is_floating_point and largest < torch.finfo(dtype).max / 4
    zt = torch.as_tensor(z, device=device).to(dtype if use_lerp else torch.bool)

    def blend(mask: torch.Tensor, on: torch.Tensor, off: torch.Tensor) -> torch.Tensor:
        return torch.lerp(off, on, mask) if use_lerp else torch.where(mask, on, off)

    elem_masks = []  # per input: (S, P) element masks, or the labels to gather them per chunk
    for lab in fmap.flat_labels():
        if len(lab) == z.shape[1] and (lab == np.arange(len(lab))).all():
            elem_masks.append(zt)
        elif s_total * len(lab) <= 2**25:
            elem_masks.append(zt[:, torch.as_tensor(lab, device=device)])
        else:
            elem_masks.append(torch.as_tensor(lab, device=device))
    shapes = [tuple(x.shape[1:]) for x in xs]
    reps = flat_b[0].shape[0] if base_index is None else 1
    bidx = None if base_index is None else torch.as_tensor(base_index, device=device)
    cols = [torch.as_tensor(idx, device=device) for idx in selection.indices]

    def pick(outs: list[torch.Tensor]) -> torch.Tensor:
        if len(cols) == 1:
            o = outs[selection.layers[0]]
            return o if whole_layer(o.shape[1]) else o[:, cols[0]]
        return torch.cat([outs[layer][:, c] for layer, c in zip(selection.layers, cols)], 1)

    @functools.cache
    def whole_layer(width: int) -> bool:
        idx = selection.indices[0]
        return len(idx) == width and bool((idx == np.arange(width)).all())

    def masks_of(em: torch.Tensor, s: torch.Tensor | slice) -> torch.Tensor:
        return em[s] if em.dtype == zt.dtype else zt[s][:, em]

    if reps <= batch_size:  # whole background per pair, several pairs per call
        per_chunk, bg_slices = batch_size // reps, [slice(None)]
    else:  # one pair per call, the background in slices of batch_size rows
        per_chunk = 1
        bg_slices = [slice(b0, min(reps, b0 + batch_size)) for b0 in range(0, reps, batch_size)]
    total = n * s_total
    out = None
    starts = range(0, total, per_chunk)
    if verbose:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=desc, unit="chunk")
    with torch.inference_mode():
        for start in starts:
            stop = min(total, start + per_chunk)
            a0 = start // s_total
            one_sample = (stop - 1) // s_total == a0
            if one_sample:  # slices and broadcasting, no gathers
                s = slice(start - a0 * s_total, stop - a0 * s_total)
            else:
                pair = torch.arange(start, stop, device=device)
                a = torch.div(pair, s_total, rounding_mode="floor")
                s = pair - a * s_total
            mean = None
            for bg in bg_slices:
                pts = []
                for x, em, b, shape in zip(flat_x, elem_masks, flat_b, shapes):
                    mask = masks_of(em, s)
                    if bidx is None:
                        on = x[a0] if one_sample else x[a][:, None, :]
                        rows = blend(mask[:, None, :], on, b[bg][None])
                    else:
                        rows = blend(mask, x[a0] if one_sample else x[a], b[bidx[s]])
                    pts.append(rows.reshape(-1, *shape))
                picked = pick(call_forward(forward, pts))
                if reps == 1:
                    part = picked.to(torch.float64)
                elif len(bg_slices) == 1:
                    part = picked.reshape(stop - start, reps, -1).mean(1, dtype=torch.float64)
                else:
                    part = picked.reshape(stop - start, -1, picked.shape[1]).sum(
                        1, dtype=torch.float64)
                mean = part if mean is None else mean + part
            if len(bg_slices) > 1:
                mean = mean / reps
            if out is None:
                out = torch.empty((total, mean.shape[1]), dtype=torch.float64, device=device)
            out[start:stop] = mean
    return out.reshape(n, s_total, -1)


def _nonfinite_perturbations(
    v: np.ndarray, fx: np.ndarray, selection: OutputSelection
) -> np.ndarray:
    """``(n, K)`` mask of samples / outputs with a NaN / inf model output on any perturbation.

    Warns (``RuntimeWarning``) about those whose own output ``fx`` is finite; those with a
    non-finite ``fx`` are reported by ``explain`` for the predictions.
    """
    bad = ~np.isfinite(v).all(1) | ~np.isfinite(fx)
    hidden = bad & np.isfinite(fx)
    if hidden.any():
        names = [name for layer in selection.names for name in layer]
        warnings.warn(
            nonfinite_message(torch.as_tensor(hidden), names, "of X on perturbed copies")
            + " (their own outputs are finite); their attributions are set to NaN",
            RuntimeWarning, stacklevel=4,
        )
    return bad


def _spread(phi: np.ndarray, fmap: FeatureMap, shapes, like: torch.Tensor) -> list[torch.Tensor]:
    """``(n, M, K)`` feature values -> per input ``(n, *shape, K)``, split evenly per segment."""
    per_element = phi / fmap.sizes[None, :, None]
    out = []
    for lab, shape in zip(fmap.flat_labels(), shapes):
        v = per_element[:, lab, :].reshape(phi.shape[0], *shape, phi.shape[2])
        out.append(torch.as_tensor(v, dtype=like.dtype, device=like.device))
    return out


#: model rows above which a call without ``verbose`` warns with its cost (about 25 s for a
#: 100-tree random forest on 2 cores; a small MLP takes a second)
LONG_RUN_ROWS = 5_000_000


def warn_if_long(rows: int, desc: str, breakdown: str, verbose: bool) -> None:
    """Make a long model-agnostic run visible before it starts.

    With ``verbose=True`` the progress bar shows it; otherwise calls that will evaluate the
    model on more than :data:`LONG_RUN_ROWS` rows warn with the estimate and what to change.
    """
    if verbose or rows <= LONG_RUN_ROWS:
        return
    warnings.warn(
        f"{desc} will evaluate the model on about {rows:,} rows ({breakdown}); with a slow "
        "model this takes minutes. Explain fewer rows, lower limit_ref / n_samples, or pass "
        "verbose=True for a progress bar.",
        UserWarning,
        stacklevel=4,
    )


def _link(t: np.ndarray, link: str, what: str) -> np.ndarray:
    if link == "identity":
        return t
    if t.min() < -1e-9 or t.max() > 1 + 1e-9:
        raise ValueError(
            f"link='logit' needs probabilities in [0, 1], but the {what} range over "
            f"[{t.min():.4g}, {t.max():.4g}]; explain predict_proba / softmax outputs "
            "(ignore_last_act=False) or use link='identity'"
        )
    p = np.clip(t, _LOGIT_EPS, 1 - _LOGIT_EPS)
    return np.log(p / (1 - p))


# ---------------------------------------------------------------------------- explainers
_AGNOSTIC_DOC = """
    segment_size : int or tuple of int, optional
        Grid cell size per spatial axis for signal / image inputs (default: at most 8
        cells per axis); each cell, across all channels, is one feature. Tabular columns
        are always single features.
    segments : array-like of int, or list of those (one per input, None for the grid)
        Custom interpretable features: integer labels of the per-sample input shape (in
        the user's layout) or of its spatial shape; equal labels form one feature. Also
        groups tabular columns (e.g. one-hot blocks).
    random_state : int, RandomState, Generator or None
        Seed of all random draws; an int gives identical attributions on every call.
    response_method : {"auto", "predict_proba", "decision_function", "predict"}
        For scikit-learn estimators: ``"auto"`` explains ``predict_proba`` of classifiers
        (``decision_function`` if they have none) and ``predict`` of other estimators.
        Inputs of rank > 1 are flattened (in the user's layout) for the estimator.
    ignore_last_act : bool, default=False
        Torch modules / skorch nets only: explain the output before the last activation.
        The default explains the model's actual output (probabilities for classifiers).
    channels_first : bool, default=True
        Image / signal layout of the data: ``(n, C, ...)`` (True) or ``(n, ..., C)``.
    dtype : {"float", "double"}, default="double"
        Precision of the perturbed inputs and of a torch model's private copy. The
        regression is always solved in float64. A torch module / skorch net fitted with
        bool or integer ``X_ref`` gets its inputs in that dtype (only values of ``X`` and
        ``X_ref`` are combined, so they stay exact) and keeps its own precision.
    device : {"cpu", "cuda", "cuda:<index>", "auto"} or torch.device, default="cpu"
        Where perturbed inputs are built and torch models run.
    batch_size : int, optional
        Model rows per call (perturbations x background rows); None picks one from the
        input width (at most 4096 rows on CPU, where larger chunks fall out of cache).
    verbose : bool, default=False
        Show a progress bar over model calls.
"""


class _AgnosticExplainer(Explainer):
    """Shared fitting: prediction adapter, reference data, interpretable features."""

    _requires_reference = True
    _parameter_constraints = {
        **Explainer._parameter_constraints,
        "segment_size": [None, *POSITIVE_INT, SequenceOf(POSITIVE_INT[0])],
        "segments": "no_validation",  # checked against the input shapes at fit
        "random_state": RANDOM_STATE,
        "response_method": [StrOptions(set(RESPONSE_METHODS))],
    }

    def _prepare_model(self, model, dtype, device):
        if is_torch_like(model):
            # torch modules, skorch nets, Graphs, innsight dicts: the project's standard
            # adapter (converted layer graph, or the plain private copy when conversion fails)
            if self.response_method != "auto":
                raise ValueError(
                    "response_method applies to scikit-learn estimators; for torch modules "
                    "and skorch nets use ignore_last_act to choose between scores and "
                    "probabilities"
                )
            dtypes = getattr(self, "_fit_dtypes", None)
            if dtypes and any(d is not None for d in dtypes) and not isinstance(
                model, (dict, Graph)
            ):
                # bool / integer X_ref: run the module itself on its own dtypes (a layer
                # graph computes in floats; these methods only need outputs), in its own
                # float precision (such models often cast inside, e.g. ``x.float()``)
                from ..convert.adapter import _fallback_model

                module = getattr(model, "module_", model)
                floats = [p.dtype for p in module.parameters() if p.is_floating_point()]
                own = floats[0] if floats else dtype
                inner = _fallback_model(model, self.ignore_last_act, own, device, None)
                return NativeInputs(inner, dtypes)
            return super()._prepare_model(model, dtype, device)
        adapter = as_predict_model(
            model, response_method=self.response_method, ignore_last_act=self.ignore_last_act,
            channels_first=self.channels_first, dtype=dtype, device=device,
        )
        if isinstance(adapter, SklearnModel):
            adapter.input_dtype = getattr(self, "_fit_float_dtype", None)
        codec = getattr(self, "_fit_codec", None)
        if codec is not None:
            if not isinstance(adapter, (SklearnModel, FunctionModel)):  # pragma: no cover
                raise TypeError("raw DataFrame columns need a scikit-learn estimator or function")
            adapter.codec = codec
        return adapter

    def fit(self, model: object, X_ref: object = None) -> _AgnosticExplainer:
        """Prepare the explainer for ``model`` with reference data ``X_ref``.

        Parameters
        ----------
        model : nn.Module, skorch net, scikit-learn estimator or callable
            Torch modules / skorch nets and scikit-learn estimators (anything with
            ``predict_proba``, ``decision_function`` or ``predict``) are deep-copied and
            never modified; a callable ``f(ndarray) -> ndarray`` is used as is.
        X_ref : array-like, DataFrame, Tensor or list of those
            Required: background data (Kernel SHAP) / baseline distribution (LIME). Its
            shape fixes the input shape; DataFrame columns (or the estimator's
            ``feature_names_in_``) become feature names.
            A DataFrame with text / category columns or missing values is explained on its
            raw columns when ``model`` is a scikit-learn estimator or a function (see
            "Mixed-type DataFrames" in :mod:`sknn_explain.explainers.agnostic`).

        Returns
        -------
        self
        """
        codec = None
        if needs_raw_columns(X_ref) and not is_torch_like(model):
            # mixed-type / incomplete DataFrame for a Pipeline: explained on integer codes
            # of its raw values, decoded into the user's DataFrame before each model call
            codec = RawColumns(X_ref)
            X_ref = pd.DataFrame(codec.encode(X_ref), columns=[str(c) for c in codec.columns])
        self._fit_dtypes = native_dtypes(X_ref) if X_ref is not None else None
        self._fit_float_dtype = user_float_dtype(X_ref)
        self._fit_codec = codec
        try:
            super().fit(model, X_ref)
            self.raw_columns_ = codec
        finally:
            self.__dict__.pop("_fit_dtypes", None)
            self.__dict__.pop("_fit_float_dtype", None)
            self.__dict__.pop("_fit_codec", None)
        return self

    def explain(self, X: object, output_idx: object = None, output_label: object = None):
        """Attribute the selected outputs of the model to the input features of ``X``.

        See :meth:`Explainer.explain`. After a fit on a mixed-type DataFrame (see the class
        notes), ``X`` must be a DataFrame with the same columns in the same order; its
        values may include categories / strings / missing values that ``X_ref`` lacks, as
        far as the model accepts them.
        """
        codec = getattr(self, "raw_columns_", None)
        if codec is None:
            return super().explain(X, output_idx=output_idx, output_label=output_label)
        self._check_fitted()
        codec.check_columns(X)
        call_codec = codec.extend(X)
        if self.dtype_ == torch.float32 and call_codec.n_codes >= 2**24:
            raise ValueError(
                f"a column of X / X_ref has {call_codec.n_codes} distinct values, more than "
                "dtype='float' codes exactly; use dtype='double'"
            )
        codes = call_codec.encode(X)
        local = copy.copy(self)  # this call's code books; the fitted explainer is unchanged
        local.model_ = copy.copy(self.model_)
        local.model_.codec = call_codec
        self._check_model_takes(local.model_, codes, call_codec, codec, X)
        frame = pd.DataFrame(codes, columns=[str(c) for c in codec.columns])
        result = Explainer.explain(local, frame, output_idx=output_idx, output_label=output_label)
        raw = codec.raw_values(X)
        raw.flags.writeable = False
        result._inputs = [raw]  # the user's values (e.g. "Biscoe"), not their codes
        return result

    @staticmethod
    def _check_model_takes(model, codes: np.ndarray, call_codec: RawColumns,
                           codec: RawColumns, X: object) -> None:
        """Run the model on ``X`` itself; a failure names the columns with values new to it."""
        try:
            for start in range(0, len(codes), CPU_MAX_ROWS):
                model([torch.as_tensor(codes[start:start + CPU_MAX_ROWS])])
        except Exception as err:  # noqa: BLE001 - whatever the user's pipeline raises
            new = call_codec.new_values(X, codec)
            shown = "; ".join(
                f"column {col!r}: {vals[:5]}{'...' if len(vals) > 5 else ''}"
                for col, vals in new.items()
            )
            where = (
                f". X has values that X_ref lacks (unknown categories?): {shown}" if new else ""
            )
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ValueError(f"the model failed on X ({type(err).__name__}: {first}){where}"
                             ) from err

    def _native_dtypes(self) -> list[torch.dtype | None] | None:
        return getattr(self.model_, "input_dtypes", None)

    def _check_native_values(self, xs: Sequence[torch.Tensor]) -> None:
        """X must hold values the model's bool / integer inputs can take exactly."""
        dtypes = self._native_dtypes()
        if not dtypes:
            return
        for i, (x, d) in enumerate(zip(xs, dtypes)):
            label = "X" if len(xs) == 1 else f"X[{i}]"
            if d is torch.bool and not bool(((x == 0) | (x == 1)).all()):
                raise ValueError(
                    f"{label} has values other than 0 / 1, but the model takes bool inputs "
                    "(X_ref was bool)"
                )
            if d is not None and d is not torch.bool and not bool((x == x.round()).all()):
                raise ValueError(
                    f"{label} has non-integer values, but the model takes "
                    f"{str(d).replace('torch.', '')} inputs (X_ref was integer)"
                )

    def _batch_size(self, shapes: Sequence[tuple[int, ...]]) -> int:
        if self.batch_size is not None:
            return int(self.batch_size)
        size = auto_batch_size(shapes)
        return size if self.device_.type == "cuda" else min(size, CPU_MAX_ROWS)

    def _fit_features(self, ref: InputBatch) -> None:
        model = self.model_
        if isinstance(model, SklearnModel):
            width = math.prod(ref.shapes[0])
            if model.n_features is not None and width != model.n_features:
                raise ValueError(
                    f"X_ref has {width} feature(s) per sample (shape {ref.shapes[0]}), but the "
                    f"{type(model.estimator).__name__} was fitted with {model.n_features}"
                )
            if model.feature_names is not None and len(ref.shapes[0]) == 1:
                if self.input_names_ is None:
                    self.input_names_ = [[list(model.feature_names)]]
                elif list(self.input_names_[0][0]) != model.feature_names:
                    raise ValueError(
                        f"X_ref has columns {self.input_names_[0][0][:5]}..., but the "
                        f"estimator was fitted with {model.feature_names[:5]}...; use the same "
                        "columns in the same order"
                    )
        fmap = build_feature_map(ref.shapes, self.segments, self.segment_size, self.channels_first)
        self.feature_map_ = fmap
        self.n_segments_ = fmap.n_features


class KernelSHAP(_AgnosticExplainer):
    __doc__ = f"""Kernel SHAP (Lundberg & Lee, 2017) for any model, natively in numpy / torch.

    ``fit(model, X_ref)`` takes the background data (at most ``limit_ref`` rows are used,
    drawn without replacement with ``random_state`` when ``X_ref`` is larger). A sample's
    attributions are the Shapley values of ``v(S) = mean_b f(x_S, b_rest)`` over the
    background rows ``b`` (interventional, features independent of each other) and sum to
    ``link(f(x)) - link(mean f(background))`` exactly (efficiency).

    With ``M`` features (columns or segments) all ``2^M - 2`` coalitions are evaluated when
    ``n_samples="auto"`` and ``M <= 12``, or when ``n_samples >= 2^M - 2``: the result is
    then the exact Shapley value. Otherwise ``n_samples`` coalitions are enumerated by size
    / sampled in complement pairs as in ``shap.KernelExplainer`` and the efficiency
    constraint is still enforced exactly.

    Parameters
    ----------
    n_samples : "auto" or int, default="auto"
        Coalitions evaluated per sample (each over all background rows). "auto": all when
        ``M <= 12``, else ``2 M + 2048`` (shap's default).
    link : {{"identity", "logit"}}, default="identity"
        Scale on which attributions add up; "logit" needs probabilities.
    limit_ref : int or None, default=100
        Maximum number of background rows (innsight's name); None uses all of ``X_ref``.
        The model is evaluated ``n_samples x limit_ref`` times per explained sample.
    {_AGNOSTIC_DOC}
    Attributes
    ----------
    data_ref_ : list of Tensor
        The background rows used.
    ref_output_mean_ : list of Tensor
        Mean model output over the background, per output layer.
    feature_map_ : FeatureMap
        Global feature (segment) index of every input element.
    n_segments_ : int
        Number of features ``M``.
    raw_columns_ : RawColumns or None
        Code books of the raw DataFrame columns (mixed-type ``X_ref``), else None.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.ensemble import RandomForestRegressor
    >>> from sknn_explain import KernelSHAP
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(60, 4)); y = X[:, 0] + X[:, 1] * X[:, 2]
    >>> forest = RandomForestRegressor(n_estimators=10, random_state=0).fit(X, y)
    >>> res = KernelSHAP().fit(forest, X[:20]).explain(X[:3])
    >>> res.values.shape
    (3, 4, 1)
    >>> bool(np.allclose(res.decomp_sum, res.decomp_goal))
    True
    """

    method_name = "KernelSHAP"
    _parameter_constraints = {
        **_AgnosticExplainer._parameter_constraints,
        "n_samples": [StrOptions({"auto"}), *POSITIVE_INT],
        "link": [StrOptions(set(_LINKS))],
        "limit_ref": [*POSITIVE_INT, None],
    }

    def __init__(
        self, n_samples="auto", link="identity", limit_ref=100, segment_size=None,
        segments=None, random_state=None, *, response_method="auto", ignore_last_act=False,
        channels_first=True, dtype="double", device="cpu", batch_size=None, verbose=False,
    ):
        self.n_samples = n_samples
        self.link = link
        self.limit_ref = limit_ref
        self.segment_size = segment_size
        self.segments = segments
        self.random_state = random_state
        self.response_method = response_method
        self.ignore_last_act = ignore_last_act
        self.channels_first = channels_first
        self.dtype = dtype
        self.device = device
        self.batch_size = batch_size
        self.verbose = verbose

    @property
    def _goal_description(self) -> str:
        if self.link == "logit":
            return "logit(f(x)) - logit(mean f(X_ref))"
        return "f(x) - mean f(X_ref)"

    def _fit_reference(self, ref: InputBatch) -> None:
        self._fit_features(ref)
        data = ref.to_tensors(self.dtype_, self.device_)
        n_ref = ref.n_samples
        if self.limit_ref is not None and n_ref > self.limit_ref:
            gen = random_streams(self.random_state, 2)[0]
            keep = np.sort(gen.choice(n_ref, size=int(self.limit_ref), replace=False))
            idx = torch.as_tensor(keep, device=self.device_)
            data = [d[idx] for d in data]
        outs = predict(self.model_, data, self._batch_size(ref.shapes))
        bad = torch.zeros(data[0].shape[0], dtype=torch.bool, device=outs[0].device)
        for o in outs:
            bad |= ~torch.isfinite(o).all(1)
        if bool(bad.any()):
            rows = torch.nonzero(bad).flatten().cpu().numpy()
            if self.limit_ref is not None and n_ref > self.limit_ref:
                rows = keep[rows]  # rows of the user's X_ref
            raise ValueError(
                f"the model returned NaN/inf for rows {describe_rows(rows)} of X_ref (the "
                "background data), so every expected value would be NaN; drop those rows"
            )
        self.data_ref_ = data
        self.ref_output_mean_ = [o.to(torch.float64).mean(0) for o in outs]

    def _coalitions(self, m: int) -> tuple[np.ndarray, np.ndarray]:
        gen = random_streams(self.random_state, 2)[1]
        if isinstance(self.n_samples, str):
            budget = 2**m if m <= MAX_EXACT_FEATURES else 2 * m + 2048
        else:
            budget = int(self.n_samples)
            if (m > 30 or budget < 2**m - 2) and budget < m:
                raise ValueError(
                    f"n_samples={budget} coalitions cannot determine {m} feature attributions; "
                    f"use n_samples >= {m} (or fewer features via segment_size / segments)"
                )
        z, w, _ = kernel_shap_coalitions(m, budget, gen)
        return z, w

    def _attribute(self, xs, selection, batch_size):
        self._check_native_values(xs)
        fmap, m = self.feature_map_, self.n_segments_
        n = xs[0].shape[0]
        preds = selection.pick(predict(self.model_, xs, batch_size))
        fx = _link(preds.to(torch.float64).cpu().numpy(), self.link, "model outputs")
        mean_ref = selection.pick([o.reshape(1, -1) for o in self.ref_output_mean_])
        e0 = _link(mean_ref.cpu().numpy()[0], self.link, "mean background outputs")
        delta = fx - e0[None, :]
        k = delta.shape[1]
        if m == 1:
            phi = delta[:, None, :]
        else:
            z, w = self._coalitions(m)
            n_bg = self.data_ref_[0].shape[0]
            warn_if_long(n * len(z) * n_bg, "KernelSHAP",
                         f"{n} rows x {len(z)} coalitions x {n_bg} background rows",
                         self.verbose)
            v = masked_outputs(
                self.model_, xs, fmap, z, self.data_ref_, selection, batch_size,
                verbose=self.verbose, desc="KernelSHAP",
            ).cpu().numpy()
            bad = _nonfinite_perturbations(v, fx, selection)
            y = _link(v, self.link, "model outputs") - e0[None, None, :]
            y = np.where(bad[:, None, :], 0.0, y)  # solved apart, then NaN
            y = y.transpose(1, 0, 2).reshape(len(z), n * k)
            total = np.where(bad, 0.0, delta).reshape(-1)
            phi = constrained_wls(z, w, y, total)
            phi = phi.reshape(m, n, k).transpose(1, 0, 2)
            phi[np.broadcast_to(bad[:, None, :], phi.shape)] = np.nan
        values = _spread(phi, fmap, [tuple(x.shape[1:]) for x in xs], xs[0])
        goal = torch.as_tensor(delta, dtype=xs[0].dtype, device=xs[0].device)
        return values, preds, goal


class LIME(_AgnosticExplainer):
    __doc__ = f"""LIME (Ribeiro et al., 2016) for any model, natively (no ``lime`` package).

    Each sample is explained by a weighted ridge regression of the model output on binary
    interpretable features ``z`` (columns or segments on / off) over ``n_samples``
    perturbations. Off features take the mean of ``X_ref`` (``baseline="mean"``) or the
    values of one random ``X_ref`` row per perturbation (``baseline="sample"``). The
    attribution of a feature is its surrogate coefficient, i.e. the local effect of
    switching it from the baseline to its value: for a linear model ``f(x) = w.x + b`` and
    ``baseline="mean"`` it is exactly ``w_j (x_j - mean(X_ref)_j)`` (up to the tiny ridge
    penalty). LIME has no decomposition goal.

    Parameters
    ----------
    n_samples : int, default=1000
        Perturbations per sample (the first is the sample itself).
    kernel_width : float, default=0.25
        Width of the exponential kernel on the cosine distance to the sample (lime's image
        default): weight ``exp(-d^2 / (2 kernel_width^2))``, ``d = 1 - sqrt(on / M)``.
    feature_selection : {{"none", "forward", "highest_weights", "auto"}}, default="none"
        "none": all features. "forward": greedy forward selection of ``n_features`` by
        weighted R^2; "highest_weights": the ``n_features`` largest coefficients of the
        full fit, refitted; "auto": forward if ``n_features <= 6`` else highest_weights.
        Unselected features get 0. Selection is done per sample and output.
    n_features : int, default=10
        Number of features kept by feature selection.
    alpha : float, default=1e-3
        Ridge penalty of the surrogate, as ``sklearn.linear_model.Ridge(alpha)`` with the
        kernel values as sample weights (lime uses 1.0, which visibly shrinks coefficients).
    baseline : {{"mean", "sample"}}, default="mean"
        Value of switched-off features (see above). A DataFrame with text / category
        columns or missing values in front of a Pipeline needs "sample" ("mean" raises).
    {_AGNOSTIC_DOC}
    Attributes
    ----------
    reference_ : list of Tensor
        Mean of ``X_ref`` per input (``baseline="mean"``).
    data_ref_ : list of Tensor
        ``X_ref`` (``baseline="sample"``).
    feature_map_ : FeatureMap
        Global feature (segment) index of every input element.
    n_segments_ : int
        Number of features ``M``.
    raw_columns_ : RawColumns or None
        Code books of the raw DataFrame columns (mixed-type ``X_ref``), else None.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LinearRegression
    >>> from sknn_explain import LIME
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(50, 3)); y = X @ [1.0, -2.0, 0.5]
    >>> lin = LinearRegression().fit(X, y)
    >>> res = LIME(n_samples=300, random_state=0).fit(lin, X).explain(X[:2])
    >>> expected = lin.coef_ * (X[:2] - X.mean(0))
    >>> bool(np.allclose(res.values[..., 0], expected, atol=1e-3))
    True
    """

    method_name = "LIME"
    _parameter_constraints = {
        **_AgnosticExplainer._parameter_constraints,
        "n_samples": [Interval(Integral, 2, None, closed="left")],
        "kernel_width": [Interval(Real, 0, None, closed="neither")],
        "feature_selection": [StrOptions(set(_SELECTIONS))],
        "n_features": POSITIVE_INT,
        "alpha": NON_NEGATIVE_REAL,
        "baseline": [StrOptions(set(_BASELINES))],
    }

    def __init__(
        self, n_samples=1000, kernel_width=0.25, feature_selection="none", n_features=10,
        alpha=1e-3, baseline="mean", segment_size=None, segments=None, random_state=None, *,
        response_method="auto", ignore_last_act=False, channels_first=True, dtype="double",
        device="cpu", batch_size=None, verbose=False,
    ):
        self.n_samples = n_samples
        self.kernel_width = kernel_width
        self.feature_selection = feature_selection
        self.n_features = n_features
        self.alpha = alpha
        self.baseline = baseline
        self.segment_size = segment_size
        self.segments = segments
        self.random_state = random_state
        self.response_method = response_method
        self.ignore_last_act = ignore_last_act
        self.channels_first = channels_first
        self.dtype = dtype
        self.device = device
        self.batch_size = batch_size
        self.verbose = verbose

    def _fit_reference(self, ref: InputBatch) -> None:
        self._fit_features(ref)
        data = ref.to_tensors(self.dtype_, self.device_)
        if self.baseline == "mean" and getattr(self.model_, "codec", None) is not None:
            raise ValueError(
                "LIME(baseline='mean') replaces switched-off features by the mean of X_ref, "
                "which does not exist for the text / category columns or missing values of "
                "this DataFrame; use baseline='sample' (values of random X_ref rows)"
            )
        if self.baseline == "mean" and any(d is not None for d in self._native_dtypes() or []):
            raise ValueError(
                "LIME(baseline='mean') replaces switched-off features by the mean of X_ref, "
                "which is no valid input for a model that takes bool / integer inputs; use "
                "baseline='sample' (values of random X_ref rows)"
            )
        if self.baseline == "mean":
            self.reference_ = [d.mean(0, keepdim=True) for d in data]
        else:
            self.data_ref_ = data

    def _attribute(self, xs, selection, batch_size):
        self._check_native_values(xs)
        fmap, m = self.feature_map_, self.n_segments_
        n = xs[0].shape[0]
        gen_z, gen_ref = random_streams(self.random_state, 2)
        z, w = lime_perturbations(m, int(self.n_samples), float(self.kernel_width), gen_z)
        if self.baseline == "mean":
            bases, base_index = self.reference_, None
        else:
            bases = self.data_ref_
            base_index = gen_ref.integers(0, bases[0].shape[0], size=len(z))
        warn_if_long(n * len(z), "LIME", f"{n} rows x {len(z)} perturbations", self.verbose)
        v = masked_outputs(
            self.model_, xs, fmap, z, bases, selection, batch_size, base_index=base_index,
            verbose=self.verbose, desc="LIME",
        )
        preds = v[:, 0, :].to(xs[0].dtype)  # perturbation 0 is the sample itself
        k = v.shape[2]
        v = v.cpu().numpy()
        bad = _nonfinite_perturbations(v, v[:, 0, :], selection)
        v = np.where(bad[:, None, :], 0.0, v)  # solved apart, then NaN
        y = v.transpose(1, 0, 2).reshape(len(z), n * k)
        coef = weighted_ridge(
            z, w, y, alpha=float(self.alpha), feature_selection=self.feature_selection,
            n_features=int(self.n_features),
        )
        phi = coef.reshape(m, n, k).transpose(1, 0, 2)
        phi[np.broadcast_to(bad[:, None, :], phi.shape)] = np.nan
        values = _spread(phi, fmap, [tuple(x.shape[1:]) for x in xs], xs[0])
        return values, preds, None
