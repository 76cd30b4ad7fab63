"""Backend-independent half of the plots: argument checks, selection and tidy panel frames.

Every plot is a grid of *panels*. :func:`local_panels` and :func:`global_panels` check the
arguments, pick the samples / output nodes / inputs, aggregate channels and build one tidy
(long-form) :class:`pandas.DataFrame` per panel with the column names of
:meth:`Attribution.to_frame <sknn_explain.Attribution.to_frame>`. The matplotlib / seaborn
renderer (:mod:`._mpl`) and the plotly renderer (:mod:`._plotly`) only draw panels.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..attribution import Attribution

__all__ = ["Panel", "global_panels", "local_panels"]

AGGREGATIONS = ("sum", "mean", "norm")
GLOBAL_KINDS = ("box", "violin", "strip", "bar", "beeswarm", "heatmap")
#: kinds drawn as one distribution per feature / signal position
DISTRIBUTION_KINDS = ("box", "violin", "strip", "bar")
_DIM_NAMES = {1: "tabular", 2: "signal", 3: "image"}


@dataclass
class Panel:
    """One subplot: what to draw, its tidy data and where it goes in the grid.

    ``kind`` is one of ``"bars"`` (tabular local), ``"signal_bars"`` / ``"signal_lines"``
    (1D local), ``"heatmap"`` (image, local or global median), ``"box"`` / ``"violin"`` /
    ``"strip"`` / ``"bar"`` (global distributions per feature or position) and
    ``"beeswarm"`` (tabular global summary). ``frame`` has the ``to_frame`` columns that
    apply (``data``, ``model_input``, ``model_output``, ``output_node``, ``feature``,
    ``feature_2``, ``channel``, ``value``) plus ``sign`` (local bars) or ``feature_value``
    (beeswarm).
    """

    kind: str
    frame: pd.DataFrame
    row: str | None
    col: str | None
    title: str
    input_index: int
    input_dimension: int
    features: list[str]
    scale_group: int
    scope: str = "local"
    value_label: str = "attribution"
    note: str | None = None
    features_2: list[str] | None = None
    background: np.ndarray | None = None
    highlight: pd.DataFrame | None = None
    highlight_label: str | None = None
    extra: dict = field(default_factory=dict)

    def value_range(self) -> tuple[float, float]:
        """Finite (min, max) of the values this panel draws ((0, 0) when none)."""
        vals = self.frame["value"].to_numpy(dtype=float)
        if self.highlight is not None:
            vals = np.concatenate([vals, self.highlight["value"].to_numpy(dtype=float)])
        vals = vals[np.isfinite(vals)]
        if vals.size == 0:
            return 0.0, 0.0
        return float(vals.min()), float(vals.max())


@dataclass(frozen=True)
class _Output:
    pos: int  # position in raw_values (selected output layer)
    k: int  # position on the trailing output axis
    layer: int  # 0-based model output layer
    node: str  # node name
    label: str  # display label


# ---------------------------------------------------------------------- argument checks
def check_attribution(attr: object) -> Attribution:
    if not isinstance(attr, Attribution):
        raise TypeError(
            f"expected an sknn_explain.Attribution (the result of Explainer.explain), got "
            f"{type(attr).__name__}"
        )
    for i, names in enumerate(attr.input_names):
        if len(names) > 3:
            raise ValueError(
                f"plots support tabular, signal and image inputs (rank 1-3); input {i + 1} has "
                f"rank {len(names)}"
            )
    return attr


def _is_int(v: object) -> bool:
    return isinstance(v, (numbers.Integral, np.integer)) and not isinstance(v, (bool, np.bool_))


def check_data_idx(data_idx: object, n: int, allow_all: bool) -> list[int]:
    """0-based sample indices; ``"all"`` when ``allow_all``."""
    if isinstance(data_idx, str):
        if allow_all and data_idx == "all":
            return list(range(n))
        what = '"all", an int or a list of ints' if allow_all else "an int or a list of ints"
        raise ValueError(f"data_idx must be {what}, got {data_idx!r}")
    idx = [data_idx] if _is_int(data_idx) else data_idx
    if isinstance(idx, np.ndarray):
        idx = idx.tolist()
    if not isinstance(idx, (list, tuple, range)) or not all(_is_int(i) for i in idx):
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
    idx = [input_idx] if _is_int(input_idx) else input_idx
    if not isinstance(idx, (list, tuple, range)) or not all(_is_int(i) for i in idx) or not idx:
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


def _per_layer(arg: object) -> dict[int, list]:
    """output_idx / output_label -> {model output layer: entries} (as in ``explain``)."""
    if isinstance(arg, (list, tuple)) and any(
        isinstance(a, (list, tuple, np.ndarray)) or a is None for a in arg
    ):
        return {layer: _entries(a) for layer, a in enumerate(arg) if a is not None}
    return {0: _entries(arg)}


def _entries(a: object) -> list:
    """A scalar, list or array of indices / labels as a flat Python list."""
    if isinstance(a, (list, tuple)):
        return list(a)
    return np.asarray(a, dtype=object).ravel().tolist()


def select_outputs(attr: Attribution, output_idx: object, output_label: object) -> list[_Output]:
    """Resolve ``output_idx`` / ``output_label`` among the output nodes the result holds.

    Semantics as in ``explain`` (0-based model indices, an int / list for the first output
    layer, a list of lists per output layer); default: the first computed node.
    """
    multi = len(attr.output_layers) > 1
    computed: dict[int, list[tuple[int, int, str]]] = {}
    for layer, idx, names in zip(attr.output_layers, attr.output_idx, attr.output_names):
        computed[int(layer)] = [(int(i), k, str(nm)) for k, (i, nm) in enumerate(zip(idx, names))]

    def make(layer: int, k_entry: tuple[int, int, str]) -> _Output:
        _, k, node = k_entry
        pos = attr.output_layers.index(layer)
        label = f"Output_{layer + 1}: {node}" if multi else node
        return _Output(pos=pos, k=k, layer=layer, node=node, label=label)

    def describe() -> str:
        return "; ".join(
            f"output layer {layer + 1}: {[i for i, _, _ in entries]} ({[n for _, _, n in entries]})"
            for layer, entries in computed.items()
        )

    if output_idx is not None and output_label is not None:
        raise ValueError("give either output_idx or output_label, not both")
    if output_idx is None and output_label is None:
        first = attr.output_layers[0]
        return [make(first, computed[first][0])]
    per_layer = _per_layer(output_idx if output_idx is not None else output_label)
    selected: list[_Output] = []
    for layer, entries in per_layer.items():
        if not entries:
            raise ValueError(f"empty output selection for output layer {layer + 1}")
        if layer not in computed:
            raise ValueError(
                f"output layer {layer + 1} was not computed by explain(); computed: {describe()}"
            )
        for entry in entries:
            if output_idx is not None:
                if not _is_int(entry):
                    raise TypeError(f"output_idx entries must be integers, got {entry!r}")
                match = [c for c in computed[layer] if c[0] == int(entry)]
                what = f"output node {int(entry)}"
            else:
                match = [c for c in computed[layer] if c[2] == str(entry)]
                what = f"output_label {entry!r}"
            if not match:
                raise ValueError(
                    f"{what} of output layer {layer + 1} was not computed by explain(); "
                    f"computed: {describe()}. Explain it first, e.g. "
                    f"explainer.explain(X, output_idx=...)"
                )
            selected.append(make(layer, match[0]))
    if len(set(selected)) != len(selected):
        raise ValueError("the output selection has duplicates")
    return selected


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


def _aggregate(a: np.ndarray, aggr: Callable, name: object) -> np.ndarray:
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


def _apply(fn: Callable | None, a: np.ndarray) -> np.ndarray:
    if fn is None:
        return a
    out = np.asarray(fn(a), dtype=float)
    if out.shape != a.shape:
        raise ValueError(
            f"preprocess must work element-wise: on shape {a.shape} it returned {out.shape}"
        )
    return out


# ---------------------------------------------------------------------- data access
def _values_cf(attr: Attribution, out: _Output, input_i: int, rows: list[int]) -> np.ndarray:
    """Attributions of ``rows`` for one output node, model layout ``(n, *shape)``."""
    v = attr.raw_values[out.pos][input_i][rows, ..., out.k]
    if not attr.channels_first and v.ndim >= 3:
        v = np.moveaxis(v, -1, 1)
    return np.asarray(v, dtype=float)


def _inputs_cf(attr: Attribution, input_i: int, rows: list[int]) -> np.ndarray:
    x = np.asarray(attr._inputs[input_i][rows], dtype=float)
    if not attr.channels_first and x.ndim >= 3:
        x = np.moveaxis(x, -1, 1)
    return x


def _dimension(attr: Attribution, input_i: int) -> int:
    return len(attr.input_names[input_i])


def _scaled(a: np.ndarray) -> np.ndarray:
    lo, hi = np.nanmin(a), np.nanmax(a)
    return np.zeros_like(a) if hi <= lo else (a - lo) / (hi - lo)


def image_background(x: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` input -> ``(H, W)`` grey image in [0, 1] (channel mean, min-max scaled).

    Grey keeps the red / blue of the attribution heatmap readable on top of it.
    """
    return _scaled(x.mean(axis=0))


def _data_name(i: int) -> str:
    return f"data_{i + 1}"


def _fmt(v: float) -> str:
    return "nan" if not np.isfinite(v) else f"{v:.3g}"


def _categorical(values: Sequence, order: Sequence) -> pd.Categorical:
    return pd.Categorical(values, categories=list(order), ordered=True)


def _base_frame(out: _Output, input_i: int) -> dict:
    return {
        "model_input": f"Input_{input_i + 1}",
        "model_output": f"Output_{out.layer + 1}",
        "output_node": out.node,
    }


def _validate_kind_for_inputs(kind: str | None, dims: dict[int, int]) -> None:
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
                f"kind='heatmap' is for image inputs, but input {i + 1} is {_DIM_NAMES[d]}; "
                f"use one of {list(DISTRIBUTION_KINDS)} or 'beeswarm'"
            )
        if d == 2 and kind == "beeswarm":
            raise ValueError(
                f"kind='beeswarm' needs tabular inputs (feature values colour the points), but "
                f"input {i + 1} is a signal; use one of {list(DISTRIBUTION_KINDS)}"
            )


# ---------------------------------------------------------------------- local panels
def local_panels(
    attr: Attribution,
    data_idx: object = 0,
    output_idx: object = None,
    output_label: object = None,
    aggr_channels: object = "sum",
    same_scale: bool = False,
    show_preds: bool = True,
    show_input: bool = False,
    input_idx: object = None,
) -> list[Panel]:
    """Panels of :func:`sknn_explain.plotting.plot_local` (one per sample x output x input)."""
    attr = check_attribution(attr)
    rows = check_data_idx(data_idx, attr.n_samples, allow_all=False)
    outs = select_outputs(attr, output_idx, output_label)
    inputs = check_input_idx(input_idx, attr.n_inputs)
    for flag, val in (("same_scale", same_scale), ("show_preds", show_preds),
                      ("show_input", show_input)):
        if not isinstance(val, (bool, np.bool_)):
            raise TypeError(f"{flag} must be a bool, got {val!r}")
    aggr = resolve_aggregation(aggr_channels, allow_none=True)
    for i in inputs:
        if aggr is None and _dimension(attr, i) == 3 and len(attr.input_names[i][0]) > 1:
            raise ValueError(
                f"aggr_channels=None draws one line per channel and only works for signals; "
                f"input {i + 1} is an image with {len(attr.input_names[i][0])} channels: use "
                f"'sum', 'mean', 'norm' or a callable"
            )
    multi_in = len(inputs) > 1
    preds = attr._predictions
    goals = attr._goal
    sums = [attr._layer_sum(layer) for layer in attr.raw_values]

    panels = []
    for d in rows:
        for out in outs:
            pred = float(preds[out.pos][d, out.k])
            dsum = float(sums[out.pos][d, out.k])
            goal = float(goals[out.pos][d, out.k]) if goals is not None else np.nan
            note = None
            if show_preds:
                note = f"pred: {_fmt(pred)} | sum: {_fmt(dsum)}"
                if goals is not None:
                    note += f" | goal: {_fmt(goal)}"
            for col_pos, i in enumerate(inputs):
                panel = _local_panel(attr, out, i, d, aggr, aggr_channels, show_input)
                panel.extra.update(pred=pred, decomp_sum=dsum, decomp_goal=goal)
                label = f"{_data_name(d)} · {out.label}"
                panel.title = label + (f" · Input_{i + 1}" if multi_in else "")
                panel.row = label if multi_in else _data_name(d)
                panel.col = f"Input_{i + 1}" if multi_in else out.label
                panel.scale_group = 0 if same_scale else i
                # prediction / sum / goal belong to the sample x output: once per grid row
                panel.note = note if (col_pos == 0 or not multi_in) else None
                panels.append(panel)
    return panels


def _local_panel(
    attr: Attribution, out: _Output, i: int, d: int, aggr: Callable | None,
    aggr_name: object, show_input: bool,
) -> Panel:
    """The panel of sample ``d``, output ``out``, input ``i`` (grid position set by caller)."""
    names = [[str(f) for f in axis] for axis in attr.input_names[i]]
    dim = len(names)
    v = _values_cf(attr, out, i, [d])[0]  # (*shape)
    x = _inputs_cf(attr, i, [d])[0] if show_input else None
    common = {"data": _data_name(d), **_base_frame(out, i)}
    extra: dict = {}
    background = None
    features_2 = None
    if dim == 1:
        kind, features = "bars", names[0]
        frame = pd.DataFrame({**common, "feature": _categorical(features, features), "value": v})
        if show_input:
            extra["feature_labels"] = [f"{f} = {_fmt(xv)}" for f, xv in zip(features, x)]
    elif dim == 2:
        channels, features = names
        n_pos = len(features)
        background = x
        if aggr is None:  # one line per channel
            kind = "signal_lines"
            frame = pd.DataFrame({
                **common,
                "feature": _categorical(np.tile(features, len(channels)), features),
                "channel": _categorical(np.repeat(channels, n_pos), channels),
                "position": np.tile(np.arange(n_pos), len(channels)),
                "value": v.reshape(-1),
            })
        else:
            kind = "signal_bars"
            frame = pd.DataFrame({
                **common,
                "feature": _categorical(features, features),
                "position": np.arange(n_pos),
                "value": _aggregate(v[None], aggr, aggr_name)[0],
            })
    else:
        kind = "heatmap"
        _, features, features_2 = names
        img = v[0] if aggr is None else _aggregate(v[None], aggr, aggr_name)[0]
        frame = pd.DataFrame({
            **common,
            "feature": _categorical(np.repeat(features, len(features_2)), features),
            "feature_2": _categorical(np.tile(features_2, len(features)), features_2),
            "value": img.reshape(-1),
        })
        background = image_background(x) if show_input else None
    if kind in ("bars", "signal_bars"):
        frame["sign"] = _categorical(_signs(frame["value"].to_numpy()), SIGNS)
    return Panel(
        kind=kind, frame=frame, row=None, col=None, title="", input_index=i,
        input_dimension=dim, features=features, features_2=features_2, scale_group=i,
        background=background, extra=extra,
    )


SIGNS = ("positive", "negative", "zero")


def _signs(v: np.ndarray) -> np.ndarray:
    return np.where(v > 0, "positive", np.where(v < 0, "negative", "zero"))


# ---------------------------------------------------------------------- global panels
def global_panels(
    attr: Attribution,
    output_idx: object = None,
    output_label: object = None,
    data_idx: object = "all",
    ref_data_idx: object = None,
    preprocess: object = "auto",
    kind: str | None = None,
    aggr_channels: object = "sum",
    same_scale: bool = False,
    input_idx: object = None,
) -> list[Panel]:
    """Panels of :func:`sknn_explain.plotting.plot_global` (one per output x input)."""
    attr = check_attribution(attr)
    outs = select_outputs(attr, output_idx, output_label)
    rows = check_data_idx(data_idx, attr.n_samples, allow_all=True)
    if ref_data_idx is not None:
        if not _is_int(ref_data_idx):
            raise TypeError(f"ref_data_idx must be None or an int, got {ref_data_idx!r}")
        check_data_idx(ref_data_idx, attr.n_samples, allow_all=False)
        ref_data_idx = int(ref_data_idx)
    inputs = check_input_idx(input_idx, attr.n_inputs)
    if not isinstance(same_scale, (bool, np.bool_)):
        raise TypeError(f"same_scale must be a bool, got {same_scale!r}")
    if kind is not None and not isinstance(kind, str):
        raise TypeError(f"kind must be a str or None, got {kind!r}")
    dims = {i: _dimension(attr, i) for i in inputs}
    _validate_kind_for_inputs(kind, dims)
    pre = resolve_preprocess(preprocess, kind == "beeswarm")
    if aggr_channels is None:
        raise ValueError(
            "plot_global needs aggr_channels ('sum', 'mean', 'norm' or a callable) to reduce "
            "the channels of signal and image inputs"
        )
    aggr = resolve_aggregation(aggr_channels, allow_none=False)
    multi_in = len(inputs) > 1
    panels = []
    for out in outs:
        for i in inputs:
            this_kind = kind if kind is not None else ("heatmap" if dims[i] == 3 else "box")
            panel = _global_panel(attr, out, i, rows, ref_data_idx, pre, this_kind, aggr,
                                  aggr_channels)
            panel.title = out.label + (f" · Input_{i + 1}" if multi_in else "")
            panel.row = out.label if multi_in else None
            panel.col = f"Input_{i + 1}" if multi_in else out.label
            panel.scale_group = 0 if same_scale else i
            panels.append(panel)
    return panels


def _value_label(pre: Callable | None) -> str:
    if pre is None:
        return "attribution"
    if pre is np.abs or pre is abs:
        return "|attribution|"
    name = getattr(pre, "__name__", "")
    return f"{name}(attribution)" if name.isidentifier() else "preprocess(attribution)"


def _global_panel(
    attr: Attribution, out: _Output, i: int, rows: list[int], ref: int | None,
    pre: Callable | None, kind: str, aggr: Callable, aggr_name: object,
) -> Panel:
    """The summary panel of output ``out`` and input ``i`` over samples ``rows``."""
    names = [[str(f) for f in axis] for axis in attr.input_names[i]]
    dim = len(names)
    common = _base_frame(out, i)

    def reduce(rows_: list[int]) -> np.ndarray:
        v = _values_cf(attr, out, i, rows_)
        if dim >= 2:
            v = _aggregate(v, aggr, aggr_name)
        return _apply(pre, v)

    vals = reduce(rows)  # (n, p) | (n, L) | (n, H, W)
    extra: dict = {"n_data": len(rows)}
    highlight = None
    features_2 = None
    if dim == 3:  # ref is not drawn on images
        _, features, features_2 = names
        frame = pd.DataFrame({
            "data": "median", **common,
            "feature": _categorical(np.repeat(features, len(features_2)), features),
            "feature_2": _categorical(np.tile(features_2, len(features)), features_2),
            "value": np.median(vals, axis=0).reshape(-1),
        })
        extra["title_suffix"] = f"median over {len(rows)} sample(s)"
    else:
        features = names[-1]
        data_names = [_data_name(r) for r in rows]
        n, p = vals.shape
        frame = pd.DataFrame({
            "data": _categorical(np.repeat(data_names, p), data_names), **common,
            "feature": _categorical(np.tile(features, n), features),
            "value": vals.reshape(-1),
        })
        if kind == "beeswarm":  # shap's order: most important feature on top
            frame["feature_value"] = _inputs_cf(attr, i, rows).reshape(-1)
            order = np.argsort(-np.nanmean(np.abs(vals), axis=0), kind="stable")
            features = [features[j] for j in order]
        if ref is not None:
            highlight = pd.DataFrame({
                "data": _data_name(ref),
                "feature": _categorical(names[-1], names[-1]),
                "value": reduce([ref])[0],
            })
    return Panel(
        kind=kind, frame=frame, row=None, col=None, title="", input_index=i,
        input_dimension=dim, features=features, features_2=features_2, scale_group=i,
        scope="global", value_label=_value_label(pre), highlight=highlight,
        highlight_label=None if highlight is None else _data_name(ref), extra=extra,
    )


# ---------------------------------------------------------------------- shared helpers
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
