"""Helpers both renderers share: value scales, ticks, beeswarm offsets, colours, orders."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._panel import Panel

_MAX_TICKS = 12


def scales(panels: Sequence[Panel]) -> dict[int, tuple[float, float]]:
    """(min, max) of the values per scale group."""
    out: dict[int, tuple[float, float]] = {}
    for p in panels:
        lo, hi = p.value_range()
        if p.scale_group in out:
            lo, hi = min(lo, out[p.scale_group][0]), max(hi, out[p.scale_group][1])
        out[p.scale_group] = (lo, hi)
    return out


def sym(lo: float, hi: float) -> float:
    m = max(abs(lo), abs(hi))
    return m if m > 0 else 1.0


def padded(lo: float, hi: float, pad: float = 0.06) -> tuple[float, float]:
    if hi <= lo:
        m = abs(hi) if hi != 0 else 1.0
        return lo - m, hi + m
    span = hi - lo
    lo_p = 0.0 if lo >= 0 else lo - pad * span
    return lo_p, hi + pad * span


def thin_ticks(n: int) -> np.ndarray:
    step = max(1, int(np.ceil(n / _MAX_TICKS)))
    return np.arange(0, n, step)


def beeswarm_offsets(values: np.ndarray, n_bins: int = 100, width: float = 0.4) -> np.ndarray:
    """Vertical offsets that pile up points with similar values (shap's beeswarm layout).

    Values are binned into ``n_bins``; inside a bin the points alternate above and below
    the centre line (0, +1, -1, +2, ...), scaled so that the fullest bin spans ``width``.
    """
    values = np.asarray(values, dtype=float)
    n = values.size
    if n == 0:
        return np.zeros(0)
    lo, hi = np.nanmin(values), np.nanmax(values)
    span = hi - lo if hi > lo else 1.0
    bins = np.round(n_bins * (np.nan_to_num(values, nan=lo) - lo) / span).astype(int)
    order = np.lexsort((np.arange(n), bins))
    sorted_bins = bins[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_bins)) + 1]
    first = np.repeat(starts, np.diff(np.r_[starts, n]))
    rank = np.arange(n) - first
    level = np.ceil(rank / 2) * np.where(rank % 2 == 1, 1, -1)
    out = np.empty(n)
    out[order] = level
    top = np.abs(out).max()
    return out * (width / top) if top > 0 else out


def feature_colours(x: np.ndarray) -> np.ndarray:
    """Feature values -> [0, 1] by their 5-95 % quantiles (as shap), NaN stays NaN."""
    finite = x[np.isfinite(x)]
    if finite.size == 0:
        return np.full_like(x, np.nan)
    lo, hi = np.percentile(finite, [5, 95])
    if hi <= lo:
        lo, hi = finite.min(), finite.max()
    if hi <= lo:
        return np.where(np.isfinite(x), 0.5, np.nan)
    return np.clip((x - lo) / (hi - lo), 0, 1)


def order_of(values: Sequence) -> list:
    return list(dict.fromkeys(values))
