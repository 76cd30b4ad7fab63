"""ROAD: RemOve And Debias (Rong et al., 2022) with noisy linear imputation.

Removed pixels are not set to a constant (which leaks the removal pattern to the model) but
imputed from their neighbours: every removed pixel equals the weighted mean of its valid
neighbours (known or themselves imputed; direct neighbours weight 1/6, diagonal ones 1/12 on
images, 1/2 each on signals), one sparse linear system per image and channel, plus Gaussian
noise of standard deviation ``noise``. No retraining is needed.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix, diags
from scipy.sparse.linalg import spsolve

from ._checks import as_generator, check_batch_size, check_target, to_numpy
from ._evaluation import PredictFn, evaluate_rows
from ._regions import check_batch, check_order

#: (offset, weight) of the neighbours of a pixel, as in the ROAD paper's reference code
IMAGE_NEIGHBOURS = (
    ((1, 1), 1 / 12), ((0, 1), 1 / 6), ((-1, 1), 1 / 12), ((1, -1), 1 / 12),
    ((0, -1), 1 / 6), ((-1, -1), 1 / 12), ((1, 0), 1 / 6), ((-1, 0), 1 / 6),
)
SIGNAL_NEIGHBOURS = (((-1,), 1 / 2), ((1,), 1 / 2))


def noisy_linear_imputation(
    x: object, removed: object, *, noise: float = 0.01, random_state: object = None
) -> np.ndarray:
    """Impute the ``removed`` positions of one signal ``(C, L)`` or image ``(C, H, W)``.

    Parameters
    ----------
    x : array-like of shape (C, ...)
    removed : array-like of bool, shape ``spatial``
        Positions to impute (all channels).
    noise : float, default=0.01
        Standard deviation of the Gaussian noise added to imputed values.
    random_state : int, RandomState instance, Generator or None

    Returns
    -------
    ndarray
        A copy of ``x`` with the removed positions imputed.

    Examples
    --------
    >>> import numpy as np
    >>> from sknn_explain.metrics import noisy_linear_imputation
    >>> x = np.array([[0.0, 5.0, 2.0]])
    >>> noisy_linear_imputation(x, np.array([False, True, False]), noise=0.0)
    array([[0., 1., 2.]])
    """
    x = to_numpy(x)
    mask = np.asarray(removed, dtype=bool)
    if x.ndim not in (2, 3) or mask.shape != x.shape[1:]:
        raise ValueError(
            f"x must be (C, L) or (C, H, W) and removed its spatial shape; got {x.shape} and "
            f"{mask.shape}"
        )
    if not np.isscalar(noise) or not noise >= 0:
        raise ValueError(f"noise must be a non-negative number, got {noise!r}")
    spatial = mask.shape
    idx = np.flatnonzero(mask)
    m = idx.size
    out = x.copy()
    if m == 0:
        return out
    if m == mask.size:
        raise ValueError("every position is removed: there is nothing to impute from")
    var = np.full(mask.size, -1)
    var[idx] = np.arange(m)
    coords = np.unravel_index(idx, spatial)
    flat_x = x.reshape(x.shape[0], -1)
    flat_mask = mask.reshape(-1)
    weight_sum = np.zeros(m)
    b = np.zeros((m, x.shape[0]))
    rows, cols, vals = [], [], []
    for offset, weight in (IMAGE_NEIGHBOURS if len(spatial) == 2 else SIGNAL_NEIGHBOURS):
        moved = [c + o for c, o in zip(coords, offset)]
        valid = np.all([(c >= 0) & (c < s) for c, s in zip(moved, spatial)], axis=0)
        ids = np.flatnonzero(valid)
        nb = np.ravel_multi_index(tuple(c[valid] for c in moved), spatial)
        weight_sum[ids] += weight
        unknown = flat_mask[nb]
        rows.append(ids[unknown])
        cols.append(var[nb[unknown]])
        vals.append(np.full(int(unknown.sum()), weight))
        b[ids[~unknown]] -= weight * flat_x[:, nb[~unknown]].T
    # sum_j w_ij (x_j - x_i) = 0 for every removed i: x_i is the mean of its neighbours
    A = coo_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(m, m)
    ).tocsc() - diags(weight_sum, format="csc")
    sol = np.asarray(spsolve(A, b)).reshape(m, -1)
    if noise > 0:
        gen = random_state if isinstance(random_state, np.random.Generator) else as_generator(
            random_state)
        sol = sol + float(noise) * gen.standard_normal(sol.shape)
    out.reshape(x.shape[0], -1)[:, idx] = sol.T
    return out


def road_curve(
    predict_fn: PredictFn,
    X: object,
    attributions: object,
    *,
    target: object = None,
    order: str = "morf",
    fractions: object = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
    noise: float = 0.01,
    random_state: object = None,
    batch_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """ROAD curve: the explained output after imputing the most / least relevant positions.

    For each fraction ``q``, the ``floor(q * n_positions)`` positions (pixels, or signal
    steps; all channels) with the largest (``"morf"``) or smallest (``"lerf"``)
    attribution summed over channels are imputed by :func:`noisy_linear_imputation`; each
    fraction starts again from ``x`` (as the paper). MoRF curves should fall fast, LeRF
    curves stay high. Rong et al. report the accuracy ``argmax f == label`` over the data
    set; call with a probability ``predict_fn`` and threshold the curve, or average it.

    Parameters
    ----------
    predict_fn : callable
        ``predict_fn(Z) -> (m,) or (m, k)`` on a batch of shape ``(m, *input_shape)``.
    X : array-like of shape (n_samples, C, L) or (n_samples, C, H, W)
        Signals or images (channels first). Tabular data has no neighbourhood to impute
        from: use :func:`deletion_curve` there.
    attributions : array-like
        Same shape as ``X``, or ``(n, *spatial)`` / ``(n, 1, *spatial)``.
    target : int or array-like of int, optional
    order : {"morf", "lerf", "random"}, default="morf"
    fractions : sequence of float in [0, 1), default=(0, 0.1, ..., 0.9)
    noise : float, default=0.01
        Standard deviation of the imputation noise (in the units of ``X``).
    random_state : int, RandomState instance or None
        Seed of the noise and of the ``"random"`` order.
    batch_size : int, optional
        Rows per ``predict_fn`` call.

    Returns
    -------
    fractions : ndarray of shape (n_points,)
    curves : ndarray of shape (n_samples, n_points)

    Examples
    --------
    >>> import numpy as np
    >>> from sknn_explain.metrics import road_curve
    >>> X = np.arange(8.0).reshape(1, 1, 8)
    >>> road_curve(lambda Z: Z[:, 0, 3], X, X, fractions=[0.0, 0.5], noise=0.0)[1]
    array([[3., 3.]])
    """
    x, a = check_batch(X, attributions)
    if x.ndim not in (3, 4):
        raise ValueError(
            f"ROAD imputes from neighbouring positions and needs signals (n, C, L) or images "
            f"(n, C, H, W), got X of shape {x.shape}; for tabular data use deletion_curve"
        )
    order = check_order(order)
    q = np.asarray(to_numpy(fractions)).reshape(-1)
    if q.size == 0 or not ((q >= 0) & (q < 1)).all():
        raise ValueError(f"fractions must be values in [0, 1), got {fractions!r}")
    n, shape = x.shape[0], x.shape[1:]
    rng = as_generator(random_state)
    score = a.sum(axis=1).reshape(n, -1)  # per position
    p = score.shape[1]
    key = rng.random(score.shape) if order == "random" else (
        -score if order == "morf" else score)
    ranking = np.argsort(key, axis=1, kind="stable")
    counts = np.floor(q * p + 1e-9).astype(np.int64)
    imputed = np.empty((n, q.size, *shape))
    for i in range(n):
        for j, c in enumerate(counts):
            removed = np.zeros(p, dtype=bool)
            removed[ranking[i, :c]] = True
            imputed[i, j] = noisy_linear_imputation(
                x[i], removed.reshape(shape[1:]), noise=noise, random_state=rng
            )
    t = check_target(target, n)

    def call(Z: np.ndarray) -> object:
        return predict_fn(Z.reshape(-1, *shape))

    curves = evaluate_rows(
        call, lambda sl: imputed[sl].reshape(-1, q.size, int(np.prod(shape))), n, q.size, t,
        check_batch_size(batch_size),
    )
    return q, curves
