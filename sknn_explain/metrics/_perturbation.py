"""Metrics that perturb the explained samples at random and watch the model or the explanation.

Faithfulness correlation (Bhatt et al., 2020) and infidelity (Yeh et al., 2019) compare the
attributions with the model's response to random perturbations; max-sensitivity (Yeh et al.,
2019) measures how much the explanation itself moves. All perturbations of all samples are
evaluated in a few large batched calls.
"""

from __future__ import annotations

import numpy as np

from ._checks import (
    as_generator,
    check_batch_size,
    check_matrix,
    check_pair,
    check_positive_int,
    check_reference,
    check_target,
    check_weights,
    to_numpy,
)
from ._evaluation import ExplainFn, PredictFn, evaluate_rows, keep_columns, weighted_mean


def _random_subsets(rng: np.random.Generator, n: int, t: int, p: int, size: int) -> np.ndarray:
    """``(n, t, p)`` boolean masks: ``t`` random ``size``-feature subsets per sample."""
    keys = rng.random((n, t, p))
    idx = np.argpartition(keys, size - 1, axis=-1)[..., :size] if size < p else None
    mask = np.zeros((n, t, p), dtype=bool)
    if idx is None:
        mask[:] = True
    else:
        np.put_along_axis(mask, idx, True, axis=-1)
    return mask


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
    predict_fn = keep_columns(predict_fn, X)
    X, A = check_pair(X, attributions)
    n, p = X.shape
    ref = check_reference(reference, X)
    t = check_target(target, n)
    n_sub = check_positive_int(n_subsets, "n_subsets")
    size = max(1, p // 4) if subset_size is None else check_positive_int(subset_size,
                                                                            "subset_size")
    if size > p:
        raise ValueError(f"subset_size={size} is larger than the number of features ({p})")
    w = check_weights(sample_weight, n)
    masks = _random_subsets(as_generator(random_state), n, n_sub, p, size)

    def rows(sl: slice) -> np.ndarray:
        perturbed = np.where(masks[sl], ref[sl, None, :], X[sl, None, :])
        return np.concatenate([X[sl, None, :], perturbed], axis=1)

    out = evaluate_rows(predict_fn, rows, n, n_sub + 1, t, check_batch_size(batch_size))
    drop = out[:, :1] - out[:, 1:]  # (n, T)
    summed = np.einsum("ntp,np->nt", masks, A)
    ds = summed - summed.mean(axis=1, keepdims=True)
    dd = drop - drop.mean(axis=1, keepdims=True)
    denom = np.sqrt((ds**2).sum(axis=1) * (dd**2).sum(axis=1))
    scale = np.abs(drop).max(axis=1) * np.abs(summed).max(axis=1)
    valid = denom > 1e-12 * np.maximum(scale, 1e-300)
    corr = np.full(n, np.nan)
    corr[valid] = (ds * dd).sum(axis=1)[valid] / denom[valid]
    return weighted_mean(corr, w)


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
    predict_fn = keep_columns(predict_fn, X)
    X, A = check_pair(X, attributions)
    n, p = X.shape
    t = check_target(target, n)
    n_pert = check_positive_int(n_perturbations, "n_perturbations")
    w = check_weights(sample_weight, n)
    rng = as_generator(random_state)
    if perturbation == "reference":
        ref = check_reference(reference, X)
        masks = rng.random((n, n_pert, p)) < 0.5
        predicted = np.einsum("ntp,np->nt", masks, A)

        def perturbed(sl: slice) -> np.ndarray:
            return np.where(masks[sl], ref[sl, None, :], X[sl, None, :])
    elif perturbation == "noise":
        if not np.isscalar(noise_scale) or not noise_scale > 0:
            raise ValueError(f"noise_scale must be a positive number, got {noise_scale!r}")
        sd = X.std(axis=0) if scale is None else to_numpy(scale).reshape(-1)
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

    out = evaluate_rows(predict_fn, rows, n, n_pert + 1, t, check_batch_size(batch_size))
    actual = out[:, :1] - out[:, 1:]
    if normalize:
        num = (predicted * actual).sum(axis=1)
        den = (predicted**2).sum(axis=1)
        beta = np.divide(num, den, out=np.zeros(n), where=den > 0)
        predicted = predicted * beta[:, None]
    return weighted_mean(((predicted - actual) ** 2).mean(axis=1), w)


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
    X = check_matrix(X, "X")
    n, p = X.shape
    t = check_target(target, n)
    if not np.isscalar(radius) or not radius > 0:
        raise ValueError(f"radius must be a positive number, got {radius!r}")
    n_pert = check_positive_int(n_perturbations, "n_perturbations")
    w = check_weights(sample_weight, n)
    sd = X.std(axis=0) if scale is None else to_numpy(scale).reshape(-1)
    if sd.shape != (p,):
        raise ValueError(f"scale must have shape ({p},), got {sd.shape}")

    def explain(Z: np.ndarray, tz: np.ndarray | None) -> np.ndarray:
        out = to_numpy(explain_fn(Z, tz))
        if out.shape != Z.shape:
            raise ValueError(
                f"explain_fn returned shape {out.shape} for input of shape {Z.shape}; expected "
                "one attribution per row and feature"
            )
        return out

    A = explain(X, t) if attributions is None else check_pair(X, attributions)[1]
    rng = as_generator(random_state)
    delta = rng.uniform(-1.0, 1.0, size=(n, n_pert, p)) * (float(radius) * sd)
    Y = (X[:, None, :] + delta).reshape(n * n_pert, p)
    AY = explain(Y, None if t is None else np.repeat(t, n_pert)).reshape(n, n_pert, p)
    diff = np.linalg.norm(AY - A[:, None, :], ord=norm, axis=-1).max(axis=1)
    if normalize:
        base = np.linalg.norm(A, ord=norm, axis=-1)
        diff = np.divide(diff, base, out=np.where(diff > 0, np.inf, 0.0), where=base > 0)
    if (np.isinf(diff) & (w > 0)).any():
        return float("inf")
    return weighted_mean(diff, w)
