"""Column groups: map the network's encoded input features to the user's original columns.

A preprocessing step such as a ``ColumnTransformer`` with a ``OneHotEncoder`` turns
one original column (``"city"``) into several encoded features (``"cat__city_Paris"``,
...). Attributions are computed on the encoded features (what the network actually
receives) and then summed per original column, so completeness (sum over columns =
decomposition goal) still holds in the original view.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["ColumnGroups", "sum_groups"]


@dataclass(frozen=True)
class ColumnGroups:
    """Which encoded features belong to which original column.

    Parameters
    ----------
    names : list of str
        The original column names, in the user's order.
    groups : list of list of int
        ``groups[j]`` lists the encoded feature indices produced from original
        column ``names[j]``. A group may be empty (a dropped column: its
        attribution is 0). Every encoded index appears in at most one group.
    encoded_names : list of str
        The names of the encoded features (e.g. from ``get_feature_names_out``).
    """

    names: list[str]
    groups: list[list[int]]
    encoded_names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.names) != len(self.groups):
            raise ValueError(
                f"ColumnGroups: {len(self.names)} names but {len(self.groups)} groups"
            )
        seen: set[int] = set()
        n_enc = len(self.encoded_names)
        for name, group in zip(self.names, self.groups):
            for i in group:
                if i < 0 or (n_enc and i >= n_enc):
                    raise ValueError(
                        f"ColumnGroups: column {name!r} maps to encoded index {i}, "
                        f"outside 0..{n_enc - 1}"
                    )
                if i in seen:
                    raise ValueError(
                        f"ColumnGroups: encoded index {i} belongs to more than one column"
                    )
                seen.add(i)

    @property
    def n_original(self) -> int:
        """Number of original columns."""
        return len(self.names)

    @property
    def n_encoded(self) -> int:
        """Number of encoded features."""
        return len(self.encoded_names)

    def sum(self, values: np.ndarray, axis: int = 1) -> np.ndarray:
        """Sum ``values`` over each group along ``axis`` (see :func:`sum_groups`)."""
        return sum_groups(values, self.groups, axis=axis)


def sum_groups(values: np.ndarray, groups: list[list[int]], axis: int = 1) -> np.ndarray:
    """Sum encoded-feature values into one value per group.

    Parameters
    ----------
    values : ndarray
        Array whose ``axis`` runs over the encoded features.
    groups : list of list of int
        Encoded indices per original column; an empty group gives 0.
    axis : int, default=1
        The encoded-feature axis.

    Returns
    -------
    ndarray
        Same shape as ``values`` except ``axis`` has length ``len(groups)``;
        same dtype as ``values``.
    """
    arr = np.asarray(values)
    axis = axis % arr.ndim
    moved = np.moveaxis(arr, axis, 0)
    out = np.zeros((len(groups),) + moved.shape[1:], dtype=arr.dtype)
    for j, group in enumerate(groups):
        if len(group):
            out[j] = moved[list(group)].sum(axis=0)
    return np.moveaxis(out, 0, axis)
