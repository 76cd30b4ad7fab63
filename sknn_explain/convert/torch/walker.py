"""Walks a traced program with its recorded values and emits graph nodes.

The walker knows the data flow (which values depend on the model input, aliases of in-place
operations, the outputs); what each operation becomes is asked of a ``lookup`` (the handler
tables of :mod:`.handlers`). ``bind`` / ``REQ`` / ``as_tuple`` read an fx node's arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import fx

from ...layers import Activation
from ..errors import ConversionError, UnsupportedLayerError
from ..graph import Graph
from ..nodes import NodeBuilder, input_name
from .describe import what, where
from .tuples import is_multi_output, tuple_item

__all__ = ["REQ", "Converter", "Handler", "as_tuple", "bind", "contains_tensor"]

REQ = object()  # marks a required argument in a signature spec


def bind(node: fx.Node, spec: Sequence[tuple[str, object]], skip_self: bool = False) -> dict:
    """Map the node's args / kwargs onto the parameter names of ``spec``."""
    out: dict[str, object] = {}
    args = list(node.args)
    for (name, _), a in zip(spec, args):
        out[name] = a
    for name, default in spec[len(args):]:
        out[name] = node.kwargs.get(name, default)
    for name, a in node.kwargs.items():
        if name in dict(spec):
            out[name] = a
    missing = [k for k, v in out.items() if v is REQ]
    if missing:
        raise ConversionError(f"missing argument(s) {missing} of node {node.name!r}")
    return out


def as_tuple(v: object, nd: int) -> tuple[int, ...]:
    if isinstance(v, (tuple, list)):
        t = tuple(int(x) for x in v)
        return t if len(t) == nd else t * nd if len(t) == 1 else t
    return (int(v),) * nd



def _no_intercept(cv: Converter, node: fx.Node) -> bool:
    return False


class Converter:
    """Walks the traced program with recorded values and emits graph nodes (``lookup``:
    the handler of an fx node, or None)."""

    def __init__(self, gm: fx.GraphModule, inputs: list[str], values: dict, dtype, device,
                 lookup: Callable[[fx.Node, fx.GraphModule], object],
                 intercept: Callable[[Converter, fx.Node], bool] | None = None):
        self.gm, self.values, self.dtype, self.device = gm, values, dtype, device
        self.lookup = lookup
        #: a hook run before a node's handler, True when it handled the node (the
        #: recurrent modules and the views of their states: ``recurrent.intercept``)
        self.intercept = intercept if intercept is not None else _no_intercept
        self.inputs = inputs
        self.builder = NodeBuilder(len(inputs))
        self.alias: dict[str, str] = {}
        self.dynamic: set[str] = set()

    # -- value access
    def is_data(self, a: object) -> bool:
        return (isinstance(a, fx.Node) and a.name in self.dynamic
                and isinstance(self.values.get(a.name), torch.Tensor))

    def data(self, a: object, node: fx.Node) -> str:
        if not self.is_data(a):
            raise UnsupportedLayerError(
                what(node, self.gm), where(node),
                "its tensor operand does not depend on the model input (a constant tensor "
                "cannot be explained)",
            )
        return self.alias[a.name]

    def val(self, a: object) -> object:
        return fx.node.map_arg(a, lambda n: self.values[n.name])

    def shape(self, a: fx.Node) -> tuple[int, ...]:
        return tuple(self.values[a.name].shape)

    def add(self, node: fx.Node, layer, inputs: Sequence[str], suffix: str = "") -> str:
        base = node.name
        if node.op == "call_module":
            base = str(node.target).replace(".", "_")
            if base[:1].isdigit():  # children of an nn.Sequential: "linear_0", "relu_1", ...
                base = f"{type(self.gm.get_submodule(node.target)).__name__.lower()}_{base}"
        return self.builder.add(base + suffix, layer, inputs)

    def unsupported(self, node: fx.Node, reason: str = "") -> UnsupportedLayerError:
        return UnsupportedLayerError(what(node, self.gm), where(node), reason)

    def buf(self, t: object) -> torch.Tensor:
        """A constant in the graph's dtype.

        Python numbers (``x * 0.1``) are converted directly: ``torch.as_tensor(0.1)`` would
        round them through float32, and a double graph would then differ from the model.
        Tensors keep their value (the model computes with exactly that value).
        """
        if isinstance(t, torch.Tensor):
            return t.detach().to(dtype=self.dtype, device=self.device)
        return torch.as_tensor(t, dtype=self.dtype, device=self.device)

    def dim(self, d: object, rank: int, node: fx.Node) -> int:
        d = int(d)
        if not -rank <= d < rank:
            raise self.unsupported(node, f"axis {d} is out of range for rank {rank}")
        d %= rank
        if d == 0:
            raise self.unsupported(node, "it operates along the batch axis")
        return d

    # -- main loop
    def run(self, post: Activation | None) -> Graph:
        for i, name in enumerate(self.inputs):
            self.alias[name] = input_name(i)
            self.dynamic.add(name)
        outputs: list[str] = []
        self.order = list(self.gm.graph.nodes)
        self.position = {n.name: i for i, n in enumerate(self.order)}
        for node in self.gm.graph.nodes:
            if node.op in ("placeholder", "get_attr"):
                continue
            if node.op == "output":
                self.intercept(self, node)  # recurrent states the model returns
                outputs = self.outputs(node)
                continue
            if not any(p.name in self.dynamic for p in node.all_input_nodes):
                continue  # a constant: its recorded value is used where needed
            if self.intercept(self, node):  # LSTM / GRU and the views of their states
                continue
            value = self.values.get(node.name)
            if not isinstance(value, torch.Tensor):
                if contains_tensor(value):
                    handler = self.lookup(node, self.gm)
                    self.check_id_masks(node, handler)
                    if not is_multi_output(handler):
                        raise self.unsupported(node, "it returns several tensors")
                    self.dynamic.add(node.name)
                    self.alias[node.name] = handler(self, node)  # one name per item
                    continue
                # shape arithmetic (x.size(0), x.shape[1], x.dtype, ...): a constant, and so
                # is a tensor built only from it (torch.arange(x.shape[1]), as _scan allows)
                continue
            self.dynamic.add(node.name)
            self.check_constant_write(node, value)
            item = tuple_item(self, node)
            if item is not None:
                self.alias[node.name] = item
                continue
            handler = self.lookup(node, self.gm)
            if handler is None:
                raise self.unsupported(node)
            self.check_id_masks(node, handler)
            self.alias[node.name] = handler(self, node)
            self.rebind_mutated(node)
        if post is not None:
            if not post.elementwise:  # softmax over the last axis of the first output
                rank = len(self.shape(self.output_nodes[0]))
                post = Activation(post.name, dim=self.dim(post.params["dim"], rank,
                                                          self.output_nodes[0]))
            outputs[0] = self.builder.add("output_activation", post, [outputs[0]])
        outputs = self.builder.ensure_node_outputs(outputs)
        return Graph(self.builder.nodes, len(self.inputs), outputs)

    def check_id_masks(self, node: fx.Node, handler: object) -> None:
        """Refuse a padding mask computed from ids (``ids == pad``) anywhere but in the
        attention modules that take it as ``key_padding_mask`` (see :mod:`.attention`)."""
        masks = self.__dict__.get("id_masks")
        if masks and any(p.name in masks for p in node.all_input_nodes) and not getattr(
                handler, "reads_id_masks", False):
            raise self.unsupported(
                node, "it reads a padding mask computed from the ids (ids == pad); such a "
                "mask is supported only as the key_padding_mask of nn.MultiheadAttention / "
                "nn.TransformerEncoderLayer / nn.TransformerEncoder")

    def check_constant_write(self, node: fx.Node, value: torch.Tensor) -> None:
        """Refuse an in-place write of input-dependent values into a constant tensor."""
        for prev in node.all_input_nodes:
            if prev.name not in self.dynamic and self.values.get(prev.name) is value:
                raise self.unsupported(
                    node, "it writes input-dependent values in place into a constant tensor "
                    "(a buffer or parameter of the model)")

    def rebind_mutated(self, node: fx.Node) -> None:
        """Follow an in-place operation (``x.sub_(m)``, ``relu(inplace=True)``, ``x += 1``).

        An in-place operation returns the very tensor object it modified, so every earlier
        value that *is* that object now holds the new value: later uses of it (e.g. the
        model input after ``x.sub_(mean)``) must read the new graph node, as the
        out-of-place equivalent would. In-place writes into a constant (buffer, parameter)
        or into a tensor that shares memory with another live value (a view) are refused.
        """
        value = self.values[node.name]
        new = self.alias[node.name]
        if not isinstance(value, torch.Tensor):
            return
        mutated = False
        for prev in self.order[: self.position[node.name]]:
            if self.values.get(prev.name) is not value:
                continue
            if self.alias[prev.name] != new:
                self.alias[prev.name] = new
                mutated = True
        if not mutated or value.numel() == 0:
            return
        storage = value.untyped_storage().data_ptr()
        here = self.position[node.name]
        for prev in self.order[:here]:
            other = self.values.get(prev.name)
            if (prev.name not in self.dynamic or not isinstance(other, torch.Tensor)
                    or other is value or other.numel() == 0):
                continue
            if other.untyped_storage().data_ptr() != storage:
                continue
            if any(self.position[u.name] > here for u in prev.users):
                raise self.unsupported(
                    node, f"it modifies in place a tensor that shares memory with "
                    f"'{prev.name}' (a view), which is used afterwards; use the out-of-place "
                    "operation")

    def outputs(self, node: fx.Node) -> list[str]:
        leaves: list[object] = []

        def collect(a: object) -> None:
            if isinstance(a, (tuple, list)):
                for b in a:
                    collect(b)
            elif isinstance(a, dict):
                for b in a.values():
                    collect(b)
            else:
                leaves.append(a)

        collect(node.args[0])
        names = []
        self.output_nodes = leaves
        for a in leaves:
            if isinstance(a, fx.Node) and a.name in self.__dict__.get("id_masks", ()):
                raise ConversionError("the model returns a padding mask computed from its ids; "
                                      "only input-dependent floating tensors can be explained")
            if not self.is_data(a):
                raise ConversionError(
                    "the model returns a value that is not an input-dependent tensor "
                    f"({a!r}); only tensors (or tuples of tensors) can be explained"
                )
            names.append(self.alias[a.name])
        return names


def contains_tensor(v: object) -> bool:
    if isinstance(v, torch.Tensor):
        return True
    if isinstance(v, (tuple, list)):
        return any(contains_tensor(x) for x in v)
    if isinstance(v, dict):
        return any(contains_tensor(x) for x in v.values())
    return False



#: emits the graph node(s) of one fx node; returns the name of the node holding its value
Handler = Callable[[Converter, fx.Node], str]
