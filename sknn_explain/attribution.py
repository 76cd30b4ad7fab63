"""The :class:`Attribution` result returned by every ``Explainer.explain``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from ._groups import sum_groups
from .plotting import plot_dependence, plot_global, plot_local

__all__ = ["Attribution"]

FRAME_COLUMNS = [
    "data", "model_input", "model_output", "feature", "feature_2", "channel", "output_node",
    "value", "pred", "decomp_sum", "decomp_goal", "input_dimension", "index",
]


def _squeeze(nested: list[list]):
    """innsight's result nesting: array, list over inputs, or list over output layers."""
    inner = [layer[0] if len(layer) == 1 else list(layer) for layer in nested]
    return inner[0] if len(inner) == 1 else inner



def _read_only(x: object) -> np.ndarray:
    """A non-writable view of ``x`` (no copy): results never write into the user's data."""
    view = np.asarray(x).view()
    view.flags.writeable = False
    return view

class Attribution:
    """Feature attributions for a batch of samples and a selection of output nodes.

    Values have innsight's layout ``(n_samples, *input_shape, n_outputs)`` in the user's
    input layout (channels last when the explainer was given ``channels_first=False``).
    Models with several inputs give a list (one array per input), models with several
    selected output layers a list over output layers.

    Parameters
    ----------
    method : str
        Name of the method that produced the values.
    values : list of list of ndarray
        ``values[l][i]`` for selected output layer ``l`` and model input ``i``.
    inputs : list of ndarray
        The explained data, user layout, ``(n_samples, *input_shape)`` per input: a
        read-only array that may be a view of the user's ``X`` (no copy of a large input is
        made), so writing ``result.inputs`` raises instead of changing ``X``. Copy it
        (``result.inputs[0].copy()``) before changing ``X`` in place if you need both.
    input_names : list of list of list of str
        Per input, per axis (model layout, channels first) names.
    output_names : list of list
        Per selected output layer, the names of the selected nodes.
    output_layers : list of int
        0-based index of each selected output layer in the model.
    output_idx : list of ndarray
        Per selected output layer, the 0-based indices of the selected nodes.
    predictions : list of ndarray
        Per selected output layer, model output at the data, ``(n_samples, n_outputs)``.
    decomp_goal : list of ndarray or None
        What the attributions of a sample should sum to (e.g. ``f(x) - f(x_ref)``), same
        layout as ``predictions``; None for methods without a goal.
    goal_description : str, optional
        Human-readable form of the goal, shown in ``repr``.
    channels_first : bool
        Layout of ``values`` / ``inputs`` for inputs of rank >= 2.

    Examples
    --------
    >>> import torch
    >>> from sknn_explain import Gradient
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 2))
    >>> result = Gradient().fit(net).explain(torch.ones(4, 3))
    >>> result.to_numpy().shape
    (4, 3, 2)
    >>> sorted(result.to_frame().columns)[:3]
    ['channel', 'data', 'decomp_goal']
    """

    def __init__(
        self,
        method: str,
        values: list[list[np.ndarray]],
        inputs: list[np.ndarray],
        input_names: list[list[list[str]]],
        output_names: list[list],
        output_layers: list[int],
        output_idx: list[np.ndarray],
        predictions: list[np.ndarray],
        decomp_goal: list[np.ndarray] | None = None,
        goal_description: str | None = None,
        channels_first: bool = True,
    ) -> None:
        self.method = method
        self._values = values
        self._inputs = [_read_only(x) for x in inputs]  # may view the user's X: never writable
        self.input_names = input_names
        self.output_names = output_names
        self.output_layers = output_layers
        self.output_idx = output_idx
        self._predictions = predictions
        self._goal = decomp_goal
        self.goal_description = goal_description
        self.channels_first = channels_first
        #: the encoded-space result behind per-column values (pipelines), else None
        self._encoded: Attribution | None = None
        #: the user's row labels (a DataFrame's index), else None (0-based positions).
        self.row_index: pd.Index | None = None
        #: for pipelines: "network" (attributions on the network's inputs, i.e. after the
        #: preprocessing, one value per original column) or "raw" (scalers folded into the
        #: network: attributions in raw units); None for plain networks.
        self.input_space: str | None = None

    # ------------------------------------------------------------------ column groups
    def group_columns(self, groups: object, raw_inputs: np.ndarray) -> Attribution:
        """A new Attribution with the encoded features summed per original column.

        Parameters
        ----------
        groups : ColumnGroups
            Encoded feature indices per original column (see ``sknn_explain._groups``).
        raw_inputs : ndarray of object, ``(n, n_columns)``
            The user's raw values, one column per group.

        Returns
        -------
        Attribution
            ``values`` / ``to_numpy()`` / ``to_frame()`` per original column; the encoded
            view stays available with ``level="encoded"`` and :attr:`encoded`.
        """
        if len(self._inputs) != 1 or self._inputs[0].ndim != 2:
            raise ValueError("column groups apply to a single tabular input")
        values = [[sum_groups(layer[0], groups.groups, axis=1)] for layer in self._values]
        out = Attribution(
            self.method, values, [raw_inputs], [[list(groups.names)]], self.output_names,
            self.output_layers, self.output_idx, self._predictions, self._goal,
            self.goal_description, self.channels_first,
        )
        out._encoded = self
        out.row_index = self.row_index
        out.input_space = self.input_space
        return out

    @property
    def encoded(self) -> Attribution:
        """The attributions per encoded feature (what the network receives).

        For a pipeline with preprocessing (``ColumnTransformer``, ``OneHotEncoder``, ...)
        this is one value per encoded column (e.g. one per one-hot column), with the encoded
        data as ``inputs``; otherwise the result itself.
        """
        return self if self._encoded is None else self._encoded

    @property
    def encoded_names(self) -> list[str]:
        """Names of the encoded features (``get_feature_names_out`` of the preprocessing)."""
        return [str(n) for n in self.encoded.input_names[0][-1]]

    def _level(self, level: str) -> Attribution:
        if level == "original":
            return self
        if level == "encoded":
            return self.encoded
        raise ValueError(f"level must be 'original' or 'encoded', got {level!r}")

    # ------------------------------------------------------------------ accessors
    @property
    def values(self):
        """The attributions (same as :meth:`to_numpy`)."""
        return self.to_numpy()

    def to_numpy(self, level: str = "original"):
        """Attributions as numpy: an array, or innsight-style lists for several inputs/outputs.

        Parameters
        ----------
        level : {"original", "encoded"}
            Per original column (default) or per encoded feature (a pipeline's
            preprocessing output, e.g. one value per one-hot column). Without
            preprocessing both are the same.

        Returns
        -------
        ndarray or list of list of ndarray
            ``(n_samples, *input_shape, n_outputs)`` for one input and one output layer;
            else ``values[output_layer][input]`` (innsight's nesting).
        """
        return _squeeze(self._level(level)._values)

    def to_tensor(self):
        """Attributions as torch tensors, nested like :meth:`to_numpy`.

        Returns
        -------
        torch.Tensor or list of list of torch.Tensor
            The values of :meth:`to_numpy` as CPU tensors (sharing their memory).
        """
        return _squeeze([[torch.from_numpy(v) for v in layer] for layer in self._values])

    @property
    def inputs(self):
        """The explained data (array, or list of arrays for several inputs)."""
        return self._inputs[0] if len(self._inputs) == 1 else list(self._inputs)

    @property
    def predictions(self):
        """Model output at the data for the selected nodes, ``(n_samples, n_outputs)``."""
        return self._predictions[0] if len(self._predictions) == 1 else list(self._predictions)

    @property
    def decomp_goal(self):
        """What each sample's attributions should sum to, or None when the method has no goal."""
        if self._goal is None:
            return None
        return self._goal[0] if len(self._goal) == 1 else list(self._goal)

    @property
    def decomp_sum(self):
        """Sum of the attributions over all input features (and inputs): ``(n, n_outputs)``."""
        sums = [self._layer_sum(layer) for layer in self._values]
        return sums[0] if len(sums) == 1 else sums

    @staticmethod
    def _layer_sum(layer: Sequence[np.ndarray]) -> np.ndarray:
        return sum(v.reshape(v.shape[0], -1, v.shape[-1]).sum(axis=1) for v in layer)

    @property
    def n_samples(self) -> int:
        """The number of explained samples (rows of ``X``)."""
        return self._inputs[0].shape[0]

    @property
    def n_inputs(self) -> int:
        """The number of model inputs (1 unless the model takes several tensors)."""
        return len(self._inputs)

    @property
    def input_shapes(self) -> list[tuple[int, ...]]:
        """Per-sample shape of each input in model layout (channels first)."""
        return [tuple(len(axis) for axis in names) for names in self.input_names]

    @property
    def raw_values(self) -> list[list[np.ndarray]]:
        """``values[l][i]`` without innsight's squeezing (always nested lists)."""
        return self._values

    # ------------------------------------------------------------------ long form
    def _model_layout(self, v: np.ndarray) -> np.ndarray:
        # v: (n, *shape, k) in user layout -> channels first
        if self.channels_first or v.ndim <= 3:
            return v
        return np.moveaxis(v, -2, 1)

    def to_frame(self, level: str = "original") -> pd.DataFrame:
        """Long-form DataFrame with innsight's columns.

        ``level="encoded"`` gives one row per encoded feature (a pipeline's preprocessing
        output) instead of one per original column.

        One row per sample x input position x output node: ``data`` ("data_1", ...),
        ``model_input`` ("Input_1", ...), ``model_output`` ("Output_1", ...), ``feature``
        (tabular feature / signal position / image row), ``feature_2`` (image column),
        ``channel``, ``output_node`` (output name), ``value``, ``pred``, ``decomp_sum``,
        ``decomp_goal`` (NaN when the method has none) and ``input_dimension`` (1 tabular,
        2 signal, 3 image), plus ``index``: the row's label in the explained DataFrame
        (its index), or its 0-based position for arrays and tensors, so results join back
        onto the data (``frame.merge(X, left_on="index", right_index=True)``). Name columns
        are ordered categoricals (data order), which is exactly what seaborn wants.

        Parameters
        ----------
        level : {"original", "encoded"}, default="original"
            Rows per original column, or per encoded feature (a pipeline's preprocessing
            output, e.g. one per one-hot column).

        Returns
        -------
        pandas.DataFrame
            One row per sample x input position x output node, the columns above.

        Raises
        ------
        ValueError
            For an input of rank above 3 (per sample).
        """
        if self._level(level) is not self:
            return self._encoded.to_frame()
        frames = []
        n = self.n_samples
        data_names = np.array([f"data_{i + 1}" for i in range(n)], dtype=object)
        labels = np.arange(n) if self.row_index is None else np.asarray(self.row_index)
        for li, layer in enumerate(self._values):
            out_layer = self.output_layers[li]
            dsum = self._layer_sum(layer)
            pred = self._predictions[li]
            goal = self._goal[li] if self._goal is not None else None
            node_names = np.array([str(o) for o in self.output_names[li]], dtype=object)
            for ii, v in enumerate(layer):
                vm = self._model_layout(v)
                shape = vm.shape[1:-1]
                rank = len(shape)
                if rank > 3:
                    raise ValueError(
                        f"to_frame supports inputs of rank 1-3 (tabular, signal, image); input "
                        f"{ii + 1} has per-sample shape {shape}"
                    )
                grid = np.indices(vm.shape).reshape(vm.ndim, -1)
                i_n, i_k = grid[0], grid[-1]
                names = [np.asarray(ax, dtype=object) for ax in self.input_names[ii]]
                none = np.full(grid.shape[1], None, dtype=object)
                if rank == 1:
                    feature, feature_2, channel = names[0][grid[1]], none, none
                elif rank == 2:
                    channel, feature, feature_2 = names[0][grid[1]], names[1][grid[2]], none
                else:
                    channel = names[0][grid[1]]
                    feature, feature_2 = names[1][grid[2]], names[2][grid[3]]
                frames.append(pd.DataFrame({
                    "data": data_names[i_n],
                    "model_input": f"Input_{ii + 1}",
                    "model_output": f"Output_{out_layer + 1}",
                    "feature": feature,
                    "feature_2": feature_2,
                    "channel": channel,
                    "output_node": node_names[i_k],
                    "value": vm.reshape(-1),
                    "pred": pred[i_n, i_k],
                    "decomp_sum": dsum[i_n, i_k],
                    "decomp_goal": goal[i_n, i_k] if goal is not None else np.nan,
                    "input_dimension": rank,
                    "index": labels[i_n],
                }))
        df = pd.concat(frames, ignore_index=True)
        for col in ["data", "model_input", "model_output", "feature", "feature_2", "channel",
                    "output_node"]:
            cats = pd.unique(df[col].dropna())
            df[col] = pd.Categorical(df[col], categories=cats, ordered=True)
        return df[FRAME_COLUMNS]

    # ------------------------------------------------------------------ display
    def __repr__(self) -> str:
        flat = np.concatenate([v.ravel() for layer in self._values for v in layer])
        finite = flat[np.isfinite(flat)]
        shapes = [tuple(v.shape) for layer in self._values for v in layer]
        shape = shapes[0] if len(shapes) == 1 else shapes
        outs = self.output_names[0] if len(self.output_names) == 1 else self.output_names
        if finite.size:
            stats = (f"min={finite.min():.4g}, median={np.median(finite):.4g}, "
                     f"max={finite.max():.4g}")
        else:
            stats = "min=nan, median=nan, max=nan"
        goal = f", goal='{self.goal_description}'" if self.goal_description else ""
        return (f"Attribution(method='{self.method}', shape={shape}, outputs={outs}, {stats}, "
                f"nan={int(np.isnan(flat).sum())}{goal})")

    # ------------------------------------------------------------------ plots
    def plot_local(
        self,
        data_idx=0,
        output_idx=None,
        output_label=None,
        aggr_channels="sum",
        same_scale: bool = False,
        show_preds: bool = True,
        **kwargs,
    ):
        """Plot individual samples' attributions: bars, signal bars or image heatmaps.

        Thin wrapper of :func:`sknn_explain.plotting.plot_local` (see there for all
        arguments); returns a seaborn FacetGrid (an Axes with ``ax=``, a plotly Figure with
        ``as_plotly=True``). :meth:`plot` is the same method.

        Parameters
        ----------
        data_idx : int or list of int, default=0
            0-based samples to plot.
        output_idx : int, list of int or list of (list of int or None), optional
            0-based output nodes (computed by ``explain``); default: every computed node.
        output_label : label or list of labels, optional
            Output nodes by name instead of index.
        aggr_channels : {"sum", "mean", "norm"}, callable or None, default="sum"
            How signal / image channels are reduced.
        same_scale : bool, default=False
            Share one value scale across inputs too (panels of one input always do).
        show_preds : bool, default=True
            Add the prediction, the attributions' sum and the goal to the panel titles.
        **kwargs
            The keyword-only arguments of :func:`sknn_explain.plotting.plot_local`
            (``show_input``, ``kind``, ``max_display``, ``ax``, ``as_plotly``, ...).

        Returns
        -------
        seaborn.FacetGrid, matplotlib Axes (when ``ax`` is given) or plotly Figure
            The figure; ``grid.data`` holds the tidy data drawn.

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> import torch
        >>> from sknn_explain import Gradient
        >>> res = Gradient().fit(torch.nn.Linear(3, 2)).explain(torch.ones(4, 3))
        >>> res.plot_local(output_idx=[0, 1]).axes.shape
        (1, 2)
        """
        return plot_local(
            self, data_idx=data_idx, output_idx=output_idx, output_label=output_label,
            aggr_channels=aggr_channels, same_scale=same_scale, show_preds=show_preds, **kwargs,
        )

    def plot_global(
        self,
        output_idx=None,
        output_label=None,
        data_idx="all",
        ref_data_idx=None,
        preprocess="auto",
        kind=None,
        **kwargs,
    ):
        """Summarise attributions over samples: box / violin / strip / bar / beeswarm / heatmap.

        Thin wrapper of :func:`sknn_explain.plotting.plot_global` (see there for all
        arguments, e.g. ``aggr_channels``, ``same_scale``, ``input_idx``, ``ax``,
        ``as_plotly``; examples there).

        Parameters
        ----------
        output_idx, output_label : optional
            Output nodes, as in :meth:`plot_local` (default: the first computed node).
        data_idx : "all" or list of int, default="all"
            0-based samples to summarise.
        ref_data_idx : int, optional
            A sample to highlight (tabular and signal inputs).
        preprocess : "auto", callable or None, default="auto"
            Element-wise function of the attributions before summarising (``"auto"``:
            ``np.abs``, signed values for ``kind="beeswarm"``).
        kind : {"box", "violin", "strip", "bar", "beeswarm", "heatmap"}, optional
            The summary; default "box" for tabular / signal inputs, "heatmap" for images.
        **kwargs
            The keyword-only arguments of :func:`sknn_explain.plotting.plot_global`.

        Returns
        -------
        seaborn.FacetGrid, matplotlib Axes (when ``ax`` is given) or plotly Figure
            The figure.
        """
        return plot_global(
            self, output_idx=output_idx, output_label=output_label, data_idx=data_idx,
            ref_data_idx=ref_data_idx, preprocess=preprocess, kind=kind, **kwargs,
        )

    def plot_dependence(self, feature, color_by="auto", output_idx=None, **kwargs):
        """shap-style dependence plot: one feature's attribution against its value.

        Thin wrapper of :func:`sknn_explain.plotting.plot_dependence` (see there for all
        arguments and examples).

        Parameters
        ----------
        feature : int or str
            0-based feature index or feature name.
        color_by : "auto", int, str or None, default="auto"
            The colouring feature (``"auto"``: the strongest interaction proxy; None: one
            colour).
        output_idx : int or list of int, optional
            0-based output nodes (default: every computed node).
        **kwargs
            The other arguments of :func:`sknn_explain.plotting.plot_dependence`
            (``output_label``, ``data_idx``, ``ax``, ``as_plotly``, ...).

        Returns
        -------
        seaborn.FacetGrid, matplotlib Axes (when ``ax`` is given) or plotly Figure
            The figure.
        """
        return plot_dependence(self, feature, color_by=color_by, output_idx=output_idx,
                               **kwargs)

    # the same method as plot_local, documented by its docstring (a #: comment would replace it)
    plot = plot_local
