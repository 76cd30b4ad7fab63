"""Operations that return a tuple of tensors (``nn.MultiheadAttention``): a handler marked
``multi_output = True`` returns one graph name per item (None: an item that is not a graph
value), and the ``out[i]`` that reads an item resolves to that name."""

from __future__ import annotations

import operator

from torch import fx

__all__ = ["is_multi_output", "tuple_item"]


def is_multi_output(handler: object) -> bool:
    """Whether a handler returns one graph name per item of a tuple-valued operation."""
    return bool(getattr(handler, "multi_output", False))


def tuple_item(cv, node: fx.Node) -> str | None:
    """``out[i]`` of a multi-output operation: the item's graph name (None: not such a
    getitem). Raises for items that are not graph values.

    ``cv`` is the walker's ``Converter`` (not imported here: the walker imports this module).
    """
    if node.op != "call_function" or node.target is not operator.getitem:
        return None
    src = node.args[0]
    items = cv.alias.get(src.name) if isinstance(src, fx.Node) else None
    if not isinstance(items, tuple):
        return None
    i = cv.val(node.args[1])
    item = items[i] if isinstance(i, int) and -len(items) <= i < len(items) else None
    if item is None and not node.users:
        return ""  # ``out, _ = attn(...)``: an unused item needs no graph value
    if item is None:
        raise cv.unsupported(node, f"item {i!r} of '{src.name}' (e.g. averaged attention "
                             "weights) is not a layer of the graph")
    return item
