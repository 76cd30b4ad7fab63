"""Argument checks of the plots: samples, inputs, aggregation, preprocessing, flags, kinds."""

from __future__ import annotations

import numbers
from collections.abc import Callable

import numpy as np

from ._panel import DIM_NAMES, DISTRIBUTION_KINDS, GLOBAL_KINDS


def is_int(v: object) -> bool:
    return isinstance(v, (numbers.Integral, np.integer)) and not isinstance(v, (bool, np.bool_))


def check_data_idx(data_idx: object, n: int, allow_all: bool) -> list[int]:
    """0-based sample indices; ``"all"`` when ``allow_all``."""
    if isinstance(data_idx, str):
        if allow_all and data_idx == "all":
            return list(range(n))
        what = '"all", an int or a list of ints' if allow_all else "an int or a list of ints"
        raise ValueError(f"data_idx must be {what}, got {data_idx!r}")
    idx = [data_idx] if is_int(data_idx) else data_idx
    if isinstance(idx, np.ndarray):
        idx = idx.tolist()
    if not isinstance(idx, (list, tuple, range)) or not all(is_int(i) for i in idx):
        raise TypeError(f"data_idx must be an int or a list of ints, got {data_idx!r}")
    idx = [int(i) for i in idx]
    if not idx:
        raise ValueError("data_idx selects no sample")
    bad = [i for i in idx if not 0 <= i < n]
    if bad:
        raise ValueError(
            f"data_idx {bad[0]} is out of range: the attribution has {n} sample(s) "
            f"(valid: 0..{n - 1})"
        )
    if len(set(idx)) != len(idx):
        raise ValueError(f"data_idx has duplicates: {idx}")
    return idx


def check_input_idx(input_idx: object, n_inputs: int) -> list[int]:
    if input_idx is None:
        return list(range(n_inputs))
    idx = [input_idx] if is_int(input_idx) else input_idx
    if not isinstance(idx, (list, tuple, range)) or not all(is_int(i) for i in idx) or not idx:
        raise TypeError(f"input_idx must be None, an int or a list of ints, got {input_idx!r}")
    idx = [int(i) for i in idx]
    for i in idx:
        if not 0 <= i < n_inputs:
            raise ValueError(
                f"input_idx {i} is out of range: the model has {n_inputs} input(s) "
                f"(valid: 0..{n_inputs - 1})"
            )
    if len(set(idx)) != len(idx):
        raise ValueError(f"input_idx has duplicates: {idx}")
    return idx


def resolve_aggregation(aggr_channels: object, allow_none: bool) -> Callable | None:
    """``"sum"`` / ``"mean"`` / ``"norm"`` / callable ``f(a, axis)`` (or None: no aggregation)."""
    if aggr_channels is None and allow_none:
        return None
    if isinstance(aggr_channels, str):
        if aggr_channels == "sum":
            return np.sum
        if aggr_channels == "mean":
            return np.mean
        if aggr_channels == "norm":
            return _l2_norm
    elif callable(aggr_channels):
        return aggr_channels
    valid = "'sum', 'mean', 'norm' or a callable f(array, axis)"
    if allow_none:
        valid += " or None (one line per channel, signals only)"
    raise ValueError(f"unknown aggr_channels {aggr_channels!r}; use {valid}")


def _l2_norm(a: np.ndarray, axis: int) -> np.ndarray:
    return np.sqrt(np.sum(np.square(a), axis=axis))


def aggregate(a: np.ndarray, aggr: Callable, name: object) -> np.ndarray:
    """Reduce axis 1 (channels) of ``(n, C, ...)``."""
    out = np.asarray(aggr(a, axis=1), dtype=float)
    expected = a.shape[:1] + a.shape[2:]
    if out.shape != expected:
        raise ValueError(
            f"aggr_channels {name!r} must reduce the channel axis: from shape {a.shape} "
            f"(axis=1) it returned {out.shape}, expected {expected}"
        )
    return out


def resolve_preprocess(preprocess: object, kind_is_beeswarm: bool) -> Callable | None:
    if isinstance(preprocess, str):
        if preprocess != "auto":
            raise ValueError(f"preprocess must be 'auto', None or a callable, got {preprocess!r}")
        return None if kind_is_beeswarm else np.abs
    if preprocess is None:
        return None
    if not callable(preprocess):
        raise TypeError(f"preprocess must be 'auto', None or a callable, got {preprocess!r}")
    return preprocess


def apply_elementwise(fn: Callable | None, a: np.ndarray) -> np.ndarray:
    if fn is None:
        return a
    out = np.asarray(fn(a), dtype=float)
    if out.shape != a.shape:
        raise ValueError(
            f"preprocess must work element-wise: on shape {a.shape} it returned {out.shape}"
        )
    return out


def check_max_display(max_display: object) -> int | None:
    if max_display is None:
        return None
    if not is_int(max_display) or int(max_display) < 1:
        raise ValueError(f"max_display must be a positive int or None, got {max_display!r}")
    return int(max_display)


def check_flag(name: str, val: object) -> None:
    if not isinstance(val, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {val!r}")


def validate_kind_for_inputs(kind: str | None, dims: dict[int, int]) -> None:
    if kind is None:
        return
    if kind not in GLOBAL_KINDS:
        raise ValueError(f"unknown kind {kind!r}; use one of {list(GLOBAL_KINDS)} or None")
    for i, d in dims.items():
        if d == 3 and kind != "heatmap":
            raise ValueError(
                f"kind={kind!r} is for tabular and signal inputs, but input {i + 1} is an image; "
                f"images are summarised as a median heatmap: use kind='heatmap' or kind=None "
                f"(or input_idx= to plot the other inputs)"
            )
        if d != 3 and kind == "heatmap":
            raise ValueError(
                f"kind='heatmap' is for image inputs, but input {i + 1} is {DIM_NAMES[d]}; "
                f"use one of {list(DISTRIBUTION_KINDS)} or 'beeswarm'"
            )
        if d == 2 and kind == "beeswarm":
            raise ValueError(
                f"kind='beeswarm' needs tabular inputs (feature values colour the points), but "
                f"input {i + 1} is a signal; use one of {list(DISTRIBUTION_KINDS)}"
            )
