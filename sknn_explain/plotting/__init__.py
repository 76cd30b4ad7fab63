"""Seaborn plots of :class:`~sknn_explain.Attribution` results (optional plotly).

* :func:`plot_local` - one sample at a time: diverging bar charts for tabular inputs
  (red positive, blue negative, centred at 0), per-position bars (or one line per channel)
  for 1D signals, heatmaps for images (optionally over the input image); several inputs as
  a grid; the prediction, the sum of the attributions and the decomposition goal in each
  title.
* :func:`plot_global` - many samples at once: box / violin / strip / bar plots per feature
  or signal position (with a reference sample highlighted), a shap-style beeswarm summary
  for tabular inputs and median heatmaps for images.

Both return a :class:`seaborn.FacetGrid` (or the given ``ax``) that can be styled further;
``as_plotly=True`` gives an interactive :class:`plotly.graph_objects.Figure` when plotly is
installed (``pip install sknn-explain[plotly]``). They are also available as
``Attribution.plot`` / ``plot_local`` / ``plot_global``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..attribution import Attribution
from ._panels import GLOBAL_KINDS, Panel, global_panels, local_panels
from ._style import DIVERGING_CMAP, HIGHLIGHT_COLOR, NEGATIVE_COLOR, POSITIVE_COLOR

__all__ = [
    "DIVERGING_CMAP",
    "GLOBAL_KINDS",
    "HIGHLIGHT_COLOR",
    "NEGATIVE_COLOR",
    "POSITIVE_COLOR",
    "Panel",
    "global_panels",
    "local_panels",
    "plot_global",
    "plot_local",
]

_PLOTLY_HINT = (
    "as_plotly=True needs the optional dependency plotly; install it with "
    "`pip install sknn-explain[plotly]` (or `pip install plotly`)"
)


def _render(panels: list[Panel], ax: Any, as_plotly: bool, height: Any, aspect: Any):
    if not isinstance(as_plotly, (bool, np.bool_)):
        raise TypeError(f"as_plotly must be a bool, got {as_plotly!r}")
    if as_plotly:
        if ax is not None:
            raise ValueError("ax= is for matplotlib; it cannot be combined with as_plotly=True")
        try:
            import plotly  # noqa: F401
        except ImportError as err:
            raise ImportError(_PLOTLY_HINT) from err
        from ._plotly import render_plotly

        return render_plotly(panels, height=height, aspect=aspect)
    from ._mpl import render

    return render(panels, ax=ax, height=height, aspect=aspect)


def plot_local(
    attr: Attribution,
    data_idx: int | list[int] = 0,
    output_idx: Any = None,
    output_label: Any = None,
    aggr_channels: str | Callable | None = "sum",
    same_scale: bool = False,
    show_preds: bool = True,
    *,
    show_input: bool = False,
    input_idx: int | list[int] | None = None,
    ax: Any = None,
    as_plotly: bool = False,
    height: float | None = None,
    aspect: float | None = None,
):
    """Plot the attributions of individual samples.

    One panel per sample x output node (x model input). Tabular inputs give horizontal
    diverging bar charts (red positive, blue negative, centred at 0, labelled with the
    feature names), 1D signals per-position bars (or one line per channel with
    ``aggr_channels=None``), images a heatmap of the channel-aggregated attributions
    (red positive, blue negative, white 0). Several inputs form a grid: one row per
    sample x output, one column per input.

    Parameters
    ----------
    attr : Attribution
        The result of ``Explainer.explain``.
    data_idx : int or list of int, default=0
        0-based samples to plot (panel titles use ``to_frame``'s names, ``data_1`` for 0).
    output_idx : int, list of int or list of (list of int or None), optional
        0-based output nodes, as in ``explain`` (a list of lists selects per output layer);
        they must have been computed by ``explain``. Default: the first computed node.
    output_label : label or list of labels, optional
        Output nodes by name instead of index.
    aggr_channels : {"sum", "mean", "norm"}, callable or None, default="sum"
        How signal / image channels are reduced: a callable is called as
        ``f(values, axis=1)`` on ``(n, C, ...)`` values (e.g. ``np.max``). ``None`` keeps
        the channels of signals (one line each); images need an aggregation unless they
        have a single channel.
    same_scale : bool, default=False
        Panels of the same input always share their value scale (so samples and outputs
        compare); with ``same_scale=True`` all inputs share one scale too.
    show_preds : bool, default=True
        Add the prediction, the sum of the attributions (over all inputs) and the
        decomposition goal (when the method has one) to the panel titles.
    show_input : bool, default=False
        Show the explained data too: feature values in the tick labels (tabular), the
        signal on a second y-axis, the image under a semi-transparent heatmap.
    input_idx : int or list of int, optional
        0-based model inputs to plot (default: all).
    ax : matplotlib Axes, optional
        Draw a single panel into this Axes (and return it).
    as_plotly : bool, default=False
        Return an interactive plotly figure instead (needs plotly).
    height, aspect : float, optional
        Height (inches) and width/height ratio of each facet; chosen from the content by
        default.

    Returns
    -------
    seaborn.FacetGrid, matplotlib Axes (when ``ax`` is given) or plotly Figure
        ``grid.data`` holds the tidy data drawn (``to_frame`` columns plus ``facet_row``
        and ``facet_col``), ``grid.axes`` the panels.

    Raises
    ------
    ValueError
        For a ``data_idx`` out of range, an output node that was not computed, an unknown
        ``aggr_channels``, ``ax`` with several panels.
    ImportError
        For ``as_plotly=True`` without plotly.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import pandas as pd, torch
    >>> from sknn_explain import Gradient
    >>> from sknn_explain.plotting import plot_local
    >>> X = pd.DataFrame({"age": [0.5, -1.0], "income": [1.0, 2.0]})
    >>> torch.manual_seed(0) and None
    >>> res = Gradient(times_input=True).fit(torch.nn.Linear(2, 1), X).explain(X)
    >>> grid = plot_local(res, data_idx=[0, 1])
    >>> grid.axes.shape
    (2, 1)
    >>> [t.get_text() for t in grid.axes[0, 0].get_yticklabels()]
    ['age', 'income']
    """
    panels = local_panels(
        attr, data_idx=data_idx, output_idx=output_idx, output_label=output_label,
        aggr_channels=aggr_channels, same_scale=same_scale, show_preds=show_preds,
        show_input=show_input, input_idx=input_idx,
    )
    return _render(panels, ax, as_plotly, height, aspect)


def plot_global(
    attr: Attribution,
    output_idx: Any = None,
    output_label: Any = None,
    data_idx: str | list[int] = "all",
    ref_data_idx: int | None = None,
    preprocess: str | Callable | None = "auto",
    kind: str | None = None,
    *,
    aggr_channels: str | Callable = "sum",
    same_scale: bool = False,
    input_idx: int | list[int] | None = None,
    ax: Any = None,
    as_plotly: bool = False,
    height: float | None = None,
    aspect: float | None = None,
):
    """Summarise the attributions over many samples.

    One panel per output node (x model input). Tabular and signal inputs show the
    distribution of the (preprocessed) attributions per feature / position as box, violin,
    strip or bar (mean +- standard error) plot, with the sample ``ref_data_idx`` drawn as
    orange diamonds; ``kind="beeswarm"`` gives shap's summary for tabular inputs (features
    sorted by mean absolute attribution, one point per sample at its signed attribution,
    coloured by the feature value from blue = low to red = high). Images show the
    per-pixel median over the samples as a heatmap.

    Channels are aggregated first (``aggr_channels``), then ``preprocess`` is applied
    element-wise, then the samples are summarised.

    Parameters
    ----------
    attr : Attribution
        The result of ``Explainer.explain``.
    output_idx, output_label : optional
        Output nodes, as in :func:`plot_local` (default: the first computed node).
    data_idx : "all" or list of int, default="all"
        0-based samples to summarise.
    ref_data_idx : int, optional
        A sample to highlight (tabular and signal inputs; ignored for images).
    preprocess : "auto", callable or None, default="auto"
        Element-wise function of the attributions before summarising: ``"auto"`` is
        ``np.abs`` (importance), except for ``kind="beeswarm"``, which shows signed values;
        ``None`` keeps the signed values.
    kind : {"box", "violin", "strip", "bar", "beeswarm", "heatmap"}, optional
        Default: "box" for tabular / signal inputs, "heatmap" (median) for images. Image
        inputs accept only "heatmap"; "beeswarm" needs tabular inputs.
    aggr_channels : {"sum", "mean", "norm"} or callable, default="sum"
        Reduction of signal / image channels (see :func:`plot_local`).
    same_scale : bool, default=False
        Share one value scale across inputs (panels of one input always share theirs).
    input_idx : int or list of int, optional
        0-based model inputs to plot (default: all).
    ax, as_plotly, height, aspect
        As in :func:`plot_local`.

    Returns
    -------
    seaborn.FacetGrid, matplotlib Axes (when ``ax`` is given) or plotly Figure

    Raises
    ------
    ValueError
        For a bad ``data_idx`` / ``ref_data_idx``, an output node that was not computed,
        a ``kind`` that does not fit an input (e.g. ``"box"`` for an image).

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np, pandas as pd, torch
    >>> from sknn_explain import Gradient
    >>> from sknn_explain.plotting import plot_global
    >>> X = pd.DataFrame(np.random.default_rng(0).normal(size=(30, 3)), columns=list("abc"))
    >>> res = Gradient(times_input=True).fit(torch.nn.Linear(3, 2), X).explain(X)
    >>> grid = plot_global(res, output_idx=[0, 1], kind="violin", ref_data_idx=4)
    >>> grid.axes.shape
    (1, 2)
    >>> ax = plot_global(res, kind="beeswarm", ax=matplotlib.pyplot.figure().gca())
    >>> ax.get_xlabel()
    'attribution'
    """
    panels = global_panels(
        attr, output_idx=output_idx, output_label=output_label, data_idx=data_idx,
        ref_data_idx=ref_data_idx, preprocess=preprocess, kind=kind,
        aggr_channels=aggr_channels, same_scale=same_scale, input_idx=input_idx,
    )
    return _render(panels, ax, as_plotly, height, aspect)
