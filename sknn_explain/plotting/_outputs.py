"""Which output nodes a plot shows and how their titles name them."""

from __future__ import annotations

import numpy as np

from ._checks import is_int
from ._panel import OutputNode
from ._result import AttributionLike


def _per_layer(arg: object) -> dict[int, list]:
    """output_idx / output_label -> {model output layer: entries} (as in ``explain``)."""
    if isinstance(arg, (list, tuple)) and any(
        isinstance(a, (list, tuple, np.ndarray)) or a is None for a in arg
    ):
        return {layer: _entries(a) for layer, a in enumerate(arg) if a is not None}
    return {0: _entries(arg)}


def _entries(a: object) -> list:
    """A scalar, list or array of indices / labels as a flat Python list."""
    if isinstance(a, (list, tuple)):
        return list(a)
    return np.asarray(a, dtype=object).ravel().tolist()


def _is_default_name(node: str, layer: int, i: int, multi: bool) -> bool:
    """Whether ``node`` is the generated name ``Y{i+1}`` / ``Y{layer+1}_{i+1}``."""
    return node == (f"Y{layer + 1}_{i + 1}" if multi else f"Y{i + 1}")


def check_output_names(output_names: object) -> object:
    if output_names is None or isinstance(output_names, dict):
        return output_names
    if isinstance(output_names, (str, bytes)) or not hasattr(output_names, "__len__"):
        raise TypeError(
            f"output_names must be None, a dict {{output index or node name: display name}} "
            f"or a sequence of display names indexed by the 0-based output index, got "
            f"{output_names!r}"
        )
    return list(output_names)


def _display_name(output_names: object, node: str, layer: int, i: int) -> str | None:
    if output_names is None:
        return None
    if isinstance(output_names, dict):
        for key in ((layer, i), i, node):
            if key in output_names:
                return str(output_names[key])
        return None
    names = output_names
    if names and isinstance(names[0], (list, tuple, np.ndarray)):  # per output layer
        names = names[layer] if layer < len(names) else []
    elif layer != 0:
        return None
    if node.lstrip("-").isdigit():  # integer class labels (e.g. a binary sklearn MLP's
        i = int(node)  # single output "1"): names like target_names are indexed by label
    if not 0 <= i < len(names):
        raise ValueError(
            f"output_names has {len(names)} name(s), but output node {node!r} (index {i}) is "
            f"plotted (names are indexed by the integer class label, else by the 0-based "
            f"output index)"
        )
    return str(names[i])


def output_text(node: str, layer: int, i: int, multi: bool, output_names: object = None,
                space: str | None = None) -> str:
    """Title text of an output node, 0-based like ``output_idx``.

    ``output 3`` (generated names ``Y4``), ``benign (output 1)`` (class labels or
    ``output_names``), ``output 2 of layer 1`` (several output layers); the output space
    (``logit`` / ``probability``) is appended when known.
    """
    where = f"output {i}" + (f" of layer {layer}" if multi else "")
    name = _display_name(output_names, node, layer, i)
    if name is None and not _is_default_name(node, layer, i, multi):
        name = node
    if name is None:
        return where + (f" ({space})" if space else "")
    return f"{name} ({where}" + (f", {space})" if space else ")")


def select_outputs(attr: AttributionLike, output_idx: object, output_label: object,
                   output_names: object = None) -> list[OutputNode]:
    """Resolve ``output_idx`` / ``output_label`` among the output nodes the result holds.

    Semantics as in ``explain`` (0-based model indices, an int / list for the first output
    layer, a list of lists per output layer); default: every computed node.
    """
    multi = len(attr.output_layers) > 1
    output_names = check_output_names(output_names)
    space = getattr(attr, "output_space", None)
    computed: dict[int, list[tuple[int, int, str]]] = {}
    for layer, idx, names in zip(attr.output_layers, attr.output_idx, attr.output_names):
        computed[int(layer)] = [(int(i), k, str(nm)) for k, (i, nm) in enumerate(zip(idx, names))]

    def make(layer: int, k_entry: tuple[int, int, str]) -> OutputNode:
        i, k, node = k_entry
        pos = attr.output_layers.index(layer)
        label = output_text(node, layer, i, multi, output_names,
                            space if layer == attr.output_layers[0] else None)
        return OutputNode(pos=pos, k=k, layer=layer, node=node, label=label, index=i)

    def describe() -> str:
        return "; ".join(
            f"output layer {layer + 1}: {[i for i, _, _ in entries]} ({[n for _, _, n in entries]})"
            for layer, entries in computed.items()
        )

    if output_idx is not None and output_label is not None:
        raise ValueError("give either output_idx or output_label, not both")
    if output_idx is None and output_label is None:
        return [make(layer, entry) for layer, entries in computed.items() for entry in entries]
    per_layer = _per_layer(output_idx if output_idx is not None else output_label)
    selected: list[OutputNode] = []
    for layer, entries in per_layer.items():
        if not entries:
            raise ValueError(f"empty output selection for output layer {layer + 1}")
        if layer not in computed:
            raise ValueError(
                f"output layer {layer + 1} was not computed by explain(); computed: {describe()}"
            )
        for entry in entries:
            if output_idx is not None:
                if not is_int(entry):
                    raise TypeError(f"output_idx entries must be integers, got {entry!r}")
                match = [c for c in computed[layer] if c[0] == int(entry)]
                what = f"output node {int(entry)}"
            else:
                match = [c for c in computed[layer] if c[2] == str(entry)]
                what = f"output_label {entry!r}"
            if not match:
                raise ValueError(
                    f"{what} of output layer {layer + 1} was not computed by explain(); "
                    f"computed: {describe()}. Explain it first, e.g. "
                    f"explainer.explain(X, output_idx=...)"
                )
            selected.append(make(layer, match[0]))
    if len(set(selected)) != len(selected):
        raise ValueError("the output selection has duplicates")
    return selected
