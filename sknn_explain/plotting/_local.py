"""Panels of :func:`~sknn_explain.plotting.plot_local`: one sample at a time."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from ._access import (
    base_frame,
    categorical,
    data_name,
    dimension,
    fmt_number,
    fmt_value,
    image_display,
    inputs_cf,
    values_cf,
    with_input_space,
)
from ._checks import (
    aggregate,
    check_data_idx,
    check_flag,
    check_input_idx,
    check_max_display,
    resolve_aggregation,
)
from ._outputs import select_outputs
from ._panel import DIM_NAMES, LOCAL_KINDS, SHOW_INPUT, SIGNS, OutputNode, Panel
from ._result import AttributionLike, check_attribution, goals_of, predictions_of, sums_of


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

    Parameters
    ----------
    attr : Attribution
        The result of ``Explainer.explain``.
    data_idx, output_idx, output_label, aggr_channels, same_scale, show_preds
        As for :func:`~sknn_explain.plotting.plot_local`.
    show_input, input_idx, kind, max_display, sort, output_names
        As for :func:`~sknn_explain.plotting.plot_local`.
    beside_ok : bool, default=True
        Whether an image may get its own panel beside the heatmap; False (drawing into a
        single given Axes): ``show_input=None`` draws no image panel.

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
    >>> from sknn_explain.plotting import local_panels
    >>> [(p.kind, p.row, p.col) for p in local_panels(res, data_idx=[0, 1])][:2]
    [('bars', 'sample 0', 'output 0'), ('bars', 'sample 0', 'output 1')]
    """
    attr = check_attribution(attr)
    rows = check_data_idx(data_idx, attr.n_samples, allow_all=False)
    outs = select_outputs(attr, output_idx, output_label, output_names)
    inputs = check_input_idx(input_idx, attr.n_inputs)
    for flag, val in (("same_scale", same_scale), ("show_preds", show_preds), ("sort", sort)):
        check_flag(flag, val)
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
        if aggr is None and dimension(attr, i) == 3 and len(attr.input_names[i][0]) > 1:
            raise ValueError(
                f"aggr_channels=None draws one line per channel and only works for signals; "
                f"input {i + 1} is an image with {len(attr.input_names[i][0])} channels: use "
                f"'sum', 'mean', 'norm' or a callable"
            )
        if kind == "waterfall" and dimension(attr, i) != 1:
            raise ValueError(
                f"kind='waterfall' needs tabular inputs, but input {i + 1} is "
                f"{DIM_NAMES[dimension(attr, i)]}; use input_idx= to select the tabular ones"
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
                note = f"pred: {fmt_number(pred)} | sum: {fmt_number(dsum)}"
                if goals is not None:
                    note += f" | goal: {fmt_number(goal)}"
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
    return with_input_space(panels, attr)


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
    attr: AttributionLike, out: OutputNode, i: int, d: int, aggr: Callable | None,
    aggr_name: object, show_input: object, kind: object, max_display: int | None, sort: bool,
) -> Panel:
    """The panel of sample ``d``, output ``out``, input ``i`` (grid position set by caller)."""
    names = [[str(f) for f in axis] for axis in attr.input_names[i]]
    dim = len(names)
    v = values_cf(attr, out, i, [d])[0]  # (*shape)
    want_input = show_input is not False and (dim == 1 or show_input is not None or dim == 3)
    x = inputs_cf(attr, i, [d])[0] if want_input else None
    common = {"data": data_name(d), **base_frame(out, i)}
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
        frame = pd.DataFrame({**common, "feature": categorical(features, features),
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
                "feature": categorical(np.tile(features, len(channels)), features),
                "channel": categorical(np.repeat(channels, n_pos), channels),
                "position": np.tile(np.arange(n_pos), len(channels)),
                "value": v.reshape(-1),
            })
        else:
            panel_kind = "signal_bars"
            frame = pd.DataFrame({
                **common,
                "feature": categorical(features, features),
                "position": np.arange(n_pos),
                "value": aggregate(v[None], aggr, aggr_name)[0],
            })
        extra["channels"] = channels
    else:
        panel_kind = "heatmap"
        _, features, features_2 = names
        img = v[0] if aggr is None else aggregate(v[None], aggr, aggr_name)[0]
        frame = pd.DataFrame({
            **common,
            "feature": categorical(np.repeat(features, len(features_2)), features),
            "feature_2": categorical(np.tile(features_2, len(features)), features_2),
            "value": img.reshape(-1),
        })
        background = image_display(x) if x is not None else None
    if panel_kind in ("bars", "signal_bars", "waterfall"):
        frame["sign"] = categorical(_signs(frame["value"].to_numpy()), SIGNS)
    return Panel(
        kind=panel_kind, frame=frame, row=None, col=None, title="", input_index=i,
        input_dimension=dim, features=features, features_2=features_2, scale_group=i,
        background=background, extra=extra,
    )


def waterfall_base(attr: AttributionLike, out: OutputNode, d: int) -> tuple[float, str]:
    """Start of a waterfall: ``pred - goal`` (e.g. E[f(X_ref)]), else ``pred - sum``."""
    pred = float(predictions_of(attr)[out.pos][d, out.k])
    goals = goals_of(attr)
    if goals is not None:
        return pred - float(goals[out.pos][d, out.k]), "base = pred - goal"
    total = float(sums_of(attr)[out.pos][d, out.k])
    return pred - total, "base = pred - sum (no goal)"


def _waterfall_limits(attr: AttributionLike, out: OutputNode, d: int, values: np.ndarray):
    base, _ = waterfall_base(attr, out, d)
    pred = float(predictions_of(attr)[out.pos][d, out.k])
    ends = base + np.concatenate([[0.0], np.cumsum(values[::-1])])
    pts = np.concatenate([ends, [pred]])
    pts = pts[np.isfinite(pts)]
    return (float(pts.min()), float(pts.max())) if pts.size else (0.0, 0.0)


def _signs(v: np.ndarray) -> np.ndarray:
    return np.where(v > 0, "positive", np.where(v < 0, "negative", "zero"))
