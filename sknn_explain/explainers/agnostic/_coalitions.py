"""Coalitions of interpretable features and their kernel weights (Kernel SHAP, LIME)."""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
from scipy.special import comb

__all__ = ["MAX_ENUMERATED_FEATURES", "StratifiedCoalitions", "kernel_shap_coalitions",
           "lime_perturbations"]

#: never enumerate all ``2^M - 2`` coalitions beyond this many features: 2^30 coalitions
#: would be 30 GiB of masks, more than any budget can pay for
MAX_ENUMERATED_FEATURES = 30
#: coalition sizes drawn up front per coalition still to fill: repeated draws only raise
#: a coalition's weight, so more draws than rows are needed (shap.KernelExplainer's 4)
_SIZE_DRAWS_PER_ROW = 4
#: random subsets drawn per numpy call: amortises the argsort while stopping soon after the
#: budget is full (part of the sampling scheme: another value gives other coalitions for
#: the same seed)
_SUBSETS_PER_DRAW = 1024
#: rounding slack of the test "the budget covers every subset of this size" (shap's)
_FULL_SIZE_SLACK = 1e-8
#: a stratum is enumerated and shuffled when it has at most this many pairs and at least
#: 1 / _REJECTION_FRACTION of them are wanted; otherwise subsets are drawn at random and
#: repeats rejected (rare then, and no enumeration of a large stratum for a few pairs)
_ENUMERATE_POPULATION = 2**16
_REJECTION_FRACTION = 4
#: subsets of at most this many features are told apart by one int64 code
_INT_CODE_FEATURES = 62


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
    if m <= MAX_ENUMERATED_FEATURES and n_samples >= 2**m - 2:
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
        if left * remaining[size - 1] / n_subsets < 1.0 - _FULL_SIZE_SLACK:
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
        draw_sizes = rng.choice(len(probs), _SIZE_DRAWS_PER_ROW * left, p=probs) + n_full + 1
        seen: dict[bytes, int] = {}
        rand_weights: list[float] = []
        block = _SUBSETS_PER_DRAW
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


class StratifiedCoalitions:
    """Paired coalitions sampled without replacement within each subset size (stratum).

    Stratum ``s`` (``1 <= s <= M / 2``) holds the complement pairs ``(S, N \\ S)`` with
    ``|S| = s`` (for ``s = M / 2`` each unordered pair once). Its Shapley-kernel mass is
    known exactly, so a budget is allotted to the strata in proportion to their mass; a
    stratum whose share covers all its pairs is enumerated and the rest of the budget goes to
    the others (water filling). Within a stratum pairs are a simple random sample without
    replacement, and every coalition of the stratum gets the weight ``mass / (2 n_s)``: the
    weighted design ``sum w z z^T`` and moments ``sum w z y`` are then unbiased for their
    values over all coalitions, the between-size noise of shap's random size draws is gone,
    and the within-stratum sample variance gives a standard error (:func:`constrained_wls_se`).

    Pairs are drawn once per stratum in a random order and every budget takes a prefix, so the
    coalitions of a smaller budget are a subset of those of a larger one (convergence rounds
    reuse every model evaluation).

    Parameters
    ----------
    n_features : int
        ``M`` (>= 2).
    max_samples : int
        Largest budget (coalitions) that :meth:`take` will be asked for.
    rng : numpy Generator

    Examples
    --------
    >>> import numpy as np
    >>> sc = StratifiedCoalitions(20, 500, np.random.default_rng(0))
    >>> z, w, stratum = sc.take(300)
    >>> z.shape, bool(np.isclose(w.sum(), 1)), bool((z[0::2] == ~z[1::2]).all())
    ((300, 20), True, True)
    >>> bool((sc.take(500)[0][: 2 * sc.counts(300)[0]] == z[: 2 * sc.counts(300)[0]]).all())
    True
    """

    def __init__(self, n_features: int, max_samples: int, rng: np.random.Generator) -> None:
        m = int(n_features)
        if m < 2:
            raise ValueError(f"Kernel SHAP coalitions need at least 2 features, got {m}")
        self.n_features = m
        self.sizes, self.population, self.mass = _strata(m)
        cap = self.counts(max_samples)
        # a stratum is enumerated and shuffled when small and wanted in large part, else
        # drawn at random with rejection of repeats
        enumerated = (self.population <= _ENUMERATE_POPULATION) & (
            cap * _REJECTION_FRACTION >= self.population)
        self._pairs = [
            _stratum_subsets(m, int(s))[rng.permutation(int(p))[:c]] if enum else None
            for s, c, p, enum in zip(self.sizes, cap, self.population, enumerated)
        ]
        drawn = [i for i, enum in enumerate(enumerated) if not enum and cap[i] > 0]
        if drawn:  # the other strata: random subsets, all strata in one draw
            for i, rows in zip(drawn, _distinct_subsets(m, self.sizes[drawn], cap[drawn], rng)):
                self._pairs[i] = rows
        self._pairs = [np.zeros((0, m), dtype=bool) if p is None else p for p in self._pairs]

    def counts(self, n_samples: int) -> np.ndarray:
        """Pairs per stratum for a budget of ``n_samples`` coalitions (water filling)."""
        return _water_filling(self.n_features, int(n_samples))

    def take(self, n_samples: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Coalitions ``(S, M)`` (pairs on consecutive rows), weights ``(S,)`` summing to 1
        and the stratum of every row, for a budget of ``n_samples`` coalitions."""
        return self.rows(self.counts(n_samples))

    def rows(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """As :meth:`take`, for given numbers of pairs per stratum."""
        counts = np.asarray(counts, dtype=np.int64)
        used = np.flatnonzero(counts)
        z = _with_complements(np.concatenate([self._pairs[i][:counts[i]] for i in used]))
        per_row = 2 * counts[used]
        w = np.repeat(self.mass[used] / per_row, per_row)
        return z, w / w.sum(), np.repeat(used, per_row)

    def pair_rows(self, stratum: int, start: int, stop: int) -> np.ndarray:
        """Pairs ``start:stop`` of a stratum as coalition rows, each followed by its
        complement, ``(2 (stop - start), M)``."""
        return _with_complements(self._pairs[stratum][start:stop])


def _with_complements(half: np.ndarray) -> np.ndarray:
    """Coalitions ``(J, M)`` as rows ``(2 J, M)``, each followed by its complement."""
    pair = np.empty((2 * len(half), half.shape[1]), dtype=bool)
    pair[0::2], pair[1::2] = half, ~half
    return pair


@functools.lru_cache(maxsize=32)
def _stratum_subsets(m: int, size: int) -> np.ndarray:
    """Every subset of ``size`` features in lexicographic order, ``(C(M, size), M)``; for
    ``size = M / 2`` one of each complement pair (the one without the last feature).
    Cached (read-only): repeated explanations of the same width enumerate it once."""
    idx = np.array(list(itertools.combinations(range(m), size)), dtype=np.int64)
    full = np.zeros((len(idx), m), dtype=bool)
    full[np.arange(len(idx))[:, None], idx] = True
    if 2 * size == m:
        full = full[~full[:, -1]]
    full.flags.writeable = False
    return full


@functools.lru_cache(maxsize=64)
def _strata(m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Subset sizes ``1 .. M / 2``, pairs per size and the sizes' Shapley-kernel mass
    (summing to 1), for ``M`` features. Cached (read-only): fixed per width."""
    sizes = np.arange(1, m // 2 + 1)
    per = (m - 1) / (comb(m, sizes) * sizes * (m - sizes))  # kernel weight per coalition
    population = np.array(
        [comb(m, s, exact=True) // (2 if 2 * s == m else 1) for s in sizes], dtype=np.int64)
    mass = 2 * per * population
    mass /= mass.sum()
    for a in (sizes, population, mass):
        a.flags.writeable = False
    return sizes, population, mass


@functools.lru_cache(maxsize=256)
def _water_filling(m: int, n_samples: int) -> np.ndarray:
    """Pairs per stratum for a budget of ``n_samples`` coalitions over ``M`` features:
    allotted in proportion to the strata's kernel mass, a stratum whose share covers all
    its pairs enumerated and its surplus shared by the others. Cached (read-only)."""
    _, population, mass = _strata(m)
    left = n_samples // 2
    counts = np.zeros(len(population), dtype=np.int64)
    open_ = np.ones(len(population), dtype=bool)
    while left > 0 and open_.any():
        share = mass * open_ / mass[open_].sum() * left
        full = open_ & (share >= population - counts)
        if full.any():  # enumerate these, give their surplus to the others
            left -= int((population - counts)[full].sum())
            counts[full] = population[full]
            open_ &= ~full
            continue
        add = np.floor(share).astype(np.int64)
        rest = left - int(add.sum())
        order = np.argsort(-(share - add) * open_, kind="stable")[:rest]
        add[order] += 1
        counts += np.minimum(add, population - counts)
        break
    counts.flags.writeable = False
    return counts


def _distinct_subsets(
    m: int, sizes: np.ndarray, counts: np.ndarray, rng: np.random.Generator
) -> list[np.ndarray]:
    """Per stratum ``i``, ``counts[i]`` distinct random subsets of ``sizes[i]`` features in
    random order, ``(counts[i], M)``; for a size of ``M / 2`` one of each complement pair
    (the one without the last feature).

    All strata are drawn in one call (their subsets differ in size, so one uniqueness test
    over all rows finds the repeats within each); a repeat is dropped and its stratum drawn
    again (rare: the strata drawn here are large next to the pairs wanted from them).
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    counts = np.asarray(counts, dtype=np.int64)
    stratum = np.repeat(np.arange(len(sizes)), counts)
    rows = np.zeros((0, m), dtype=bool)
    kept = np.zeros(0, dtype=np.int64)
    need = stratum
    while len(need):
        draw = np.argsort(rng.random((len(need), m)), axis=1) < sizes[need][:, None]
        flip = (2 * sizes[need] == m) & draw[:, -1]
        draw[flip] = ~draw[flip]
        rows, kept = np.vstack([rows, draw]), np.concatenate([kept, need])
        if m <= _INT_CODE_FEATURES:  # one integer per subset: a 1-D unique, far faster
            keys = rows @ (np.int64(1) << np.arange(m, dtype=np.int64))
            _, first = np.unique(keys, return_index=True)
        else:
            _, first = np.unique(np.packbits(rows, axis=1), axis=0, return_index=True)
        first = np.sort(first)  # first occurrences, in draw order
        rows, kept = rows[first], kept[first]
        missing = counts - np.bincount(kept, minlength=len(counts))
        need = np.repeat(np.arange(len(sizes)), missing)
    order = np.argsort(kept, kind="stable")  # stratum by stratum, each in draw order
    rows = rows[order]
    ends = np.cumsum(counts)
    return [rows[end - c:end] for c, end in zip(counts.tolist(), ends.tolist())]
