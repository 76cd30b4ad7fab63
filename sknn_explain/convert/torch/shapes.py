"""Values and shapes of a traced program: the recorded run on an example batch, and the
input shapes the model itself implies."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import fx, nn

__all__ = ["Recorder", "infer_input_shapes"]


class Recorder(fx.Interpreter):
    """Runs the traced program and keeps every node's value."""

    def __init__(self, gm: fx.GraphModule) -> None:
        super().__init__(gm)
        self.values: dict[str, object] = {}

    def run_node(self, n: fx.Node) -> object:
        result = super().run_node(n)
        self.values[n.name] = result
        return result


def infer_input_shapes(gm: fx.GraphModule, inputs: Sequence[str]) -> list | None:
    """Input shapes implied by the model: an input used directly by a Linear is ``(in,)``."""
    shapes = []
    nodes = {n.name: n for n in gm.graph.nodes}
    for name in inputs:
        found = None
        for user in nodes[name].users:
            if user.op == "call_module":
                mod = gm.get_submodule(user.target)
                if isinstance(mod, nn.Linear) and user.args and user.args[0] is nodes[name]:
                    found = (int(mod.in_features),)
            elif user.op == "call_function" and user.target is F.linear:
                w = user.args[1] if len(user.args) > 1 else user.kwargs.get("weight")
                if isinstance(w, fx.Node) and w.op == "get_attr":
                    value: object = gm
                    for part in str(w.target).split("."):
                        value = getattr(value, part, None)
                    if isinstance(value, torch.Tensor) and value.ndim == 2:
                        found = (int(value.shape[1]),)
        if found is None:
            return None
        shapes.append(found)
    return shapes

