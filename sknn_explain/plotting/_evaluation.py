"""Seaborn plots of explanation-evaluation results: perturbation curves and MPRT similarities."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd


def curves_frame(curves: Mapping[str, tuple[object, object]]) -> pd.DataFrame:
    """Tidy frame ``curve, sample, step, value`` of ``{label: (steps, curves)}``."""
    if not isinstance(curves, Mapping) or not curves:
        raise TypeError(
            "curves must be a non-empty dict {label: (steps, curves)} as returned by the "
            "metrics' *_curve functions"
        )
    frames = []
    for label, pair in curves.items():
        try:
            steps, values = pair
        except (TypeError, ValueError):
            raise TypeError(f"curves[{label!r}] must be a (steps, curves) pair") from None
        steps, values = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
        if values.ndim == 1:
            values = values[None]
        if values.ndim != 2 or values.shape[1] != steps.shape[0]:
            raise ValueError(
                f"curves[{label!r}]: {values.shape[-1]} points per curve but {steps.shape[0]} "
                "steps"
            )
        n, k = values.shape
        frames.append(pd.DataFrame({
            "curve": str(label), "sample": np.repeat(np.arange(n), k),
            "step": np.tile(steps, n), "value": values.reshape(-1),
        }))
    return pd.concat(frames, ignore_index=True)


def plot_perturbation_curves(
    curves: Mapping[str, tuple[object, object]],
    *,
    errorbar: Any = ("pi", 50),
    xlabel: str = "regions removed",
    ylabel: str = "explained output",
    ax: Any = None,
    height: float = 3.5,
    aspect: float = 1.4,
) -> Any:
    """Mean perturbation curves (MoRF, LeRF, random, several methods...) in one plot.

    Parameters
    ----------
    curves : dict
        ``{label: (steps, curves)}`` with the pairs returned by
        :func:`~sknn_explain.metrics.region_perturbation_curve`,
        :func:`~sknn_explain.metrics.road_curve`, :func:`~sknn_explain.metrics.irof_curve`
        or :func:`~sknn_explain.metrics.deletion_curve`.
    errorbar : seaborn errorbar, default=("pi", 50)
        Band around the mean over samples (None for none).
    xlabel, ylabel : str
        The axis labels.
    ax : matplotlib Axes, optional
        Draw into it and return it; otherwise a new :class:`seaborn.FacetGrid`.
    height, aspect : float
        Size of the FacetGrid.

    Returns
    -------
    seaborn.FacetGrid or matplotlib Axes
        ``grid.data`` is the tidy frame ``curve, sample, step, value``.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from sknn_explain.plotting import plot_perturbation_curves
    >>> steps = np.arange(4)
    >>> morf = np.array([[1.0, 0.5, 0.2, 0.1], [0.9, 0.4, 0.3, 0.1]])
    >>> lerf = np.array([[1.0, 0.9, 0.8, 0.1], [0.9, 0.9, 0.7, 0.1]])
    >>> grid = plot_perturbation_curves({"MoRF": (steps, morf), "LeRF": (steps, lerf)})
    >>> grid.data.shape, grid.data["curve"].unique().tolist()
    ((16, 4), ['MoRF', 'LeRF'])
    """
    import seaborn as sns

    data = curves_frame(curves)
    kw = dict(x="step", y="value", hue="curve", errorbar=errorbar)
    if ax is not None:
        sns.lineplot(data=data, ax=ax, **kw)
        ax.set(xlabel=xlabel, ylabel=ylabel)
        return ax
    grid = sns.relplot(data=data, kind="line", height=height, aspect=aspect, **kw)
    grid.set_axis_labels(xlabel, ylabel)
    return grid


def plot_randomisation(
    frame: pd.DataFrame,
    *,
    errorbar: Any = ("pi", 50),
    ax: Any = None,
    height: float = 3.5,
    aspect: float = 1.4,
) -> Any:
    """Similarity to the original attributions per randomised layer (MPRT).

    Parameters
    ----------
    frame : pandas.DataFrame
        As returned by :func:`~sknn_explain.metrics.model_parameter_randomisation`.
    errorbar : seaborn errorbar, default=("pi", 50)
        Band around the mean over samples (None for none).
    ax : matplotlib Axes, optional
        Draw into it and return it; otherwise a new :class:`seaborn.FacetGrid`.
    height, aspect : float
        Size of the FacetGrid.

    Returns
    -------
    seaborn.FacetGrid or matplotlib Axes
        Layers on the x axis in randomisation order (output layer first), one line per
        similarity measure; the x tick labels name the layer randomised last.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import torch
    >>> from sknn_explain.metrics import model_parameter_randomisation
    >>> from sknn_explain.plotting import plot_randomisation
    >>> _ = torch.manual_seed(0)
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    >>> def grad(m, X):
    ...     X = torch.as_tensor(X, dtype=torch.float32).requires_grad_(True)
    ...     m(X).sum().backward()
    ...     return X.grad.numpy()
    >>> frame = model_parameter_randomisation(net, torch.randn(5, 4), grad, random_state=0)
    >>> ax = plot_randomisation(frame, ax=matplotlib.pyplot.figure().gca())
    >>> [t.get_text() for t in ax.get_xticklabels()]
    ['2', '0']
    """
    import seaborn as sns

    need = {"step", "layer", "similarity", "value"}
    if not isinstance(frame, pd.DataFrame) or not need <= set(frame.columns):
        raise TypeError(f"frame must be a DataFrame with columns {sorted(need)} "
                        "(model_parameter_randomisation's result)")
    order = frame.drop_duplicates("step").sort_values("step")
    kw = dict(x="step", y="value", hue="similarity", errorbar=errorbar, marker="o")

    def label(axis: Any) -> None:
        axis.set_xticks(order["step"].to_numpy())
        axis.set_xticklabels(order["layer"].astype(str).to_list(), rotation=45, ha="right")
        axis.set(xlabel="layers randomised (cumulative, from the output)",
                 ylabel="similarity to original")

    if ax is not None:
        sns.lineplot(data=frame, ax=ax, **kw)
        label(ax)
        return ax
    grid = sns.relplot(data=frame, kind="line", height=height, aspect=aspect, **kw)
    for axis in grid.axes.flat:
        label(axis)
    return grid
