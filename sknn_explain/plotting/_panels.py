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

from ._result import (
    AttributionLike,
    check_attribution,
    goals_of,
    inputs_of,
    predictions_of,
    sums_of,
)

__all__ = ["Panel", "dependence_panels", "global_panels", "local_panels"]

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
        """Finite (min, max) of the values this panel draws ((0, 0) when none).

        Panels with ``extra["limits"]`` (robust limits of distributions, the bar ends of
        mean +- standard error, the running sums of a waterfall) report those instead.
        """
        if "limits" in self.extra:
            return self.extra["limits"]
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
    label: str  # display label: "output 3", "benign (output 1)", "output 2 of layer 1"
    index: int = 0  # 0-based node index in its output layer


# ---------------------------------------------------------------------- argument checks
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


def _is_default_name(node: str, layer: int, i: int, multi: bool) -> bool:
    """Whether ``node`` is the generated name ``Y{i+1}`` / ``Y{layer+1}_{i+1}``."""
    return node == (f"Y{layer + 1}_{i + 1}" if multi else f"Y{i + 1}")


def check_output_names(output_names: object) -> object:
    if output_names is None or isinstance(output_names, dict):
        return output_names
    if isinstance(output_names, (str, bytes)) or not hasattr(output_names, "__len__"):
        raise TypeError(
            f"output_names must be None, a dict {{output index or node name: display name}} "
            f"or a sequence of display names indexed by the 0-based output index, got "
            f"{output_names!r}"
        )
    return list(output_names)


def _display_name(output_names: object, node: str, layer: int, i: int) -> str | None:
    if output_names is None:
        return None
    if isinstance(output_names, dict):
        for key in ((layer, i), i, node):
            if key in output_names:
                return str(output_names[key])
        return None
    names = output_names
    if names and isinstance(names[0], (list, tuple, np.ndarray)):  # per output layer
        names = names[layer] if layer < len(names) else []
    elif layer != 0:
        return None
    if node.lstrip("-").isdigit():  # integer class labels (e.g. a binary sklearn MLP's
        i = int(node)  # single output "1"): names like target_names are indexed by label
    if not 0 <= i < len(names):
        raise ValueError(
            f"output_names has {len(names)} name(s), but output node {node!r} (index {i}) is "
            f"plotted (names are indexed by the integer class label, else by the 0-based "
            f"output index)"
        )
    return str(names[i])


def output_text(node: str, layer: int, i: int, multi: bool, output_names: object = None,
                space: str | None = None) -> str:
    """Title text of an output node, 0-based like ``output_idx``.

    ``output 3`` (generated names ``Y4``), ``benign (output 1)`` (class labels or
    ``output_names``), ``output 2 of layer 1`` (several output layers); the output space
    (``logit`` / ``probability``) is appended when known.
    """
    where = f"output {i}" + (f" of layer {layer}" if multi else "")
    name = _display_name(output_names, node, layer, i)
    if name is None and not _is_default_name(node, layer, i, multi):
        name = node
    if name is None:
        return where + (f" ({space})" if space else "")
    return f"{name} ({where}" + (f", {space})" if space else ")")


def select_outputs(attr: AttributionLike, output_idx: object, output_label: object,
                   output_names: object = None) -> list[_Output]:
    """Resolve ``output_idx`` / ``output_label`` among the output nodes the result holds.

    Semantics as in ``explain`` (0-based model indices, an int / list for the first output
    layer, a list of lists per output layer); default: every computed node.
    """
    multi = len(attr.output_layers) > 1
    output_names = check_output_names(output_names)
    space = getattr(attr, "output_space", None)
    computed: dict[int, list[tuple[int, int, str]]] = {}
    for layer, idx, names in zip(attr.output_layers, attr.output_idx, attr.output_names):
        computed[int(layer)] = [(int(i), k, str(nm)) for k, (i, nm) in enumerate(zip(idx, names))]

    def make(layer: int, k_entry: tuple[int, int, str]) -> _Output:
        i, k, node = k_entry
        pos = attr.output_layers.index(layer)
        label = output_text(node, layer, i, multi, output_names,
                            space if layer == attr.output_layers[0] else None)
        return _Output(pos=pos, k=k, layer=layer, node=node, label=label, index=i)

    def describe() -> str:
        return "; ".join(
            f"output layer {layer + 1}: {[i for i, _, _ in entries]} ({[n for _, _, n in entries]})"
            for layer, entries in computed.items()
        )

    if output_idx is not None and output_label is not None:
        raise ValueError("give either output_idx or output_label, not both")
    if output_idx is None and output_label is None:
        return [make(layer, entry) for layer, entries in computed.items() for entry in entries]
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
def _values_cf(attr: AttributionLike, out: _Output, input_i: int, rows: list[int]) -> np.ndarray:
    """Attributions of ``rows`` for one output node, model layout ``(n, *shape)``."""
    v = attr.raw_values[out.pos][input_i][rows, ..., out.k]
    if not attr.channels_first and v.ndim >= 3:
        v = np.moveaxis(v, -1, 1)
    return np.asarray(v, dtype=float)


def _inputs_cf(attr: AttributionLike, input_i: int, rows: list[int]) -> np.ndarray:
    """The inputs of ``rows`` channels-first; float, or object for raw categorical columns."""
    x = np.asarray(inputs_of(attr)[input_i][rows])
    if x.dtype.kind in "biuf":
        x = x.astype(float)
    elif x.ndim != 2:
        x = x.astype(float)
    if not attr.channels_first and x.ndim >= 3:
        x = np.moveaxis(x, -1, 1)
    return x


def _dimension(attr: AttributionLike, input_i: int) -> int:
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


def _data_name(i: int) -> str:
    return f"data_{i + 1}"


def _fmt(v: float) -> str:
    return "nan" if not np.isfinite(v) else f"{v:.3g}"


def fmt_value(v: object) -> str:
    """A feature value for a label: numbers as ``3.1``, categories as they are (``Biscoe``)."""
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA or v is pd.NaT:
        return "nan"
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, float, np.integer, np.floating)):
        return _fmt(float(v))
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
LOCAL_KINDS = ("bar", "waterfall")
SHOW_INPUT = (None, True, False, "overlay", "beside")


def check_max_display(max_display: object) -> int | None:
    if max_display is None:
        return None
    if not _is_int(max_display) or int(max_display) < 1:
        raise ValueError(f"max_display must be a positive int or None, got {max_display!r}")
    return int(max_display)


def _check_flag(name: str, val: object) -> None:
    if not isinstance(val, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {val!r}")


def input_space_text(attr: AttributionLike) -> str | None:
    """Which inputs a pipeline's attributions refer to (None for plain networks)."""
    space = getattr(attr, "input_space", None)
    return None if space is None else f"{space} inputs"


def _with_input_space(panels: list, attr: AttributionLike) -> list:
    text = input_space_text(attr)
    if text is not None:
        for panel in panels:
            panel.extra["input_space"] = text
    return panels


def local_panels(
    attr: AttributionLike,
    data_idx: object = 0,
    output_idx: object = None,
    output_label: object = None,
    aggr_channels: object = "sum",
    same_scale: bool = False,
    show_preds: bool = True,
    show_input: object = None,
    input_idx: object = None,
    kind: object = None,
    max_display: object = 20,
    sort: bool = True,
    output_names: object = None,
    beside_ok: bool = True,
) -> list[Panel]:
    """Panels of :func:`sknn_explain.plotting.plot_local` (one per sample x output x input).

    ``beside_ok=False`` (a single given Axes): ``show_input=None`` draws no image panel.
    """
    attr = check_attribution(attr)
    rows = check_data_idx(data_idx, attr.n_samples, allow_all=False)
    outs = select_outputs(attr, output_idx, output_label, output_names)
    inputs = check_input_idx(input_idx, attr.n_inputs)
    for flag, val in (("same_scale", same_scale), ("show_preds", show_preds), ("sort", sort)):
        _check_flag(flag, val)
    if not any(show_input is v or (isinstance(v, str) and show_input == v) for v in SHOW_INPUT):
        raise ValueError(
            f"show_input must be None (auto), True, False, 'overlay' or 'beside', got "
            f"{show_input!r}"
        )
    if kind is not None and kind not in LOCAL_KINDS:
        raise ValueError(f"unknown kind {kind!r} for plot_local; use 'bar', 'waterfall' or None")
    max_display = check_max_display(max_display)
    aggr = resolve_aggregation(aggr_channels, allow_none=True)
    for i in inputs:
        if aggr is None and _dimension(attr, i) == 3 and len(attr.input_names[i][0]) > 1:
            raise ValueError(
                f"aggr_channels=None draws one line per channel and only works for signals; "
                f"input {i + 1} is an image with {len(attr.input_names[i][0])} channels: use "
                f"'sum', 'mean', 'norm' or a callable"
            )
        if kind == "waterfall" and _dimension(attr, i) != 1:
            raise ValueError(
                f"kind='waterfall' needs tabular inputs, but input {i + 1} is "
                f"{_DIM_NAMES[_dimension(attr, i)]}; use input_idx= to select the tabular ones"
            )
    multi_in = len(inputs) > 1
    preds = predictions_of(attr)
    goals = goals_of(attr)
    sums = sums_of(attr)

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
            label = f"sample {d} · {out.label}"
            for col_pos, i in enumerate(inputs):
                col = f"input {i}" if multi_in else out.label
                row = label if multi_in else f"sample {d}"
                panel = _local_panel(attr, out, i, d, aggr, aggr_channels, show_input, kind,
                                     max_display, sort)
                panel.extra.update(pred=pred, decomp_sum=dsum, decomp_goal=goal)
                panel.title = f"{attr.method} · {label}" + (f" · input {i}" if multi_in else "")
                panel.row, panel.col = row, col
                panel.scale_group = 0 if same_scale else i
                # prediction / sum / goal belong to the sample x output: once per grid row
                panel.note = note if (col_pos == 0 or not multi_in) else None
                if panel.background is not None and _shows_beside(show_input, panel):
                    image = _image_panel(panel, d, i, multi_in)
                    if (beside_ok or show_input == "beside") and (image.row, image.col) not in {
                            (q.row, q.col) for q in panels}:
                        panels.append(image)
                    panel.background = None
                panels.append(panel)
    return _with_input_space(panels, attr)


def _shows_beside(show_input: object, p: Panel) -> bool:
    return p.kind == "heatmap" and (show_input is None or show_input == "beside")


def _image_panel(p: Panel, d: int, i: int, multi_in: bool) -> Panel:
    """The input image next to its heatmaps (``show_input="beside"``)."""
    return Panel(
        kind="image", frame=p.frame.iloc[:0], row=p.row,
        col=f"input {i} (data)" if multi_in else "input", title=f"sample {d} · input",
        input_index=i, input_dimension=3, features=p.features, features_2=p.features_2,
        scale_group=-1 - i, background=p.background, extra={"limits": (0.0, 0.0)},
    )


def _top_features(v: np.ndarray, names: list[str], max_display: int | None, sort: bool):
    """Order (by |v| when ``sort``) and the number of trailing features summed as "others"."""
    order = np.argsort(-np.abs(np.nan_to_num(v)), kind="stable") if sort else np.arange(len(v))
    if max_display is None or len(v) <= max_display:
        return order, np.array([], dtype=int)
    keep = max_display - 1  # the last row sums the rest, as shap
    return order[:keep], order[keep:]


def _local_panel(
    attr: AttributionLike, out: _Output, i: int, d: int, aggr: Callable | None,
    aggr_name: object, show_input: object, kind: object, max_display: int | None, sort: bool,
) -> Panel:
    """The panel of sample ``d``, output ``out``, input ``i`` (grid position set by caller)."""
    names = [[str(f) for f in axis] for axis in attr.input_names[i]]
    dim = len(names)
    v = _values_cf(attr, out, i, [d])[0]  # (*shape)
    want_input = show_input is not False and (dim == 1 or show_input is not None or dim == 3)
    x = _inputs_cf(attr, i, [d])[0] if want_input else None
    common = {"data": _data_name(d), **_base_frame(out, i)}
    extra: dict = {}
    background = None
    features_2 = None
    if dim == 1:
        panel_kind = "waterfall" if kind == "waterfall" else "bars"
        keep, rest = _top_features(v, names[0], max_display, sort)
        features = [names[0][j] for j in keep]
        values = list(v[keep])
        labels = ([f"{names[0][j]} = {fmt_value(x[j])}" for j in keep] if x is not None
                  else list(features))
        if rest.size:
            other = f"{rest.size} other features"
            features.append(other)
            labels.append(other)
            values.append(float(np.sum(v[rest])))
        frame = pd.DataFrame({**common, "feature": _categorical(features, features),
                              "value": np.asarray(values, dtype=float)})
        extra["feature_labels"] = labels
        if panel_kind == "waterfall":
            extra["limits"] = _waterfall_limits(attr, out, d, np.asarray(values, dtype=float))
            extra["waterfall_base"], extra["waterfall_note"] = waterfall_base(attr, out, d)
    elif dim == 2:
        channels, features = names
        n_pos = len(features)
        background = x
        if aggr is None:  # one line per channel
            panel_kind = "signal_lines"
            frame = pd.DataFrame({
                **common,
                "feature": _categorical(np.tile(features, len(channels)), features),
                "channel": _categorical(np.repeat(channels, n_pos), channels),
                "position": np.tile(np.arange(n_pos), len(channels)),
                "value": v.reshape(-1),
            })
        else:
            panel_kind = "signal_bars"
            frame = pd.DataFrame({
                **common,
                "feature": _categorical(features, features),
                "position": np.arange(n_pos),
                "value": _aggregate(v[None], aggr, aggr_name)[0],
            })
        extra["channels"] = channels
    else:
        panel_kind = "heatmap"
        _, features, features_2 = names
        img = v[0] if aggr is None else _aggregate(v[None], aggr, aggr_name)[0]
        frame = pd.DataFrame({
            **common,
            "feature": _categorical(np.repeat(features, len(features_2)), features),
            "feature_2": _categorical(np.tile(features_2, len(features)), features_2),
            "value": img.reshape(-1),
        })
        background = image_display(x) if x is not None else None
    if panel_kind in ("bars", "signal_bars", "waterfall"):
        frame["sign"] = _categorical(_signs(frame["value"].to_numpy()), SIGNS)
    return Panel(
        kind=panel_kind, frame=frame, row=None, col=None, title="", input_index=i,
        input_dimension=dim, features=features, features_2=features_2, scale_group=i,
        background=background, extra=extra,
    )


def waterfall_base(attr: AttributionLike, out: _Output, d: int) -> tuple[float, str]:
    """Start of a waterfall: ``pred - goal`` (e.g. E[f(X_ref)]), else ``pred - sum``."""
    pred = float(predictions_of(attr)[out.pos][d, out.k])
    goals = goals_of(attr)
    if goals is not None:
        return pred - float(goals[out.pos][d, out.k]), "base = pred - goal"
    total = float(sums_of(attr)[out.pos][d, out.k])
    return pred - total, "base = pred - sum (no goal)"


def _waterfall_limits(attr: AttributionLike, out: _Output, d: int, values: np.ndarray):
    base, _ = waterfall_base(attr, out, d)
    pred = float(predictions_of(attr)[out.pos][d, out.k])
    ends = base + np.concatenate([[0.0], np.cumsum(values[::-1])])
    pts = np.concatenate([ends, [pred]])
    pts = pts[np.isfinite(pts)]
    return (float(pts.min()), float(pts.max())) if pts.size else (0.0, 0.0)


SIGNS = ("positive", "negative", "zero")


def _signs(v: np.ndarray) -> np.ndarray:
    return np.where(v > 0, "positive", np.where(v < 0, "negative", "zero"))


# ---------------------------------------------------------------------- global panels
def global_panels(
    attr: AttributionLike,
    output_idx: object = None,
    output_label: object = None,
    data_idx: object = "all",
    ref_data_idx: object = None,
    preprocess: object = "auto",
    kind: str | None = None,
    aggr_channels: object = "sum",
    same_scale: bool = False,
    input_idx: object = None,
    max_display: object = 20,
    sort: bool = True,
    robust: bool = True,
    output_names: object = None,
) -> list[Panel]:
    """Panels of :func:`sknn_explain.plotting.plot_global` (one per output x input)."""
    attr = check_attribution(attr)
    outs = select_outputs(attr, output_idx, output_label, output_names)
    rows = check_data_idx(data_idx, attr.n_samples, allow_all=True)
    if ref_data_idx is not None:
        if not _is_int(ref_data_idx):
            raise TypeError(f"ref_data_idx must be None or an int, got {ref_data_idx!r}")
        check_data_idx(ref_data_idx, attr.n_samples, allow_all=False)
        ref_data_idx = int(ref_data_idx)
    inputs = check_input_idx(input_idx, attr.n_inputs)
    for flag, val in (("same_scale", same_scale), ("sort", sort), ("robust", robust)):
        _check_flag(flag, val)
    if kind is not None and not isinstance(kind, str):
        raise TypeError(f"kind must be a str or None, got {kind!r}")
    max_display = check_max_display(max_display)
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
                                  aggr_channels, max_display, sort, robust)
            panel.title = f"{attr.method} · {out.label}" + (f" · input {i}" if multi_in else "")
            panel.row = out.label if multi_in else None
            panel.col = f"input {i}" if multi_in else out.label
            panel.scale_group = 0 if same_scale else i
            panels.append(panel)
    return _with_input_space(panels, attr)


def _value_label(pre: Callable | None) -> str:
    if pre is None:
        return "attribution"
    if pre is np.abs or pre is abs:
        return "|attribution|"
    name = getattr(pre, "__name__", "")
    return f"{name}(attribution)" if name.isidentifier() else "preprocess(attribution)"


def robust_limits(vals: np.ndarray, extra: np.ndarray | None = None) -> tuple[float, float]:
    """Axis limits of ``(n, p)`` values that outliers do not squash.

    Per column (feature / position), values beyond Tukey's far-out fences (quartiles -+ 3
    IQR) are outliers; the limits span every column's non-outlying range (and ``extra``,
    e.g. the highlighted sample, when it is within the fences too). Outliers are drawn
    clipped at the limits and marked.
    """
    lo, hi = np.inf, -np.inf
    for col in np.atleast_2d(vals).T:
        col = col[np.isfinite(col)]
        if col.size == 0:
            continue
        q1, q3 = np.percentile(col, [25, 75])
        iqr = q3 - q1
        inside = col[(col >= q1 - 3 * iqr) & (col <= q3 + 3 * iqr)]
        lo, hi = min(lo, inside.min()), max(hi, inside.max())
    if not np.isfinite(lo):
        return 0.0, 0.0
    return float(lo), float(hi)


def _global_panel(
    attr: AttributionLike, out: _Output, i: int, rows: list[int], ref: int | None,
    pre: Callable | None, kind: str, aggr: Callable, aggr_name: object,
    max_display: int | None, sort: bool, robust: bool,
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
        cols = np.arange(vals.shape[1])
        if dim == 1 and sort:  # most important feature on top (shap's order)
            cols = np.argsort(-np.nanmean(np.abs(vals), axis=0), kind="stable")
        if dim == 1 and max_display is not None and len(cols) > max_display:
            extra["title_suffix"] = (f"{len(rows)} sample(s), top {max_display} of "
                                     f"{len(cols)} features")
            cols = cols[:max_display]
        features = [names[-1][j] for j in cols]
        vals = vals[:, cols]
        data_names = [_data_name(r) for r in rows]
        n, p = vals.shape
        frame = pd.DataFrame({
            "data": _categorical(np.repeat(data_names, p), data_names), **common,
            "feature": _categorical(np.tile(features, n), features),
            "value": vals.reshape(-1),
        })
        if kind == "beeswarm":
            frame["feature_value"] = _inputs_cf(attr, i, rows)[:, cols].reshape(-1)
        ref_vals = None
        if ref is not None:
            ref_vals = reduce([ref])[0][cols]
            highlight = pd.DataFrame({
                "data": _data_name(ref),
                "feature": _categorical(features, features),
                "value": ref_vals,
            })
        if kind == "bar":  # limits fitted to the bars (mean +- standard error); ref clipped
            mean = np.nanmean(vals, axis=0)
            se = (np.nanstd(vals, axis=0, ddof=1) / np.sqrt(n)) if n > 1 else np.zeros(p)
            ends = np.concatenate([mean - se, mean + se, [0.0]])
            ends = ends[np.isfinite(ends)]
            extra["bar_mean"], extra["bar_se"] = mean, np.nan_to_num(se)
            extra["limits"] = (float(ends.min()), float(ends.max()))
        elif robust:
            lo, hi = robust_limits(vals)
            if ref_vals is not None:
                r = ref_vals[np.isfinite(ref_vals)]
                inside = r[(r >= lo) & (r <= hi)] if r.size else r
                lo, hi = min([lo, *inside]), max([hi, *inside])
            extra["limits"] = (lo, hi)
    return Panel(
        kind=kind, frame=frame, row=None, col=None, title="", input_index=i,
        input_dimension=dim, features=features, features_2=features_2, scale_group=i,
        scope="global", value_label=_value_label(pre), highlight=highlight,
        highlight_label=None if highlight is None else _data_name(ref), extra=extra,
    )


# ---------------------------------------------------------------------- dependence panels
def dependence_panels(
    attr: AttributionLike,
    feature: object,
    color_by: object = "auto",
    output_idx: object = None,
    output_label: object = None,
    data_idx: object = "all",
    input_idx: object = None,
    output_names: object = None,
) -> list[Panel]:
    """Panels of :func:`sknn_explain.plotting.plot_dependence` (one per output)."""
    attr = check_attribution(attr)
    outs = select_outputs(attr, output_idx, output_label, output_names)
    rows = check_data_idx(data_idx, attr.n_samples, allow_all=True)
    tabular = [i for i in range(attr.n_inputs) if _dimension(attr, i) == 1]
    if input_idx is None:
        if not tabular:
            raise ValueError("plot_dependence needs a tabular input; this result has none")
        i = tabular[0]
    else:
        (i,) = check_input_idx(input_idx if _is_int(input_idx) else input_idx, attr.n_inputs)
        if i not in tabular:
            raise ValueError(f"plot_dependence needs a tabular input; input {i} is "
                             f"{_DIM_NAMES[_dimension(attr, i)]}")
    names = [str(f) for f in attr.input_names[i][0]]

    def column(f: object, what: str) -> int:
        if _is_int(f):
            if not 0 <= int(f) < len(names):
                raise ValueError(f"{what} {f} is out of range: input {i} has {len(names)} "
                                 f"features (valid: 0..{len(names) - 1})")
            return int(f)
        if str(f) not in names:
            raise ValueError(f"unknown {what} {f!r}; features: {names[:10]}"
                             + (" ..." if len(names) > 10 else ""))
        return names.index(str(f))

    j = column(feature, "feature")
    x = _inputs_cf(attr, i, rows)
    panels = []
    for out in outs:
        v = _values_cf(attr, out, i, rows)
        c = None
        if isinstance(color_by, str) and color_by == "auto":
            c = interaction_partner(x, v[:, j], j)
        elif color_by is not None:
            c = column(color_by, "color_by")
        frame = pd.DataFrame({
            "data": [_data_name(r) for r in rows], **_base_frame(out, i),
            "feature": names[j], "feature_value": x[:, j], "value": v[:, j],
        })
        extra: dict = {"n_data": len(rows)}
        if c is not None:
            frame["color_value"] = x[:, c]
            extra["color_name"] = names[c]
        panels.append(Panel(
            kind="dependence", frame=frame, row=None, col=out.label,
            title=f"{attr.method} · {out.label}", input_index=i, input_dimension=1,
            features=[names[j]], scale_group=0, scope="global",
            value_label=f"attribution of {names[j]}", extra=extra,
        ))
    return _with_input_space(panels, attr)


def numeric_view(x: np.ndarray) -> np.ndarray:
    """``(n, p)`` feature values as floats; categorical columns as their category codes."""
    if x.dtype.kind in "biuf":
        return x.astype(float)
    cols = []
    for k in range(x.shape[1]):
        categories = categories_of(x[:, k])
        cols.append(x[:, k].astype(float) if categories is None
                    else category_codes(x[:, k], categories))
    return np.column_stack(cols) if cols else np.zeros(x.shape, dtype=float)


def interaction_partner(x: np.ndarray, attr_j: np.ndarray, j: int) -> int | None:
    """The feature that best explains what the value of feature ``j`` does not (shap-like).

    The attribution of ``j`` is regressed on its own value; the other feature whose value
    correlates most (in absolute value) with the residual colours the dependence plot.
    """
    x = numeric_view(x)
    xj = x[:, j]
    ok = np.isfinite(xj) & np.isfinite(attr_j)
    if ok.sum() < 3 or x.shape[1] < 2:
        return None
    design = np.column_stack([np.ones(ok.sum()), xj[ok]])
    coef, *_ = np.linalg.lstsq(design, attr_j[ok], rcond=None)
    resid = attr_j[ok] - design @ coef
    best, best_r = None, -1.0
    for k in range(x.shape[1]):
        if k == j:
            continue
        xk = x[ok, k]
        if np.nanstd(xk) == 0 or np.std(resid) == 0:
            r = 0.0
        else:
            r = abs(float(np.corrcoef(xk, resid)[0, 1]))
            r = 0.0 if not np.isfinite(r) else r
        if r > best_r:
            best, best_r = k, r
    return best


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
