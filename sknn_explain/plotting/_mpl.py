"""Matplotlib / seaborn renderer: draws :class:`~._panels.Panel` objects into a FacetGrid."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize

from ._panels import (
    SIGNS,
    Panel,
    beeswarm_offsets,
    feature_colours,
    order_of,
    padded,
    scales,
    sym,
    thin_ticks,
)
from ._style import (
    BEESWARM_CMAP,
    DISTRIBUTION_COLOR,
    DIVERGING_CMAP,
    HIGHLIGHT_COLOR,
    SEQUENTIAL_CMAP,
    SIGN_PALETTE,
    ZERO_COLOR,
)

__all__ = ["draw_panel", "render"]


# ---------------------------------------------------------------------- panel drawers
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


def _set_position_ticks(ax: Axes, names: Sequence[str]) -> None:
    ticks = thin_ticks(len(names))
    ax.set_xticks(ticks, [names[t] for t in ticks])


def _draw_signal(ax: Axes, p: Panel, scale: tuple[float, float]) -> None:
    if p.kind == "signal_bars":
        sns.barplot(
            data=p.frame, x="position", y="value", hue="sign", hue_order=SIGNS,
            palette=SIGN_PALETTE, dodge=False, legend=False, errorbar=None, saturation=1,
            width=0.9, ax=ax,
        )
    else:
        sns.lineplot(data=p.frame, x="position", y="value", hue="channel", ax=ax)
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
        for ch in sig:
            twin.plot(np.arange(ch.shape[-1]), ch, color="black", alpha=0.45, linewidth=1)
        top = sym(float(np.nanmin(sig)), float(np.nanmax(sig))) * 1.08
        twin.set_ylim(-top, top)  # 0 of the input on the 0 of the attributions
        twin.set_ylabel("input")
        twin.set_label("input")


def _draw_heatmap(ax: Axes, p: Panel, scale: tuple[float, float]) -> None:
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
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    cb = ax.figure.colorbar(mesh, ax=ax)
    cb.set_label(p.value_label)
    cb.outline.set_linewidth(0)
    xt, yt = thin_ticks(w), thin_ticks(h)
    ax.set_xticks(xt + 0.5, [p.features_2[i] for i in xt], rotation=90)
    ax.set_yticks(yt + 0.5, [p.features[i] for i in yt])
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if p.background is not None:
        mesh.set_alpha(0.65)
        mesh.set_zorder(2)
        ax.imshow(
            p.background, extent=(0, w, h, 0), cmap="gray", vmin=0, vmax=1, aspect="auto",
            zorder=1, interpolation="nearest",
        )
    ax.set_xlabel("")
    ax.set_ylabel("")


def _draw_distribution(ax: Axes, p: Panel, scale: tuple[float, float]) -> None:
    horizontal = p.input_dimension == 1
    xy = dict(x="value", y="feature") if horizontal else dict(x="feature", y="value")
    common = dict(data=p.frame, order=p.features, ax=ax, color=DISTRIBUTION_COLOR, **xy)
    if p.kind == "box":
        sns.boxplot(**common, fliersize=2, linewidth=0.8)
    elif p.kind == "violin":
        sns.violinplot(**common, cut=0, inner="quart", density_norm="width", linewidth=0.8)
    elif p.kind == "strip":
        sns.stripplot(**common, size=3, alpha=0.6, jitter=0.25)
    else:
        sns.barplot(**common, errorbar="se", saturation=1)
    lims = padded(*scale)
    pos = np.arange(len(p.features))
    if horizontal:
        ax.set_xlim(*lims)
        ax.set_ylabel("")
        ax.set_xlabel(p.value_label)
    else:
        ax.set_ylim(*lims)
        _set_position_ticks(ax, p.features)
        ax.set_xlabel("position")
        ax.set_ylabel(p.value_label)
    if lims[0] < 0:
        (ax.axvline if horizontal else ax.axhline)(0, color="black", linewidth=0.8)
    if p.highlight is not None:
        ref = p.highlight.set_index("feature")["value"].reindex(p.features).to_numpy(float)
        xs, ys = (ref, pos) if horizontal else (pos, ref)
        ax.scatter(
            xs, ys, marker="D", s=28, color=HIGHLIGHT_COLOR, edgecolors="black",
            linewidths=0.6, zorder=10, label=p.highlight_label,
        )
        ax.legend(loc="best", fontsize="small")


def _draw_beeswarm(ax: Axes, p: Panel, scale: tuple[float, float]) -> None:
    xs, ys, cs = [], [], []
    frame = p.frame
    for j, feat in enumerate(p.features):
        sub = frame[frame["feature"] == feat]
        v = sub["value"].to_numpy(dtype=float)
        xs.append(v)
        ys.append(j + beeswarm_offsets(v))
        cs.append(feature_colours(sub["feature_value"].to_numpy(dtype=float)))
    x, y, c = np.concatenate(xs), np.concatenate(ys), np.concatenate(cs)
    ok = np.isfinite(c)
    norm = Normalize(0.0, 1.0)
    ax.scatter(x[ok], y[ok], c=c[ok], cmap=BEESWARM_CMAP, norm=norm, s=14, linewidths=0,
               alpha=0.9, zorder=3)
    if (~ok).any():
        ax.scatter(x[~ok], y[~ok], color=ZERO_COLOR, s=14, linewidths=0, zorder=3)
    cb = ax.figure.colorbar(ScalarMappable(norm=norm, cmap=BEESWARM_CMAP), ax=ax, ticks=[0, 1],
                            aspect=30, pad=0.02)
    cb.ax.set_yticklabels(["Low", "High"])
    cb.set_label("feature value")
    cb.outline.set_visible(False)
    ax.set_yticks(np.arange(len(p.features)), p.features)
    ax.set_ylim(len(p.features) - 0.5, -0.5)
    ax.set_xlim(*padded(*scale))
    ax.axvline(0, color="black", linewidth=0.8, zorder=1)
    ax.set_xlabel(p.value_label)
    if p.highlight is not None:
        ref = p.highlight.set_index("feature")["value"].reindex(p.features).to_numpy(float)
        ax.scatter(ref, np.arange(len(p.features)), facecolors="none", edgecolors="black",
                   s=60, linewidths=1.2, zorder=10, label=p.highlight_label)
        ax.legend(loc="best", fontsize="small")


def draw_panel(ax: Axes, p: Panel, scale: tuple[float, float]) -> None:
    """Draw one panel into ``ax`` with the value range ``scale`` of its scale group."""
    if p.kind == "bars":
        _draw_bars(ax, p, scale)
    elif p.kind in ("signal_bars", "signal_lines"):
        _draw_signal(ax, p, scale)
    elif p.kind == "heatmap":
        _draw_heatmap(ax, p, scale)
    elif p.kind == "beeswarm":
        _draw_beeswarm(ax, p, scale)
    else:
        _draw_distribution(ax, p, scale)
    title = p.title
    if p.extra.get("title_suffix"):
        title += f"\n{p.extra['title_suffix']}"
    elif p.scope == "global":
        title += f"\n{p.extra['n_data']} sample(s)"
    if p.note:
        title += f"\n{p.note}"
    ax.set_title(title, fontsize="medium")


# ---------------------------------------------------------------------- layout
def _panel_size(p: Panel) -> tuple[float, float]:
    """(width, height) in inches that suits one panel."""
    n = len(p.features)
    lines = 1 + bool(p.note) + (p.scope == "global")
    head = 0.25 * lines
    if p.kind == "heatmap":
        return 4.3, 3.4 + head
    if p.input_dimension == 1:  # bars, distributions, beeswarm
        height = float(np.clip(0.3 * n + 1.3, 2.4, 10.0)) + head
        return (5.6 if p.kind == "beeswarm" else 4.8), height
    return float(np.clip(0.1 * n + 3.5, 5.0, 10.0)), 2.9 + head


def render(
    panels: Sequence[Panel],
    *,
    ax: Axes | None = None,
    height: float | None = None,
    aspect: float | None = None,
) -> sns.FacetGrid | Axes:
    """Draw the panels into ``ax`` (one panel) or a new :class:`seaborn.FacetGrid`."""
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
        draw_panel(ax, panels[0], group_scales[panels[0].scale_group])
        return ax
    for name, val in (("height", height), ("aspect", aspect)):
        if val is not None and (isinstance(val, bool) or not isinstance(val, (int, float))
                                or not val > 0):
            raise ValueError(f"{name} must be a positive number or None, got {val!r}")
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
    for p in panels:
        r = rows.index(p.row) if use_row else 0
        c = cols.index(p.col)
        draw_panel(grid.axes[r, c], p, group_scales[p.scale_group])
    grid.tight_layout()
    return grid

