"""Seaborn plots of :class:`~sknn_explain.Attribution` results (optional plotly).

* :func:`plot_local` - one sample at a time: diverging bar charts for tabular inputs
  (red positive, blue negative, centred at 0), per-position bars (or one line per channel)
  for 1D signals, heatmaps for images (optionally over the input image); several inputs as
  a grid; the prediction, the sum of the attributions and the decomposition goal in each
  title.
  ``kind="waterfall"`` gives shap's waterfall (from the base value to the prediction).
* :func:`plot_global` - many samples at once: box / violin / strip / bar plots per feature
  or signal position (with a reference sample highlighted), a shap-style beeswarm summary
  for tabular inputs and median heatmaps for images.
* :func:`plot_dependence` - attribution of one feature against its value, coloured by a
  second feature (shap's dependence plot).
* :func:`plot_image_grid` - images x outputs for papers: the input image, then one heatmap
  per output, one colour bar.
* :func:`plot_perturbation_curves` / :func:`plot_randomisation` - evaluation results of
  :mod:`sknn_explain.metrics`: mean perturbation curves, MPRT similarity per layer.

All return a :class:`seaborn.FacetGrid` (``grid.figure`` is the matplotlib Figure,
``grid.axes`` a 2D array of Axes, ``grid.data`` the tidy data drawn), or the given ``ax``
(a matplotlib Axes) with ``ax=``; ``as_plotly=True`` gives an interactive
:class:`plotly.graph_objects.Figure` when plotly is installed
(``pip install sknn-explain[plotly]``). They are also available as ``Attribution.plot`` /
``plot_local`` / ``plot_global`` / ``plot_dependence``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ._dependence import dependence_panels
from ._evaluation import plot_perturbation_curves, plot_randomisation
from ._global import global_panels
from ._local import local_panels
from ._panel import GLOBAL_KINDS, LOCAL_KINDS, Panel
from ._result import AttributionLike
from ._style import DIVERGING_CMAP, HIGHLIGHT_COLOR, NEGATIVE_COLOR, POSITIVE_COLOR

__all__ = [
    "DIVERGING_CMAP",
    "GLOBAL_KINDS",
    "HIGHLIGHT_COLOR",
    "LOCAL_KINDS",
    "NEGATIVE_COLOR",
    "POSITIVE_COLOR",
    "Panel",
    "dependence_panels",
    "global_panels",
    "local_panels",
    "plot_dependence",
    "plot_global",
    "plot_image_grid",
    "plot_local",
    "plot_perturbation_curves",
    "plot_randomisation",
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


def _ax_default(attr: Any, ax: Any, output_idx: Any, output_label: Any) -> Any:
    """With ``ax=`` (one panel) and no output selected: the first computed output node."""
    if ax is None or output_idx is not None or output_label is not None:
        return output_idx
    if not isinstance(attr, AttributionLike):
        return output_idx
    layer = int(attr.output_layers[0])
    return [None] * layer + [[int(attr.output_idx[0][0])]]


def plot_local(
    attr: AttributionLike,
    data_idx: int | list[int] = 0,
    output_idx: Any = None,
    output_label: Any = None,
    aggr_channels: str | Callable | None = "sum",
    same_scale: bool = False,
    show_preds: bool = True,
    *,
    show_input: bool | str | None = None,
    input_idx: int | list[int] | None = None,
    kind: str | None = None,
    max_display: int | None = 20,
    sort: bool = True,
    output_names: Any = None,
    ax: Any = None,
    as_plotly: bool = False,
    height: float | None = None,
    aspect: float | None = None,
):
    """Plot the attributions of individual samples.

    One panel per sample x output node (x model input). Tabular inputs give horizontal
    diverging bar charts (red positive, blue negative, centred at 0), sorted by
    ``|attribution|`` and labelled ``feature = value``, the ``max_display - 1`` largest
    features shown and the rest summed in one "N other features" bar (as shap);
    ``kind="waterfall"`` draws shap's waterfall instead, from the base value (``pred -
    goal``, e.g. the mean output on ``X_ref``) to the prediction. 1D signals give
    per-position bars (or one coloured, dashed-differently line per channel with
    ``aggr_channels=None``), images a heatmap of the channel-aggregated attributions (red
    positive, blue negative, white 0, symmetric around 0, no pixel tick labels) next to the
    input image. Several inputs form a grid: one row per sample x output, one column per
    input.

    Titles name the method, the sample and the output, 0-based like the arguments
    (``IntegratedGradients · sample 0 · output 3``), the class name when the model has one
    (``benign (output 1)``; ``output_names`` sets your own) and whether the values explain a
    logit or a probability (``ignore_last_act``) when the model ends with softmax / sigmoid.

    Parameters
    ----------
    attr : Attribution
        The result of ``Explainer.explain``.
    data_idx : int or list of int, default=0
        0-based samples to plot (titled ``sample 0``, ...; ``grid.data`` keeps
        ``to_frame``'s names, ``data_1`` for sample 0).
    output_idx : int, list of int or list of (list of int or None), optional
        0-based output nodes, as in ``explain`` (a list of lists selects per output layer);
        they must have been computed by ``explain``. Default: every computed node, one
        column each.
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
    show_input : None, bool, "overlay" or "beside", default=None
        Show the explained data. ``None`` (auto): feature values in the tabular tick labels
        and the image in its own panel beside the heatmaps; signals are not shown. ``True``:
        also the signal on a second y-axis (one coloured line per channel, in the legend) and
        the image as black outlines on the opaque heatmap ("overlay", so the colours stay
        those of the colour bar); ``"beside"``: the image in its own panel; ``False``: none.
    input_idx : int or list of int, optional
        0-based model inputs to plot (default: all).
    kind : {"bar", "waterfall"}, optional
        Tabular inputs: diverging bars (default) or shap's waterfall.
    max_display : int or None, default=20
        Tabular inputs: at most this many rows (the last sums the remaining features);
        None shows every feature.
    sort : bool, default=True
        Tabular inputs: sort features by ``|attribution|`` (False keeps the data order).
    output_names : sequence or dict, optional
        Display names of the output nodes: a sequence indexed by the integer class label
        when the outputs are named by integer class labels (so ``target_names`` of a
        scikit-learn data set fits, also for a binary MLP's single output "1"), else by the
        0-based output index; or a dict ``{output index or node name: name}``.
    ax : matplotlib Axes, optional
        Draw a single panel into this Axes (and return it); without ``output_idx`` /
        ``output_label`` it shows the first computed output node. A figure without a layout
        engine gets matplotlib's "tight" engine, so long labels are not clipped.
    as_plotly : bool, default=False
        Return an interactive plotly figure instead (needs plotly).
    height, aspect : float, optional
        Height (inches) and width/height ratio of each facet; chosen from the content by
        default.

    Returns
    -------
    seaborn.FacetGrid, matplotlib Axes (when ``ax`` is given) or plotly Figure
        ``grid.data`` holds the tidy data drawn (``to_frame`` columns plus ``facet_row``
        and ``facet_col``), ``grid.axes`` the panels, ``grid.figure`` the Figure (colour
        bars are extra Axes of it, one per colour scale).

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
    ['income = 1', 'age = 0.5']
    """
    output_idx = _ax_default(attr, ax, output_idx, output_label)
    panels = local_panels(
        attr, data_idx=data_idx, output_idx=output_idx, output_label=output_label,
        aggr_channels=aggr_channels, same_scale=same_scale, show_preds=show_preds,
        show_input=show_input, input_idx=input_idx, kind=kind, max_display=max_display,
        sort=sort, output_names=output_names, beside_ok=ax is None,
    )
    return _render(panels, ax, as_plotly, height, aspect)


def plot_global(
    attr: AttributionLike,
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
    max_display: int | None = 20,
    sort: bool = True,
    robust: bool = True,
    output_names: Any = None,
    ax: Any = None,
    as_plotly: bool = False,
    height: float | None = None,
    aspect: float | None = None,
):
    """Summarise the attributions over many samples.

    One panel per output node (x model input). Tabular and signal inputs show the
    distribution of the (preprocessed) attributions per feature / position as box, violin,
    strip (seeded jitter: the same figure every run) or bar (mean +- standard error, red /
    blue when signed, x-limits fitted to the bars) plot, with the sample ``ref_data_idx``
    drawn as orange diamonds; tabular features are sorted by mean ``|attribution|``
    (most important on top) and cut to ``max_display``. With ``robust=True`` outliers do
    not squash the axis: values beyond Tukey's far-out fences (per feature) are clipped at
    the axis edge as black triangles, counted in the legend; ``kind="beeswarm"`` gives
    shap's summary for tabular inputs (features sorted by mean absolute attribution, one
    point per sample at its signed attribution,
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
    max_display : int or None, default=20
        Tabular inputs: the most important features shown (None: all).
    sort : bool, default=True
        Tabular inputs: sort by mean ``|attribution|`` (False keeps the data order).
    robust : bool, default=True
        Fit the value axis to the non-outlying values (outliers clipped and marked).
    output_names, ax, as_plotly, height, aspect
        As in :func:`plot_local`; the beeswarm's colour bar is drawn once per figure.

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
    output_idx = _ax_default(attr, ax, output_idx, output_label)
    panels = global_panels(
        attr, output_idx=output_idx, output_label=output_label, data_idx=data_idx,
        ref_data_idx=ref_data_idx, preprocess=preprocess, kind=kind,
        aggr_channels=aggr_channels, same_scale=same_scale, input_idx=input_idx,
        max_display=max_display, sort=sort, robust=robust, output_names=output_names,
    )
    return _render(panels, ax, as_plotly, height, aspect)


def plot_dependence(
    attr: AttributionLike,
    feature: int | str,
    color_by: int | str | None = "auto",
    output_idx: Any = None,
    output_label: Any = None,
    data_idx: str | list[int] = "all",
    *,
    input_idx: int | None = None,
    output_names: Any = None,
    ax: Any = None,
    as_plotly: bool = False,
    height: float | None = None,
    aspect: float | None = None,
):
    """shap's dependence plot: the attribution of one feature against its value.

    One scatter panel per output node: x = the value of ``feature`` per sample, y = its
    attribution, points coloured by the value of a second feature ``color_by`` (blue low,
    red high; one colour bar per figure).

    Parameters
    ----------
    attr : Attribution
        The result of ``Explainer.explain`` for a model with a tabular input.
    feature : int or str
        0-based feature index or feature name.
    color_by : "auto", int, str or None, default="auto"
        The colouring feature; ``"auto"`` picks the feature whose value correlates most
        with what ``feature``'s own value does not explain of its attribution (the residual
        of a linear fit, a cheap interaction proxy); None: one colour.
    output_idx, output_label, output_names : optional
        Output nodes, as in :func:`plot_local` (default: every computed node).
    data_idx : "all" or list of int, default="all"
        0-based samples.
    input_idx : int, optional
        The tabular input (default: the first tabular input).
    ax, as_plotly, height, aspect
        As in :func:`plot_local`.

    Returns
    -------
    seaborn.FacetGrid, matplotlib Axes (when ``ax`` is given) or plotly Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np, pandas as pd, torch
    >>> from sknn_explain import Gradient
    >>> from sknn_explain.plotting import plot_dependence
    >>> X = pd.DataFrame(np.random.default_rng(0).normal(size=(30, 3)), columns=list("abc"))
    >>> res = Gradient(times_input=True).fit(torch.nn.Linear(3, 1), X).explain(X)
    >>> ax = plot_dependence(res, "a", color_by="b", ax=matplotlib.pyplot.figure().gca())
    >>> ax.get_xlabel(), ax.get_ylabel()
    ('a', 'attribution of a')
    """
    output_idx = _ax_default(attr, ax, output_idx, output_label)
    panels = dependence_panels(
        attr, feature, color_by=color_by, output_idx=output_idx, output_label=output_label,
        data_idx=data_idx, input_idx=input_idx, output_names=output_names,
    )
    return _render(panels, ax, as_plotly, height, aspect)


def plot_image_grid(
    attr: AttributionLike,
    data_idx: int | list[int] = 0,
    output_idx: Any = None,
    output_label: Any = None,
    aggr_channels: str | Callable = "sum",
    *,
    input_idx: int | None = None,
    output_names: Any = None,
    height: float = 1.8,
):
    """A paper figure: one row per image, the input then one heatmap per output.

    All heatmaps share one symmetric diverging scale centred at 0 and a single colour bar;
    no tick labels; output names on the first row only, ``sample i`` on the left.

    Parameters
    ----------
    attr : Attribution
        The result of ``Explainer.explain`` for a model with an image input.
    data_idx : int or list of int, default=0
        0-based images (rows).
    output_idx, output_label, output_names : optional
        Output nodes (columns), as in :func:`plot_local` (default: every computed node).
    aggr_channels : {"sum", "mean", "norm"} or callable, default="sum"
        Reduction of the image channels.
    input_idx : int, optional
        The image input (default: the first image input).
    height : float, default=1.8
        Height of each cell in inches.

    Returns
    -------
    seaborn.FacetGrid
        ``grid.figure`` is the matplotlib Figure to save.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import torch
    >>> from sknn_explain import Gradient
    >>> from sknn_explain.plotting import plot_image_grid
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    >>> res = Gradient().fit(net).explain(torch.rand(4, 1, 4, 4), output_idx=[0, 2])
    >>> plot_image_grid(res, data_idx=[0, 1]).axes.shape
    (2, 3)
    """
    from ._mpl import render

    if input_idx is None:
        images = [i for i, n in enumerate(attr.input_names) if len(n) == 3] if isinstance(
            attr, AttributionLike) else []
        if isinstance(attr, AttributionLike) and not images:
            raise ValueError("plot_image_grid needs an image input; this result has none")
        input_idx = images[0] if images else None
    panels = local_panels(
        attr, data_idx=data_idx, output_idx=output_idx, output_label=output_label,
        aggr_channels=aggr_channels, show_preds=False, show_input="beside",
        input_idx=input_idx, output_names=output_names,
    )
    if any(p.kind not in ("heatmap", "image") for p in panels):
        raise ValueError(f"plot_image_grid needs an image input; input {input_idx} is not one")
    first_row = panels[0].row
    for p in panels:
        p.title = p.col if p.row == first_row else ""
        p.title = "input" if p.kind == "image" and p.row == first_row else p.title
    grid = render(panels, height=height, aspect=1.0)
    for r, row in enumerate(grid.axes):
        row[0].set_ylabel(str(grid.row_names[r]))
    return grid
