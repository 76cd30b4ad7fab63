"""Which output nodes an explanation covers: ``output_idx`` / ``output_label`` resolved.

* :func:`resolve_outputs` turns ``output_idx`` / ``output_label`` into per-layer indices
  (default: the first ten nodes of the first output layer, as innsight).
* :class:`OutputSelection` holds them, picks the selected columns of model outputs and
  splits a trailing ``K_total`` axis back per output layer.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["DEFAULT_N_OUTPUTS", "OutputSelection", "label_key", "resolve_outputs"]

#: output nodes explained when neither ``output_idx`` nor ``output_label`` is given
DEFAULT_N_OUTPUTS = 10


@dataclass
class OutputSelection:
    """Selected output nodes: ``indices[l]`` for output layer ``layers[l]``."""

    layers: list[int]
    indices: list[np.ndarray]
    names: list[list]

    @property
    def sizes(self) -> list[int]:
        return [len(i) for i in self.indices]

    def pick(self, outs: Sequence[torch.Tensor]) -> torch.Tensor:
        """Concatenate the selected columns of every output layer: ``(n, K_total)``."""
        cols = [
            outs[layer][:, torch.as_tensor(idx, device=outs[layer].device)]
            for layer, idx in zip(self.layers, self.indices)
        ]
        return torch.cat(cols, dim=1)

    def split(self, t: torch.Tensor, dim: int = -1) -> list[torch.Tensor]:
        """Split a trailing ``K_total`` axis back into one tensor per selected layer."""
        return list(torch.split(t, self.sizes, dim=dim))


def _per_layer(arg: object, n_layers: int, what: str) -> list:
    """Normalise an output_idx / output_label argument to one entry per output layer."""
    if isinstance(arg, (list, tuple)) and any(
        isinstance(a, (list, tuple, np.ndarray)) or a is None for a in arg
    ):
        if len(arg) > n_layers:
            raise ValueError(
                f"{what} has entries for {len(arg)} output layers, but the model has {n_layers}"
            )
        entries = [None if a is None else list(np.atleast_1d(a)) for a in arg]
        return entries + [None] * (n_layers - len(entries))
    values = list(np.atleast_1d(np.asarray(arg, dtype=object))) if not isinstance(
        arg, (list, tuple)
    ) else list(arg)
    return [values] + [None] * (n_layers - 1)


def _plain(value: object) -> object:
    """numpy scalars as Python scalars (so messages show ``1.0``, not ``np.float64(1.0)``)."""
    return value.item() if isinstance(value, np.generic) else value


def label_key(value: object) -> tuple:
    """Match key of an output label: equal keys <=> the labels name the same output node.

    Numbers match by value whatever their type (``1 == 1.0 == np.int64(1)``); strings match
    strings only (``"1"`` does not match ``1``); booleans match booleans only.
    """
    value = _plain(value)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, numbers.Number):
        return ("number", value)
    if isinstance(value, (str, bytes)):
        return ("str", str(value) if isinstance(value, str) else value)
    try:
        hash(value)
    except TypeError:
        return ("repr", repr(value))
    return ("object", value)


def _kind(value: object, plural: bool = False) -> str:
    kind = label_key(value)[0]
    names = {"str": "string", "number": "number", "bool": "bool"}
    word = names.get(kind, type(value).__name__)
    return f"{word}s" if plural else f"a {word}"


def _find_label(label: object, names: Sequence, layer: int) -> int:
    """Index of the output node named ``label`` (see :func:`label_key`)."""
    key = label_key(label)
    hits = [j for j, name in enumerate(names) if label_key(name) == key]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise ValueError(
            f"output_label {_plain(label)!r} matches several nodes of output layer {layer + 1} "
            f"(indices {hits}); select them with output_idx instead"
        )
    shown = [_plain(n) for n in names[:20]]
    more = f" (first 20 of {len(names)})" if len(names) > 20 else ""
    kinds = {_kind(n, plural=True) for n in names}
    why = ""
    if len(kinds) == 1 and _kind(label, plural=True) not in kinds:
        why = (
            f"; {_plain(label)!r} is {_kind(label)} but the labels are {kinds.pop()} "
            "(labels match by value: 1 matches 1.0, but '1' does not match 1)"
        )
    raise ValueError(
        f"unknown output_label {_plain(label)!r} for output layer {layer + 1}; "
        f"known labels: {shown}{more}{why}"
    )


def resolve_outputs(
    output_idx: object,
    output_label: object,
    output_names: list[list],
) -> OutputSelection:
    """Resolve innsight-style output selection (0-based indices here).

    Parameters
    ----------
    output_idx : int, list of int, or list of (list of int or None), optional
        Output node indices of the first output layer, or one entry per output layer.
    output_label : label, list of labels, or list of (list or None), optional
        Output node names (e.g. class labels) instead of indices. Matched by value (see
        :func:`label_key`): ``1`` selects the class ``1.0``; ``"1"`` does not select ``1``.
    output_names : list of list
        Names of every node, per output layer.

    Returns
    -------
    OutputSelection
        Default (both None): the first ten nodes of the first output layer.
    """
    n_layers = len(output_names)
    dims = [len(n) for n in output_names]
    if output_idx is not None and output_label is not None:
        raise ValueError("give either output_idx or output_label, not both")
    if output_idx is None and output_label is None:
        per_layer = [list(range(min(DEFAULT_N_OUTPUTS, dims[0])))] + [None] * (n_layers - 1)
    elif output_idx is not None:
        per_layer = _per_layer(output_idx, n_layers, "output_idx")
        for layer, entry in enumerate(per_layer):
            if entry is None:
                continue
            for i in entry:
                if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
                    raise TypeError(f"output_idx entries must be integers, got {i!r}")
                if not 0 <= int(i) < dims[layer]:
                    raise ValueError(
                        f"output_idx {int(i)} is out of range for output layer {layer + 1} "
                        f"with {dims[layer]} node(s) (valid: 0..{dims[layer] - 1})"
                    )
            per_layer[layer] = [int(i) for i in entry]
    else:
        per_layer = _per_layer(output_label, n_layers, "output_label")
        for layer, entry in enumerate(per_layer):
            if entry is None:
                continue
            per_layer[layer] = [
                _find_label(label, output_names[layer], layer) for label in entry
            ]
    layers, indices, names = [], [], []
    for layer, entry in enumerate(per_layer):
        if entry is None:
            continue
        if len(entry) == 0:
            raise ValueError(f"empty output selection for output layer {layer + 1}")
        if len(set(entry)) != len(entry):
            raise ValueError(f"output selection for output layer {layer + 1} has duplicates")
        layers.append(layer)
        indices.append(np.asarray(entry, dtype=np.int64))
        names.append([output_names[layer][j] for j in entry])
    if not layers:
        raise ValueError("the output selection selects no output node")
    return OutputSelection(layers, indices, names)
