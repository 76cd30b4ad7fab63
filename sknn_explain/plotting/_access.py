"""Reading a result for the panels: channels-first values / inputs, names, formatting, frames."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ._panel import OutputNode
from ._result import AttributionLike, inputs_of


def values_cf(attr: AttributionLike, out: OutputNode, input_i: int, rows: list[int]) -> np.ndarray:
    """Attributions of ``rows`` for one output node, model layout ``(n, *shape)``."""
    v = attr.raw_values[out.pos][input_i][rows, ..., out.k]
    if not attr.channels_first and v.ndim >= 3:
        v = np.moveaxis(v, -1, 1)
    return np.asarray(v, dtype=float)


def inputs_cf(attr: AttributionLike, input_i: int, rows: list[int]) -> np.ndarray:
    """The inputs of ``rows`` channels-first; float, or object for raw categorical columns."""
    x = np.asarray(inputs_of(attr)[input_i][rows])
    if x.dtype.kind in "biuf":
        x = x.astype(float)
    elif x.ndim != 2:
        x = x.astype(float)
    if not attr.channels_first and x.ndim >= 3:
        x = np.moveaxis(x, -1, 1)
    return x


def dimension(attr: AttributionLike, input_i: int) -> int:
    return len(attr.input_names[input_i])


def _scaled(a: np.ndarray) -> np.ndarray:
    lo, hi = np.nanmin(a), np.nanmax(a)
    return np.zeros_like(a) if hi <= lo else (a - lo) / (hi - lo)


def image_background(x: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` input -> ``(H, W)`` grey image in [0, 1] (channel mean, min-max scaled)."""
    return _scaled(x.mean(axis=0))


def image_display(x: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` input -> what to show: ``(H, W, 3)`` RGB for 3 channels, else grey
    ``(H, W)``; min-max scaled to [0, 1] over the whole image."""
    if x.shape[0] == 3:
        return np.moveaxis(_scaled(x), 0, -1)
    return image_background(x)


def data_name(i: int) -> str:
    return f"data_{i + 1}"


def fmt_number(v: float) -> str:
    return "nan" if not np.isfinite(v) else f"{v:.3g}"


def fmt_value(v: object) -> str:
    """A feature value for a label: numbers as ``3.1``, categories as they are (``Biscoe``)."""
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA or v is pd.NaT:
        return "nan"
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, float, np.integer, np.floating)):
        return fmt_number(float(v))
    return str(v)


def categories_of(values: Sequence) -> list | None:
    """The categories of a non-numeric feature (sorted), or None when it is numeric."""
    series = pd.Series(np.asarray(values, dtype=object))
    present = series[series.notna()]
    if present.empty:
        return None
    numeric = pd.to_numeric(present, errors="coerce")
    is_bool = present.map(lambda v: isinstance(v, (bool, np.bool_))).all()
    if numeric.notna().all() and not is_bool:
        return None
    return sorted(present.unique().tolist(), key=str)


def category_codes(values: Sequence, categories: Sequence) -> np.ndarray:
    """Index of each value in ``categories`` (float; NaN for missing values)."""
    lookup = {c: k for k, c in enumerate(categories)}
    return np.array([lookup.get(v, np.nan) if v is not None and v == v else np.nan
                     for v in np.asarray(values, dtype=object)], dtype=float)


def categorical(values: Sequence, order: Sequence) -> pd.Categorical:
    return pd.Categorical(values, categories=list(order), ordered=True)


def base_frame(out: OutputNode, input_i: int) -> dict:
    return {
        "model_input": f"Input_{input_i + 1}",
        "model_output": f"Output_{out.layer + 1}",
        "output_node": out.node,
    }


def input_space_text(attr: AttributionLike) -> str | None:
    """Which inputs a pipeline's attributions refer to (None for plain networks)."""
    space = getattr(attr, "input_space", None)
    return None if space is None else f"{space} inputs"


def with_input_space(panels: list, attr: AttributionLike) -> list:
    text = input_space_text(attr)
    if text is not None:
        for panel in panels:
            panel.extra["input_space"] = text
    return panels
