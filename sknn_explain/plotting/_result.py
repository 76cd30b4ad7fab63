"""What the plots read from a result: the interface of :class:`sknn_explain.Attribution`.

The plotting package takes any object with this interface and never imports
``sknn_explain.attribution`` (which imports the plots for its ``plot_*`` methods), as pandas'
plotting reads a DataFrame through its interface. The helpers undo the result's
innsight-style squeezing (an array for one layer / input, a list for several).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class AttributionLike(Protocol):
    """The public members of :class:`sknn_explain.Attribution` the plots use."""

    method: str
    input_names: list
    output_names: list
    output_layers: list
    output_idx: list
    channels_first: bool

    @property
    def raw_values(self) -> list[list[np.ndarray]]: ...

    @property
    def inputs(self) -> np.ndarray | list[np.ndarray]: ...

    @property
    def predictions(self) -> np.ndarray | list[np.ndarray]: ...

    @property
    def decomp_goal(self) -> np.ndarray | list[np.ndarray] | None: ...

    @property
    def decomp_sum(self) -> np.ndarray | list[np.ndarray]: ...

    @property
    def n_samples(self) -> int: ...

    @property
    def n_inputs(self) -> int: ...


def check_attribution(attr: object) -> AttributionLike:
    """``attr`` if it is a result the plots can draw, else a TypeError / ValueError."""
    if not isinstance(attr, AttributionLike):
        raise TypeError(
            f"expected an sknn_explain.Attribution (the result of Explainer.explain), got "
            f"{type(attr).__name__}"
        )
    for i, names in enumerate(attr.input_names):
        if len(names) > 3:
            raise ValueError(
                f"plots support tabular, signal and image inputs (rank 1-3); input {i + 1} has "
                f"rank {len(names)}"
            )
    return attr


def _per_layer(value: object, n: int) -> list:
    return [value] if n == 1 else list(value)


def inputs_of(attr: AttributionLike) -> list[np.ndarray]:
    """The explained data, one array per model input."""
    return _per_layer(attr.inputs, attr.n_inputs)


def predictions_of(attr: AttributionLike) -> list[np.ndarray]:
    """Model outputs ``(n, n_outputs)``, one array per selected output layer."""
    return _per_layer(attr.predictions, len(attr.raw_values))


def goals_of(attr: AttributionLike) -> list[np.ndarray] | None:
    """Decomposition goals per selected output layer, or None when the method has none."""
    goal = attr.decomp_goal
    return None if goal is None else _per_layer(goal, len(attr.raw_values))


def sums_of(attr: AttributionLike) -> list[np.ndarray]:
    """Sums of the attributions over all inputs ``(n, n_outputs)``, per output layer."""
    return _per_layer(attr.decomp_sum, len(attr.raw_values))
