"""Panels of :func:`~sknn_explain.plotting.plot_global`: distributions over samples."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from ._access import (
    base_frame,
    categorical,
    data_name,
    dimension,
    inputs_cf,
    values_cf,
    with_input_space,
)
from ._checks import (
    aggregate,
    apply_elementwise,
    check_data_idx,
    check_flag,
    check_input_idx,
    check_max_display,
    is_int,
    resolve_aggregation,
    resolve_preprocess,
    validate_kind_for_inputs,
)
from ._outputs import select_outputs
from ._panel import OutputNode, Panel
from ._result import AttributionLike, check_attribution


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
    """Panels of :func:`sknn_explain.plotting.plot_global` (one per output x input).

    Parameters
    ----------
    attr : Attribution
        The result of ``Explainer.explain``.
    output_idx, output_label, data_idx, ref_data_idx, preprocess, kind
        As for :func:`~sknn_explain.plotting.plot_global`.
    aggr_channels, same_scale, input_idx, max_display, sort, robust, output_names
        As for :func:`~sknn_explain.plotting.plot_global`.

    Returns
    -------
    list of Panel
        What to draw, in grid order; ``plot_*`` renders them with matplotlib or plotly.

    Examples
    --------
    >>> import numpy as np, pandas as pd, torch
    >>> from sknn_explain import Gradient
    >>> X = pd.DataFrame(np.random.default_rng(0).normal(size=(30, 3)), columns=list("abc"))
    >>> res = Gradient(times_input=True).fit(torch.nn.Linear(3, 2), X).explain(X)
    >>> from sknn_explain.plotting import global_panels
    >>> [(p.kind, p.scope, len(p.frame)) for p in global_panels(res, kind="violin")]
    [('violin', 'global', 90), ('violin', 'global', 90)]
    """
    attr = check_attribution(attr)
    outs = select_outputs(attr, output_idx, output_label, output_names)
    rows = check_data_idx(data_idx, attr.n_samples, allow_all=True)
    if ref_data_idx is not None:
        if not is_int(ref_data_idx):
            raise TypeError(f"ref_data_idx must be None or an int, got {ref_data_idx!r}")
        check_data_idx(ref_data_idx, attr.n_samples, allow_all=False)
        ref_data_idx = int(ref_data_idx)
    inputs = check_input_idx(input_idx, attr.n_inputs)
    for flag, val in (("same_scale", same_scale), ("sort", sort), ("robust", robust)):
        check_flag(flag, val)
    if kind is not None and not isinstance(kind, str):
        raise TypeError(f"kind must be a str or None, got {kind!r}")
    max_display = check_max_display(max_display)
    dims = {i: dimension(attr, i) for i in inputs}
    validate_kind_for_inputs(kind, dims)
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
    return with_input_space(panels, attr)


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
    attr: AttributionLike, out: OutputNode, i: int, rows: list[int], ref: int | None,
    pre: Callable | None, kind: str, aggr: Callable, aggr_name: object,
    max_display: int | None, sort: bool, robust: bool,
) -> Panel:
    """The summary panel of output ``out`` and input ``i`` over samples ``rows``."""
    names = [[str(f) for f in axis] for axis in attr.input_names[i]]
    dim = len(names)
    common = base_frame(out, i)

    def reduce(rows_: list[int]) -> np.ndarray:
        v = values_cf(attr, out, i, rows_)
        if dim >= 2:
            v = aggregate(v, aggr, aggr_name)
        return apply_elementwise(pre, v)

    vals = reduce(rows)  # (n, p) | (n, L) | (n, H, W)
    extra: dict = {"n_data": len(rows)}
    highlight = None
    features_2 = None
    if dim == 3:  # ref is not drawn on images
        _, features, features_2 = names
        frame = pd.DataFrame({
            "data": "median", **common,
            "feature": categorical(np.repeat(features, len(features_2)), features),
            "feature_2": categorical(np.tile(features_2, len(features)), features_2),
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
        data_names = [data_name(r) for r in rows]
        n, p = vals.shape
        frame = pd.DataFrame({
            "data": categorical(np.repeat(data_names, p), data_names), **common,
            "feature": categorical(np.tile(features, n), features),
            "value": vals.reshape(-1),
        })
        if kind == "beeswarm":
            frame["feature_value"] = inputs_cf(attr, i, rows)[:, cols].reshape(-1)
        ref_vals = None
        if ref is not None:
            ref_vals = reduce([ref])[0][cols]
            highlight = pd.DataFrame({
                "data": data_name(ref),
                "feature": categorical(features, features),
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
        highlight_label=None if highlight is None else data_name(ref), extra=extra,
    )
