"""What an fx node is and where it comes from, for error messages
(``nn.LSTM at 'encoder.rnn'``, ``function torch.sort at the model's forward (node 'sort',
net.py:12)``)."""

from __future__ import annotations

import operator
import os
import re

import torch
from torch import fx

__all__ = ["what", "where"]


def _user_frame(node: fx.Node) -> str:
    """``file.py:line`` of the user code that created ``node`` (if recorded)."""
    trace = node.stack_trace or ""
    frames = re.findall(r'File "([^"]+)", line (\d+)', trace)
    torch_dir = os.path.dirname(torch.__file__)
    here = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
    for path, line in reversed(frames):
        if not path.startswith(torch_dir) and not path.startswith(here):
            return f"{os.path.basename(path)}:{line}"
    return ""


def _module_path(node: fx.Node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    if stack:
        last = list(stack.values())[-1]
        path = last[0] if isinstance(last, tuple) else str(last)
        return path
    return ""


def where(node: fx.Node) -> str:
    if node.op == "call_module":
        return f"'{node.target}'"
    path = _module_path(node)
    place = f"'{path}'" if path else "the model's forward"
    frame = _user_frame(node)
    return f"{place} (node '{node.name}'{', ' + frame if frame else ''})"


def _fn_name(fn: object) -> str:
    mod = getattr(fn, "__module__", None) or ""
    name = getattr(fn, "__name__", repr(fn))
    if mod.startswith("torch.nn.functional") or mod == "torch._C._nn":
        return f"F.{name}"
    if mod == "_operator" or fn in vars(operator).values():
        return {"getitem": "tensor indexing / slicing x[...]"}.get(name, f"operator.{name}")
    if mod.startswith("torch"):
        return f"torch.{name}"
    return f"{mod}.{name}" if mod else name


def what(node: fx.Node, gm: fx.GraphModule) -> str:
    if node.op == "call_module":
        cls = type(gm.get_submodule(node.target))
        prefix = "nn." if cls.__module__.startswith("torch.nn") else f"{cls.__module__}."
        return f"{prefix}{cls.__name__}"
    if node.op == "call_method":
        return f"tensor method .{node.target}()"
    name = _fn_name(node.target)
    return name if name.startswith("tensor") else f"function {name}"

