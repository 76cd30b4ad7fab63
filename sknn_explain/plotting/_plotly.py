"""Plotly renderer: the same panels as the seaborn plots, as one interactive figure.

Only imported when ``as_plotly=True`` and plotly is installed. Colour scales are given as
explicit lists (plotly's named ``"RdBu"`` differs between plotly.js and plotly.py), so the
colours match the matplotlib plots: red positive, blue negative.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._access import categories_of, category_codes, fmt_value
from ._layout import beeswarm_offsets, feature_colours, order_of, padded, scales, sym
from ._panel import Panel
from ._style import (
    CATEGORY_COLORS,
    DISTRIBUTION_COLOR,
    HIGHLIGHT_COLOR,
    NEGATIVE_COLOR,
    POSITIVE_COLOR,
    SIGN_PALETTE,
)

__all__ = ["render_plotly"]

DIVERGING_SCALE = [[0.0, NEGATIVE_COLOR], [0.5, "#f7f7f7"], [1.0, POSITIVE_COLOR]]
SEQUENTIAL_SCALE = [[0.0, "#fff5f0"], [1.0, "#67000d"]]
BEESWARM_SCALE = [[0.0, "#3b4cc0"], [0.5, "#dddddd"], [1.0, "#b40426"]]
_PX_PER_INCH = 80


def _category_colours(raw: np.ndarray) -> list[str]:
    """One qualitative colour per category (grey for missing or beyond ten categories)."""
    categories = categories_of(raw) or []
    codes = category_codes(raw, categories)
    many = len(categories) > len(CATEGORY_COLORS)
    return [SIGN_PALETTE["zero"] if many or np.isnan(k) else CATEGORY_COLORS[int(k)]
            for k in codes]


def _title(p: Panel) -> str:
    parts = [p.title]
    if p.extra.get("title_suffix"):
        parts.append(p.extra["title_suffix"])
    elif p.scope == "global":
        parts.append(f"{p.extra['n_data']} sample(s)")
    if p.note:
        parts.append(p.note)
    if p.extra.get("input_space"):
        parts[-1] += f" | {p.extra['input_space']}"
    return "<br>".join(parts)


def _highlight(go, p: Panel, horizontal: bool, positions: Sequence | None = None):
    ref = p.highlight.set_index("feature")["value"].reindex(p.features).to_numpy(float)
    where = list(p.features) if positions is None else list(positions)
    x, y = (ref, where) if horizontal else (where, ref)
    return go.Scatter(
        x=x, y=y, mode="markers", name=p.highlight_label, showlegend=True,
        marker=dict(symbol="diamond", color=HIGHLIGHT_COLOR, size=9,
                    line=dict(color="black", width=1)),
    )


def _panel_traces(go, p: Panel, scale: tuple[float, float], show_scale: bool):
    """Traces of one panel and the updates of its x / y axes."""
    frame = p.frame
    vals = frame["value"].to_numpy(dtype=float)
    xaxis: dict = {}
    yaxis: dict = {}
    traces = []
    if p.kind == "image":
        img = np.asarray(p.background)
        rgb = img if img.ndim == 3 else np.repeat(img[..., None], 3, axis=-1)
        traces.append(go.Image(z=(rgb * 255).astype(np.uint8), name=p.title))
        return traces, dict(showticklabels=False), dict(showticklabels=False)
    if p.kind == "waterfall":
        labels = p.extra.get("feature_labels") or list(p.features)
        base = p.extra["waterfall_base"]
        traces.append(go.Waterfall(
            orientation="h", y=["base", *labels[::-1]], x=[base, *vals[::-1]],
            measure=["absolute", *["relative"] * len(vals)], name=p.title, showlegend=False,
            increasing=dict(marker=dict(color=POSITIVE_COLOR)),
            decreasing=dict(marker=dict(color=NEGATIVE_COLOR)),
        ))
        return traces, dict(title_text="output"), {}
    if p.kind == "dependence":
        colour = frame["color_value"].to_numpy() if "color_value" in frame else None
        marker: dict = dict(size=6)
        if colour is not None and categories_of(colour) is not None:
            marker.update(color=_category_colours(colour))
        elif colour is not None:
            marker.update(color=np.nan_to_num(feature_colours(colour.astype(float)), nan=0.5),
                          colorscale=BEESWARM_SCALE, cmin=0.0, cmax=1.0, showscale=show_scale,
                          colorbar=dict(title=dict(text=p.extra["color_name"])))
        raw = frame["feature_value"].to_numpy()
        x = raw if categories_of(raw) is not None else raw.astype(float)  # categorical axis
        traces.append(go.Scatter(x=x, y=vals, mode="markers", marker=marker, name=p.title,
                                 showlegend=False))
        return traces, dict(title_text=p.features[0]), dict(title_text=p.value_label)
    if p.kind in ("bars", "signal_bars"):
        colours = [SIGN_PALETTE[s] for s in frame["sign"].astype(str)]
        m = sym(*scale) * 1.08
        if p.kind == "bars":
            labels = p.extra.get("feature_labels") or list(p.features)
            traces.append(go.Bar(x=vals, y=labels, orientation="h", marker_color=colours,
                                 name=p.title, showlegend=False))
            xaxis = dict(range=[-m, m], zeroline=True, zerolinecolor="black",
                         title_text=p.value_label)
            yaxis = dict(autorange="reversed", categoryorder="array", categoryarray=labels)
        else:
            traces.append(go.Bar(x=list(p.features), y=vals, marker_color=colours,
                                 name=p.title, showlegend=False))
            yaxis = dict(range=[-m, m], zeroline=True, zerolinecolor="black",
                         title_text=p.value_label)
    elif p.kind == "signal_lines":
        m = sym(*scale) * 1.08
        for ch, sub in frame.groupby("channel", observed=True, sort=False):
            traces.append(go.Scatter(x=list(p.features), y=sub["value"].to_numpy(float),
                                     mode="lines", name=str(ch)))
        yaxis = dict(range=[-m, m], zeroline=True, zerolinecolor="black",
                     title_text=p.value_label)
    elif p.kind == "heatmap":
        lo, hi = scale
        z = vals.reshape(len(p.features), len(p.features_2))
        if lo >= 0 and p.scope == "global":
            colour = dict(colorscale=SEQUENTIAL_SCALE, zmin=0.0, zmax=hi if hi > 0 else 1.0)
        else:
            m = sym(lo, hi)
            colour = dict(colorscale=DIVERGING_SCALE, zmin=-m, zmax=m, zmid=0.0)
        traces.append(go.Heatmap(
            z=z, x=list(p.features_2), y=list(p.features), showscale=show_scale,
            colorbar=dict(title=dict(text=p.value_label)), **colour,
        ))
        yaxis = dict(autorange="reversed")
    elif p.kind == "beeswarm":
        xs, ys, cs, names = [], [], [], []
        for j, feat in enumerate(p.features):
            sub = frame[frame["feature"] == feat]
            v = sub["value"].to_numpy(dtype=float)
            raw = sub["feature_value"].to_numpy()
            if categories_of(raw) is not None:  # categorical: qualitative colours, own trace
                traces.append(go.Scatter(
                    x=v, y=j + beeswarm_offsets(v), mode="markers", showlegend=False,
                    text=[f"{feat} = {fmt_value(r)}" for r in raw],
                    marker=dict(color=_category_colours(raw), size=5)))
                continue
            xs.append(v)
            ys.append(j + beeswarm_offsets(v))
            cs.append(feature_colours(raw.astype(float)))
            names += [feat] * len(v)
        c = np.nan_to_num(np.concatenate(cs), nan=0.5) if cs else np.zeros(0)
        traces.append(go.Scatter(
            x=np.concatenate(xs), y=np.concatenate(ys), mode="markers", text=names,
            name=p.title, showlegend=False,
            marker=dict(color=c, colorscale=BEESWARM_SCALE, cmin=0.0, cmax=1.0, size=5,
                        showscale=show_scale,
                        colorbar=dict(title=dict(text="feature value"), tickvals=[0, 1],
                                      ticktext=["Low", "High"])),
        ))
        if p.highlight is not None:
            traces.append(_highlight(go, p, True, positions=np.arange(len(p.features))))
        xaxis = dict(range=list(padded(*scale)), zeroline=True, zerolinecolor="black",
                     title_text=p.value_label)
        yaxis = dict(tickvals=list(range(len(p.features))), ticktext=list(p.features),
                     autorange="reversed")
    else:  # box / violin / strip / bar
        horizontal = p.input_dimension == 1
        feats = frame["feature"].astype(str).to_numpy()
        xy = dict(x=vals, y=feats, orientation="h") if horizontal else dict(
            x=feats, y=vals, orientation="v")
        if p.kind == "box":
            traces.append(go.Box(**xy, name=p.title, showlegend=False,
                                 marker_color=DISTRIBUTION_COLOR, boxpoints="outliers"))
        elif p.kind == "violin":
            traces.append(go.Violin(**xy, name=p.title, showlegend=False,
                                    fillcolor=DISTRIBUTION_COLOR, line_color="#4d4d4d",
                                    points=False, spanmode="hard"))
        elif p.kind == "strip":
            traces.append(go.Box(**xy, name=p.title, showlegend=False, boxpoints="all",
                                 jitter=0.5, pointpos=0, fillcolor="rgba(0,0,0,0)",
                                 line_color="rgba(0,0,0,0)",
                                 marker=dict(color=DISTRIBUTION_COLOR, size=4)))
        else:
            means, se = p.extra["bar_mean"], p.extra["bar_se"]
            if horizontal:
                traces.append(go.Bar(x=means, y=list(p.features), orientation="h",
                                     error_x=dict(type="data", array=se),
                                     marker_color=DISTRIBUTION_COLOR, name=p.title,
                                     showlegend=False))
            else:
                traces.append(go.Bar(x=list(p.features), y=means,
                                     error_y=dict(type="data", array=se),
                                     marker_color=DISTRIBUTION_COLOR, name=p.title,
                                     showlegend=False))
        if p.highlight is not None:
            traces.append(_highlight(go, p, horizontal))
        value_axis = dict(range=list(padded(*scale)), title_text=p.value_label)
        if horizontal:
            xaxis, yaxis = value_axis, dict(autorange="reversed", categoryorder="array",
                                            categoryarray=list(p.features))
        else:
            yaxis = value_axis
    return traces, xaxis, yaxis


def render_plotly(panels: Sequence[Panel], *, height: float | None = None,
                  aspect: float | None = None):
    """One :class:`plotly.graph_objects.Figure` with a subplot per panel."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    for name, val in (("height", height), ("aspect", aspect)):
        if val is not None and (isinstance(val, bool) or not isinstance(val, (int, float))
                                or not val > 0):
            raise ValueError(f"{name} must be a positive number or None, got {val!r}")
    rows = order_of(p.row for p in panels)
    cols = order_of(p.col for p in panels)
    titles = [""] * (len(rows) * len(cols))
    where = []
    for p in panels:
        r, c = rows.index(p.row), cols.index(p.col)
        titles[r * len(cols) + c] = _title(p)
        where.append((r + 1, c + 1))
    fig = make_subplots(
        rows=len(rows), cols=len(cols), subplot_titles=titles,
        horizontal_spacing=min(0.15, 0.6 / max(len(cols), 1)),
        vertical_spacing=min(0.15, 0.6 / max(len(rows), 1)),
    )
    group_scales = scales(panels)
    scale_shown: set[tuple[str, int]] = set()
    for p, (r, c) in zip(panels, where):
        key = (p.kind, p.scale_group)
        traces, xaxis, yaxis = _panel_traces(
            go, p, group_scales[p.scale_group], show_scale=key not in scale_shown
        )
        scale_shown.add(key)
        for t in traces:
            fig.add_trace(t, row=r, col=c)
        if xaxis:
            fig.update_xaxes(row=r, col=c, **xaxis)
        if yaxis:
            fig.update_yaxes(row=r, col=c, **yaxis)
    h = float(height) if height is not None else 3.6
    w = h * (float(aspect) if aspect is not None else 1.4)
    fig.update_layout(
        height=int(h * _PX_PER_INCH * len(rows)), width=int(w * _PX_PER_INCH * len(cols)),
        template="simple_white", legend=dict(orientation="h"),
    )
    return fig
