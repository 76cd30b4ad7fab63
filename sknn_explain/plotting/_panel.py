"""The unit every plot is built from: a :class:`Panel` (one subplot) and the plot kinds.

Panel builders (:mod:`._local`, :mod:`._global`, :mod:`._dependence`) check the arguments,
pick samples / output nodes / inputs and fill one tidy (long-form) frame per panel with the
column names of :meth:`Attribution.to_frame <sknn_explain.Attribution.to_frame>`; the
matplotlib / seaborn renderer (:mod:`._mpl`) and the plotly renderer (:mod:`._plotly`) only
draw panels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

AGGREGATIONS = ("sum", "mean", "norm")
LOCAL_KINDS = ("bar", "waterfall")
GLOBAL_KINDS = ("box", "violin", "strip", "bar", "beeswarm", "heatmap")
#: kinds drawn as one distribution per feature / signal position
DISTRIBUTION_KINDS = ("box", "violin", "strip", "bar")
SHOW_INPUT = (None, True, False, "overlay", "beside")
SIGNS = ("positive", "negative", "zero")
DIM_NAMES = {1: "tabular", 2: "signal", 3: "image"}


@dataclass
class Panel:
    """One subplot: what to draw, its tidy data and where it goes in the grid.

    ``kind`` is one of ``"bars"`` (tabular local), ``"signal_bars"`` / ``"signal_lines"``
    (1D local), ``"heatmap"`` (image, local or global median), ``"box"`` / ``"violin"`` /
    ``"strip"`` / ``"bar"`` (global distributions per feature or position),
    ``"beeswarm"`` (tabular global summary) and ``"dependence"`` (scatter of one feature).
    ``frame`` has the ``to_frame`` columns that apply (``data``, ``model_input``,
    ``model_output``, ``output_node``, ``feature``, ``feature_2``, ``channel``, ``value``)
    plus ``sign`` (local bars) or ``feature_value`` (beeswarm).

    Parameters
    ----------
    kind : str
        What to draw (above).
    frame : pandas.DataFrame
        The tidy data drawn.
    row, col : str or None
        The panel's grid row and column labels (e.g. ``"sample 0"``, ``"output 1"``).
    title : str
        The panel title.
    input_index : int
        0-based model input the panel shows.
    input_dimension : int
        1 tabular, 2 signal, 3 image.
    features : list of str
        The features / positions (image rows) in drawing order.
    scale_group : int
        Panels with the same group share one value scale (and colour bar).
    scope : {"local", "global"}, default="local"
        Individual samples or a summary over samples.
    value_label : str, default="attribution"
        Label of the value axis or colour bar.
    note : str, optional
        A second title line (e.g. prediction and decomposition sum).
    features_2 : list of str, optional
        Image columns (heatmaps).
    background : ndarray, optional
        The input drawn with the attributions (signal lines, image).
    highlight : pandas.DataFrame, optional
        Values of a reference sample drawn over a distribution (``ref_data_idx``).
    highlight_label : str, optional
        The legend label of ``highlight``.
    extra : dict
        Kind-specific drawing data (e.g. ``"limits"``, bar means, waterfall base).

    Examples
    --------
    >>> import numpy as np, pandas as pd, torch
    >>> from sknn_explain import Gradient
    >>> X = pd.DataFrame(np.random.default_rng(0).normal(size=(30, 3)), columns=list("abc"))
    >>> res = Gradient(times_input=True).fit(torch.nn.Linear(3, 2), X).explain(X)
    >>> from sknn_explain.plotting import local_panels
    >>> panel = local_panels(res)[0]
    >>> panel.kind, panel.row, panel.col, panel.title
    ('bars', 'sample 0', 'output 0', 'Gradient · sample 0 · output 0')
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

        Returns
        -------
        tuple of float
            ``(min, max)``, the range the panel's value scale must cover.
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
class OutputNode:
    """One selected output node, located in the result and labelled for titles."""

    pos: int  # position in raw_values (selected output layer)
    k: int  # position on the trailing output axis
    layer: int  # 0-based model output layer
    node: str  # node name
    label: str  # display label: "output 3", "benign (output 1)", "output 2 of layer 1"
    index: int = 0  # 0-based node index in its output layer
