"""How inputs and outputs are named, in one place.

* output nodes without names of their own are ``Y1, Y2, ...`` for a model with one output
  layer and ``Y1_1, Y1_2, ..., Y2_1, ...`` (layer, node) for a model with several
  (:func:`default_output_names`), on every path: converted graphs, plain module copies,
  scikit-learn estimators, prediction functions and the functional API;
* class labels name the units of an output layer when they fit it; a single unit of a
  binary classifier is ``classes_[1]`` (:func:`class_names_for`), as in scikit-learn and
  innsight;
* user-given names are checked against the shapes by :func:`normalize_names` (inputs, per
  axis) and :func:`normalize_output_names` (outputs, per output layer).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "class_names_for", "default_output_names", "normalize_names", "normalize_output_names",
    "output_names_or_default",
]


def default_output_names(dims: Sequence[int]) -> list[list[str]]:
    """Default names of every output node, per output layer.

    Examples
    --------
    >>> default_output_names([3])
    [['Y1', 'Y2', 'Y3']]
    >>> default_output_names([2, 1])
    [['Y1_1', 'Y1_2'], ['Y2_1']]
    """
    if len(dims) == 1:
        return [[f"Y{j + 1}" for j in range(dims[0])]]
    return [[f"Y{layer + 1}_{j + 1}" for j in range(k)] for layer, k in enumerate(dims)]


def output_names_or_default(dims: Sequence[int], given: Sequence | None) -> list[list]:
    """Per output layer: ``given[layer]`` when it names exactly its ``k`` nodes, else the
    defaults of :func:`default_output_names`.

    Examples
    --------
    >>> output_names_or_default([2, 2], [["a", "b"], None])
    [['a', 'b'], ['Y2_1', 'Y2_2']]
    """
    defaults = default_output_names(dims)
    names = []
    for layer, k in enumerate(dims):
        g = given[layer] if given is not None and layer < len(given) else None
        names.append(list(g) if g is not None and len(g) == k else defaults[layer])
    return names


def class_names_for(classes: Sequence | None, k: int) -> list | None:
    """Names of a ``k``-unit output from class labels (one unit for two classes:
    ``classes[1]``); None when they do not fit.

    Examples
    --------
    >>> class_names_for(["no", "yes"], 1)
    ['yes']
    >>> class_names_for(["a", "b", "c"], 2) is None
    True
    """
    if classes is None:
        return None
    classes = list(classes)
    if len(classes) == k:
        return classes
    if k == 1 and len(classes) == 2:
        return [classes[1]]
    return None


def normalize_names(names: object, shapes: Sequence[tuple[int, ...]], what: str) -> list:
    """innsight-style input names -> ``[input][axis][name]`` checked against ``shapes``.

    Accepts a flat list (one tabular input), a list per axis (one input) or a list of those.

    Raises
    ------
    ValueError
        Names that do not fit the shapes, naming ``what``.
    """
    def is_flat(v: object) -> bool:
        return isinstance(v, Sequence) and not isinstance(v, str) and all(
            not isinstance(x, Sequence) or isinstance(x, str) for x in v)

    if is_flat(names):
        nested = [[list(names)]]
    elif isinstance(names, Sequence) and all(is_flat(a) for a in names):
        nested = [[list(a) for a in names]]
    elif isinstance(names, Sequence) and all(
        isinstance(i, Sequence) and all(is_flat(a) for a in i) for i in names
    ):
        nested = [[list(a) for a in i] for i in names]
    else:
        raise ValueError(f"{what} must be a list of names per axis (per input), got {names!r}")
    if len(nested) == 1 and len(shapes) > 1 and len(nested[0]) == len(shapes):
        nested = [[a] if isinstance(a, list) and is_flat(a) else a for a in nested[0]]
    if len(nested) != len(shapes):
        raise ValueError(f"{what} has names for {len(nested)} input(s), the model has "
                         f"{len(shapes)}")
    for i, (n, s) in enumerate(zip(nested, shapes)):
        if [len(a) for a in n] != list(s):
            raise ValueError(
                f"{what} for input {i} have lengths {[len(a) for a in n]}, but the input "
                f"shape is {tuple(s)}"
            )
    return [[[str(x) for x in a] for a in n] for n in nested]


def normalize_output_names(names: object, n_outputs: int) -> list:
    """Output names -> one list of node names per output layer (``n_outputs`` of them).

    Raises
    ------
    ValueError
        Not a list of names, or not one list per output layer.
    """
    if isinstance(names, Sequence) and not isinstance(names, str) and names and all(
        isinstance(x, Sequence) and not isinstance(x, str) for x in names
    ):
        nested = [list(x) for x in names]
    elif isinstance(names, Sequence) and not isinstance(names, str):
        nested = [list(names)]
    else:
        raise ValueError(f"output_names must be a list of names (per output), got {names!r}")
    if len(nested) != n_outputs:
        raise ValueError(f"output_names has {len(nested)} list(s), the model has {n_outputs} "
                         "output(s)")
    return nested
