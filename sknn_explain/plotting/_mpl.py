"""Matplotlib / seaborn renderer: draws :class:`~._panels.Panel` objects into a FacetGrid."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize

from ._access import categories_of, category_codes
from ._layout import beeswarm_offsets, feature_colours, order_of, padded, scales, sym, thin_ticks
from ._panel import SIGNS, Panel
from ._style import (
    BEESWARM_CMAP,
    CATEGORY_COLORS,
    DISTRIBUTION_COLOR,
    DIVERGING_CMAP,
    HIGHLIGHT_COLOR,
    SEQUENTIAL_CMAP,
    SIGN_PALETTE,
    ZERO_COLOR,
)

__all__ = ["draw_panel", "render"]


# ---------------------------------------------------------------------- panel drawers
#: what a panel asks of the figure's colour bars: (key, mappable, label, ticks, tick labels)
ColourBar = tuple


def _draw_bars(ax: Axes, p: Panel, scale: tuple[float, float]) -> None:
    sns.barplot(
        data=p.frame, x="value", y="feature", hue="sign", order=p.features, hue_order=SIGNS,
        palette=SIGN_PALETTE, dodge=False, legend=False, errorbar=None, saturation=1,
        orient="h", ax=ax,
    )
    m = sym(*scale) * 1.08
    ax.set_xlim(-m, m)
    ax.axvline(0, color="black", linewidth=0.8)
    labels = p.extra.get("feature_labels")
    ax.set_yticks(np.arange(len(p.features)), labels if labels else p.features)
    ax.set_xlabel(p.value_label)
    ax.set_ylabel("")


def _draw_waterfall(ax: Axes, p: Panel, scale: tuple[float, float]) -> None:
    """shap-style waterfall: from the base value (bottom) to the prediction (top)."""
    vals = p.frame["value"].to_numpy(dtype=float)
    base, pred = p.extra["waterfall_base"], p.extra["pred"]
    n = len(vals)
    # accumulate from the bottom row (least important) to the top row
    starts = np.empty(n)
    run = base
    for r in range(n - 1, -1, -1):
        starts[r] = run
        run += vals[r]
    colours = [SIGN_PALETTE[s] for s in p.frame["sign"].astype(str)]
    ax.barh(np.arange(n), vals, left=starts, color=colours, height=0.7, zorder=3)
    for r, (st, v) in enumerate(zip(starts, vals)):
        ax.text(st + v, r, f" {v:+.3g} ", va="center", ha="left" if v >= 0 else "right",
                fontsize="x-small", zorder=4)
    span = scale[1] - scale[0] or 1.0
    ax.set_xlim(scale[0] - 0.15 * span, scale[1] + 0.15 * span)
    ax.axvline(base, color="#4d4d4d", linestyle="--", linewidth=0.9, zorder=1,
               label=f"base {base:.3g}")
    ax.axvline(pred, color="black", linewidth=0.9, zorder=1, label=f"pred {pred:.3g}")
    labels = p.extra.get("feature_labels") or p.features
    ax.set_yticks(np.arange(n), labels)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_xlabel(f"output ({p.extra.get('waterfall_note', 'base to pred')})")
    ax.legend(loc="lower right", fontsize="x-small")


def _set_position_ticks(ax: Axes, names: Sequence[str]) -> None:
    ticks = thin_ticks(len(names))
    ax.set_xticks(ticks, [names[t] for t in ticks])


_LINESTYLES = ["-", "--", ":", "-."]


def _draw_signal(ax: Axes, p: Panel, scale: tuple[float, float]) -> None:
    channels = list(p.extra.get("channels") or [])
    palette = sns.color_palette("colorblind", max(len(channels), 1))
    if p.kind == "signal_bars":
        sns.barplot(
            data=p.frame, x="position", y="value", hue="sign", hue_order=SIGNS,
            palette=SIGN_PALETTE, dodge=False, legend=False, errorbar=None, saturation=1,
            width=0.9, ax=ax,
        )
    else:
        for c, (ch, sub) in enumerate(p.frame.groupby("channel", observed=True, sort=False)):
            ax.plot(sub["position"].to_numpy(), sub["value"].to_numpy(float),
                    color=palette[c % len(palette)], linestyle=_LINESTYLES[c % 4],
                    linewidth=1.4, label=f"{ch}")
        ax.legend(title="channel", fontsize="small", loc="upper left")
    m = sym(*scale) * 1.08
    ax.set_ylim(-m, m)
    ax.set_xlim(-0.6, len(p.features) - 0.4)
    ax.axhline(0, color="black", linewidth=0.8)
    _set_position_ticks(ax, p.features)
    ax.set_xlabel("position")
    ax.set_ylabel(p.value_label)
    if p.background is not None:
        twin = ax.twinx()
        sig = np.atleast_2d(p.background)
        for c, ch in enumerate(sig):
            name = channels[c] if c < len(channels) else f"C{c + 1}"
            twin.plot(np.arange(ch.shape[-1]), ch, color=palette[c % len(palette)],
                      linestyle=_LINESTYLES[c % 4], alpha=0.8, linewidth=1.1,
                      label=f"input {name}")
        top = sym(float(np.nanmin(sig)), float(np.nanmax(sig))) * 1.08
        twin.set_ylim(-top, top)  # 0 of the input on the 0 of the attributions
        twin.set_ylabel("input")
        twin.set_label("input")
        twin.legend(fontsize="small", loc="upper right")


def _image_axes(ax: Axes, h: int, w: int) -> None:
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_xlabel("")
    ax.set_ylabel("")


def _draw_heatmap(ax: Axes, p: Panel, scale: tuple[float, float]) -> ColourBar:
    # seaborn.heatmap style, drawn directly: sns.heatmap renders the whole figure once per
    # call (to check tick label overlap), which is quadratic in the number of panels
    h, w = len(p.features), len(p.features_2)
    mat = p.frame["value"].to_numpy(dtype=float).reshape(h, w)
    lo, hi = scale
    if lo >= 0 and p.scope == "global":
        kw = dict(cmap=SEQUENTIAL_CMAP, vmin=0.0, vmax=hi if hi > 0 else 1.0)
    else:
        m = sym(lo, hi)
        kw = dict(cmap=DIVERGING_CMAP, vmin=-m, vmax=m)
    mesh = ax.pcolormesh(mat, **kw)
    _image_axes(ax, h, w)
    if p.background is not None:  # the input as outlines on the opaque heatmap
        grey = p.background if p.background.ndim == 2 else p.background.mean(axis=-1)
        if np.ptp(grey) > 0:
            ax.contour(np.arange(w) + 0.5, np.arange(h) + 0.5, grey, levels=[0.25, 0.5, 0.75],
                       colors="black", linewidths=[0.5, 0.8, 1.1], alpha=0.8, zorder=3)
    return (("heatmap", p.scale_group, kw["cmap"]), mesh, p.value_label, None, None)


def _draw_image(ax: Axes, p: Panel, scale: tuple[float, float]) -> None:
    img = p.background
    h, w = img.shape[:2]
    ax.imshow(img, extent=(0, w, h, 0), cmap=None if img.ndim == 3 else "gray", vmin=0,
              vmax=1, interpolation="nearest")
    _image_axes(ax, h, w)


def _clipped_markers(ax: Axes, p: Panel, lims: tuple[float, float], horizontal: bool) -> None:
    """Mark the values beyond the axis limits: triangles at the edge, counted in the legend."""
    vals = p.frame["value"].to_numpy(dtype=float)
    pos = p.frame["feature"].cat.codes.to_numpy()
    lo, hi = lims
    out_hi, out_lo = vals > hi, vals < lo
    n = int(out_hi.sum() + out_lo.sum())
    if n == 0:
        return
    edge = np.where(out_hi, hi, lo)[out_hi | out_lo]
    where = pos[out_hi | out_lo]
    if horizontal:
        xs, ys = edge, where
        marker = np.where(out_hi, ">", "<")[out_hi | out_lo]
    else:
        xs, ys = where, edge
        marker = np.where(out_hi, "^", "v")[out_hi | out_lo]
    first = True
    for mk in np.unique(marker):
        sel = marker == mk
        ax.scatter(xs[sel], ys[sel], marker=mk, s=30, color="black", zorder=11, clip_on=False,
                   label=f"beyond axis ({n})" if first else "_nolegend_")
        first = False


def _draw_distribution(ax: Axes, p: Panel, scale: tuple[float, float]) -> None:
    horizontal = p.input_dimension == 1
    xy = dict(x="value", y="feature") if horizontal else dict(x="feature", y="value")
    common = dict(data=p.frame, order=p.features, ax=ax, color=DISTRIBUTION_COLOR, **xy)
    pos = np.arange(len(p.features))
    lims = padded(*scale)
    if p.kind == "box":
        sns.boxplot(**common, fliersize=2, linewidth=0.8)
    elif p.kind == "violin":
        sns.violinplot(**common, cut=0, inner="quart", density_norm="width", linewidth=0.8)
    elif p.kind == "strip":  # seeded jitter: the same figure every time
        codes = p.frame["feature"].cat.codes.to_numpy()
        jitter = np.random.default_rng(0).uniform(-0.25, 0.25, size=len(codes))
        v = p.frame["value"].to_numpy(dtype=float)
        xs, ys = (v, codes + jitter) if horizontal else (codes + jitter, v)
        ax.scatter(xs, ys, s=10, alpha=0.6, color=DISTRIBUTION_COLOR, edgecolors="#4d4d4d",
                   linewidths=0.3, label="_nolegend_")
        (ax.set_yticks if horizontal else ax.set_xticks)(pos, p.features)
        if horizontal:
            ax.set_ylim(len(pos) - 0.5, -0.5)
    else:  # mean +- standard error, red / blue when the values are signed
        mean, se = p.extra["bar_mean"], p.extra["bar_se"]
        signed = bool((p.frame["value"] < 0).any())
        colours = ([SIGN_PALETTE[s] for s in np.where(mean >= 0, "positive", "negative")]
                   if signed else DISTRIBUTION_COLOR)
        if horizontal:
            ax.barh(pos, mean, xerr=se, color=colours, height=0.7, ecolor="black",
                    error_kw=dict(lw=0.8))
            ax.set_yticks(pos, p.features)
            ax.set_ylim(len(pos) - 0.5, -0.5)
        else:
            ax.bar(pos, mean, yerr=se, color=colours, width=0.8, ecolor="black",
                   error_kw=dict(lw=0.8))
        lo, hi = scale
        span = (hi - lo) or 1.0
        lims = (lo - 0.05 * span if lo < 0 else 0.0, hi + 0.05 * span)
    if horizontal:
        ax.set_xlim(*lims)
        ax.set_ylabel("")
        ax.set_xlabel(p.value_label)
    else:
        ax.set_ylim(*lims)
        ax.set_xlim(-0.6, len(pos) - 0.4)
        _set_position_ticks(ax, p.features)
        ax.set_xlabel("position")
        ax.set_ylabel(p.value_label)
    if lims[0] < 0:
        (ax.axvline if horizontal else ax.axhline)(0, color="black", linewidth=0.8)
    if p.kind != "bar":
        _clipped_markers(ax, p, lims, horizontal)
    if p.highlight is not None:
        ref = p.highlight.set_index("feature")["value"].reindex(p.features).to_numpy(float)
        ref = np.clip(ref, *lims)
        xs, ys = (ref, pos) if horizontal else (pos, ref)
        ax.scatter(
            xs, ys, marker="D", s=28, color=HIGHLIGHT_COLOR, edgecolors="black",
            linewidths=0.6, zorder=10, label=p.highlight_label,
        )
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right", fontsize="small")


def _draw_beeswarm(ax: Axes, p: Panel, scale: tuple[float, float]) -> ColourBar:
    xs, ys, cs = [], [], []
    frame = p.frame
    lims = padded(*scale)
    any_numeric = False
    for j, feat in enumerate(p.features):
        sub = frame[frame["feature"] == feat]
        v = sub["value"].to_numpy(dtype=float)
        offsets = j + beeswarm_offsets(np.clip(v, *lims))
        raw = sub["feature_value"].to_numpy()
        categories = categories_of(raw)
        if categories is not None:  # categorical: one qualitative colour per category
            _draw_categories(ax, v, offsets, raw, categories, feat)
            continue
        any_numeric = True
        xs.append(v)
        ys.append(offsets)
        cs.append(feature_colours(raw.astype(float)))
    norm = Normalize(0.0, 1.0)
    if xs:
        x, y, c = np.concatenate(xs), np.concatenate(ys), np.concatenate(cs)
        ok = np.isfinite(c)
        ax.scatter(x[ok], y[ok], c=c[ok], cmap=BEESWARM_CMAP, norm=norm, s=14, linewidths=0,
                   alpha=0.9, zorder=3)
        if (~ok).any():
            ax.scatter(x[~ok], y[~ok], color=ZERO_COLOR, s=14, linewidths=0, zorder=3)
    ax.set_yticks(np.arange(len(p.features)), p.features)
    ax.set_ylim(len(p.features) - 0.5, -0.5)
    ax.set_xlim(*lims)
    ax.axvline(0, color="black", linewidth=0.8, zorder=1)
    ax.set_xlabel(p.value_label)
    _clipped_markers(ax, p, lims, True)
    if p.highlight is not None:
        ref = p.highlight.set_index("feature")["value"].reindex(p.features).to_numpy(float)
        ax.scatter(np.clip(ref, *lims), np.arange(len(p.features)), facecolors="none",
                   edgecolors="black", s=60, linewidths=1.2, zorder=10, label=p.highlight_label)
    if ax.get_legend_handles_labels()[0]:  # below the axes: the swarm stays readable
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=3, fontsize="small",
                  frameon=False)
    if not any_numeric:  # only categorical features: their legend, no numeric colour bar
        return None
    mappable = ScalarMappable(norm=norm, cmap=BEESWARM_CMAP)
    return (("feature value",), mappable, "feature value", [0, 1], ["Low", "High"])


def _draw_categories(ax: Axes, x: np.ndarray, y: np.ndarray, raw: np.ndarray,
                     categories: list, feature: str) -> None:
    """Points of a categorical feature, one qualitative colour (and legend entry) per category;
    more than ten categories share one neutral colour."""
    codes = category_codes(raw, categories)
    if len(categories) > len(CATEGORY_COLORS):
        ax.scatter(x, y, color=ZERO_COLOR, s=14, linewidths=0, zorder=3,
                   label=f"{feature}: {len(categories)} categories")
        return
    for k, cat in enumerate(categories):
        sel = codes == k
        ax.scatter(x[sel], y[sel], color=CATEGORY_COLORS[k], s=14, linewidths=0, alpha=0.9,
                   zorder=3, label=f"{feature} = {cat}")
    missing = np.isnan(codes)
    if missing.any():
        ax.scatter(x[missing], y[missing], color=ZERO_COLOR, s=14, linewidths=0, zorder=3,
                   label=f"{feature} missing")


def _draw_dependence(ax: Axes, p: Panel, scale: tuple[float, float]) -> ColourBar | None:
    f = p.frame
    raw, v = f["feature_value"].to_numpy(), f["value"].to_numpy(float)
    x_categories = categories_of(raw)
    if x_categories is None:
        x = raw.astype(float)
    else:  # categories on the x axis, jittered within their slot
        x = category_codes(raw, x_categories)
        x = x + (np.random.default_rng(0).random(len(x)) - 0.5) * 0.4
        ax.set_xticks(np.arange(len(x_categories)), [str(c) for c in x_categories])
    cbar = None
    colour_raw = f["color_value"].to_numpy() if "color_value" in f else None
    colour_categories = None if colour_raw is None else categories_of(colour_raw)
    if colour_categories is not None:
        _draw_categories(ax, x, v, colour_raw, colour_categories, p.extra["color_name"])
        ax.legend(loc="best", fontsize="small")
    elif colour_raw is not None:
        c = feature_colours(colour_raw.astype(float))
        ok = np.isfinite(c)
        norm = Normalize(0.0, 1.0)
        ax.scatter(x[ok], v[ok], c=c[ok], cmap=BEESWARM_CMAP, norm=norm, s=14, linewidths=0,
                   alpha=0.9)
        if (~ok).any():
            ax.scatter(x[~ok], v[~ok], color=ZERO_COLOR, s=14, linewidths=0)
        name = p.extra["color_name"]
        cbar = (("color", name), ScalarMappable(norm=norm, cmap=BEESWARM_CMAP), name, [0, 1],
                ["Low", "High"])
    else:
        ax.scatter(x, v, color=SIGN_PALETTE["negative"], s=14, linewidths=0, alpha=0.8)
    ax.axhline(0, color="black", linewidth=0.8, zorder=1)
    ax.set_xlabel(p.features[0])
    ax.set_ylabel(p.value_label)
    return cbar


def draw_panel(ax: Axes, p: Panel, scale: tuple[float, float]) -> ColourBar | None:
    """Draw one panel into ``ax``; return the colour bar it needs (drawn once per figure)."""
    cbar = None
    if p.kind == "bars":
        _draw_bars(ax, p, scale)
    elif p.kind == "waterfall":
        _draw_waterfall(ax, p, scale)
    elif p.kind in ("signal_bars", "signal_lines"):
        _draw_signal(ax, p, scale)
    elif p.kind == "heatmap":
        cbar = _draw_heatmap(ax, p, scale)
    elif p.kind == "image":
        _draw_image(ax, p, scale)
    elif p.kind == "beeswarm":
        cbar = _draw_beeswarm(ax, p, scale)
    elif p.kind == "dependence":
        cbar = _draw_dependence(ax, p, scale)
    else:
        _draw_distribution(ax, p, scale)
    title = p.title
    if p.extra.get("title_suffix"):
        title += f"\n{p.extra['title_suffix']}"
    elif p.scope == "global":
        title += f"\n{p.extra['n_data']} sample(s)"
    if p.note:
        title += f"\n{p.note}"
    if p.extra.get("input_space"):
        title += f" | {p.extra['input_space']}" if p.note else f" · {p.extra['input_space']}"
    ax.set_title(title, fontsize="medium")
    return cbar


def _add_colour_bar(fig, cbar: ColourBar, axes) -> None:
    _, mappable, label, ticks, ticklabels = cbar
    cb = fig.colorbar(mappable, ax=axes, ticks=ticks, aspect=30, pad=0.02, fraction=0.04)
    if ticklabels is not None:
        cb.ax.set_yticklabels(ticklabels)
    cb.set_label(label)
    cb.outline.set_visible(False)


# ---------------------------------------------------------------------- layout
def _panel_size(p: Panel) -> tuple[float, float]:
    """(width, height) in inches that suits one panel."""
    n = len(p.features)
    lines = 1 + bool(p.note) + (p.scope == "global")
    head = 0.25 * lines
    if p.kind in ("heatmap", "image"):
        h, w = len(p.features), len(p.features_2 or [])
        return 3.2 * min(1.6, max(0.6, w / max(h, 1))) + 0.4, 3.2 + head
    if p.kind == "dependence":
        return 4.8, 3.6 + head
    if p.input_dimension == 1:  # bars, waterfall, distributions, beeswarm
        height = float(np.clip(0.28 * n + 1.2, 2.4, 9.0)) + head
        return (6.2 if p.kind in ("bars", "waterfall") else 5.6), height
    return float(np.clip(0.1 * n + 3.5, 5.0, 10.0)), 2.9 + head


def _check_size(name: str, val: object) -> None:
    if val is not None and (isinstance(val, bool) or not isinstance(val, (int, float))
                            or not val > 0):
        raise ValueError(f"{name} must be a positive number or None, got {val!r}")


def _fit_labels(fig) -> None:
    """Long tick labels must not be clipped: a figure without a layout engine gets one."""
    if fig.get_layout_engine() is None:
        fig.set_layout_engine("tight")


def render(
    panels: Sequence[Panel],
    *,
    ax: Axes | None = None,
    height: float | None = None,
    aspect: float | None = None,
) -> sns.FacetGrid | Axes:
    """Draw the panels into ``ax`` (one panel) or a new :class:`seaborn.FacetGrid`.

    Colour bars are drawn once per figure and colour scale (not once per panel).
    """
    group_scales = scales(panels)
    if ax is not None:
        if not isinstance(ax, Axes):
            raise TypeError(f"ax must be a matplotlib Axes, got {type(ax).__name__}")
        if len(panels) != 1:
            raise ValueError(
                f"ax= takes a single panel, but this plot has {len(panels)} panels "
                f"(samples x outputs x inputs); select one data_idx / output / input, or leave "
                f"ax=None to get a FacetGrid"
            )
        cbar = draw_panel(ax, panels[0], group_scales[panels[0].scale_group])
        if cbar is not None:
            _add_colour_bar(ax.figure, cbar, ax)
        _fit_labels(ax.figure)
        return ax
    _check_size("height", height)
    _check_size("aspect", aspect)
    sizes = [_panel_size(p) for p in panels]
    width = max(s[0] for s in sizes)
    h = float(height) if height is not None else max(s[1] for s in sizes)
    asp = float(aspect) if aspect is not None else width / h
    rows = order_of(p.row for p in panels)
    cols = order_of(p.col for p in panels)
    data = pd.concat(
        [p.frame.assign(facet_row=p.row, facet_col=p.col) for p in panels], ignore_index=True
    )
    use_row = rows != [None]
    grid = sns.FacetGrid(
        data, row="facet_row" if use_row else None, col="facet_col",
        row_order=rows if use_row else None, col_order=cols, sharex=False, sharey=False,
        height=h, aspect=asp, despine=False,
    )
    bars: dict = {}
    drawn = set()
    for p in panels:
        r = rows.index(p.row) if use_row else 0
        c = cols.index(p.col)
        target = grid.axes[r, c]
        drawn.add((r, c))
        cbar = draw_panel(target, p, group_scales[p.scale_group])
        if cbar is not None:
            bars.setdefault(cbar[0], [cbar, []])[1].append(target)
    for (r, c), target in np.ndenumerate(grid.axes):
        if (r, c) not in drawn:  # e.g. an image column of a multi-input grid
            target.set_visible(False)
    grid.tight_layout()
    for cbar, axes in bars.values():
        _add_colour_bar(grid.figure, cbar, list(grid.axes.flat) if len(bars) == 1 else axes)
    return grid
