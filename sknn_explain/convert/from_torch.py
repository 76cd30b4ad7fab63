"""torch ``nn.Module`` s of any architecture -> :class:`Graph`, via ``torch.fx``.

The module (a private, eval-mode copy) is traced symbolically with ``torch.fx``; standard
``torch.nn`` modules stay leaves, user modules and ``nn.Sequential`` are traced through, so
residual connections (``x + f(x)``), ``torch.cat`` branches, several inputs and tuple outputs
all appear as plain data flow. The traced program is then run once on an example batch to
learn every value's shape (needed for reshapes, broadcasting and negative axes), and every
operation on input-dependent tensors is mapped to a graph layer:

========================================  ==================================================
torch                                     graph layer
========================================  ==================================================
``nn.Linear``, ``F.linear``               :class:`~sknn_explain.layers.Dense`
``nn.Conv1d/2d``, ``F.conv1d/2d``         :class:`~sknn_explain.layers.Conv` (non-zero or
                                          asymmetric padding: a :class:`~sknn_explain.
                                          layers.Pad` node first)
``nn.MaxPool1d/2d``, ``nn.AvgPool1d/2d``  :class:`~sknn_explain.layers.MaxPool` /
                                          :class:`~sknn_explain.layers.AvgPool`
adaptive pools, ``x.mean((2, 3))``        ``AdaptiveAvgPool`` / ``AdaptiveMaxPool``
``nn.BatchNorm1d/2d`` (eval statistics)   :class:`~sknn_explain.layers.BatchNorm`
padding modules, ``F.pad``                :class:`~sknn_explain.layers.Pad`
activations (modules, ``F.*``, methods)   :class:`~sknn_explain.layers.Activation`
``+`` / ``-`` of two tensors              :class:`~sknn_explain.layers.Add`
``x * c``, ``x + c``, ``x / c``, ``-x``   :class:`~sknn_explain.layers.ElementwiseAffine`
(``c`` scalar or per-channel constant)
``torch.cat``                             :class:`~sknn_explain.layers.Concat`
flatten / view / reshape / (un)squeeze    :class:`~sknn_explain.layers.Flatten` /
                                          :class:`~sknn_explain.layers.Reshape`
``nn.Dropout*``, ``nn.Identity``,         skipped
``.contiguous()``, ``F.dropout``
========================================  ==================================================

Anything else raises :class:`~sknn_explain.convert.UnsupportedLayerError` naming the module
or function and its position, e.g. ``nn.LSTM at 'encoder.rnn'``.
"""

from __future__ import annotations

import copy
import operator
import os
import re
import threading
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import fx, nn

from .._model import private_copy
from ..layers import (
    Activation,
    AdaptiveAvgPool,
    AdaptiveMaxPool,
    Add,
    AvgPool,
    BatchNorm,
    Concat,
    Conv,
    Dense,
    ElementwiseAffine,
    Flatten,
    MaxPool,
    Pad,
    Reshape,
)
from ._core import NodeBuilder, Source, private_inputs
from .errors import BatchStatisticsError, ConversionError, UnsupportedLayerError
from .graph import Graph, input_name

__all__ = ["TorchSource", "trace_module"]

_REQ = object()  # marks a required argument in a signature spec


# ---------------------------------------------------------------------------- tracing
#: serialises our ``torch.fx`` traces: tracing patches ``nn.Module.__call__`` and
#: ``nn.Module.__getattr__`` process-wide, and two overlapping traces restore each other's
#: patches (one of them then stays installed for good)
_TRACE_LOCK = threading.RLock()
_MODULE_CALL = nn.Module.__call__
_MODULE_GETATTR = nn.Module.__getattr__


class _Tracer(fx.Tracer):
    """Default leaves (``torch.nn`` modules except containers), with source locations.

    While a trace runs, ``torch.fx`` routes *every* module call of the process through the
    tracer. Calls from other threads (another explainer running its model) are passed
    straight to the original ``nn.Module.__call__`` / attribute lookup, so they neither fail
    (``NameError: module is not installed as a submodule``) nor end up in this trace.
    """

    def __init__(self) -> None:
        super().__init__()
        self.record_stack_traces = True
        self._thread = threading.get_ident()

    def call_module(self, m, forward, args, kwargs):  # noqa: D102 - see class docstring
        if threading.get_ident() != self._thread:
            return forward(*args, **kwargs)
        return super().call_module(m, forward, args, kwargs)

    def getattr(self, attr, attr_val, parameter_proxy_cache):  # noqa: D102
        if threading.get_ident() != self._thread:
            return attr_val
        return super().getattr(attr, attr_val, parameter_proxy_cache)


def _trace(tracer: _Tracer, module: nn.Module, concrete: dict) -> fx.Graph:
    """``tracer.trace`` under the process-wide lock; the fx patches never outlive it."""
    with _TRACE_LOCK:
        call = nn.Module.__dict__["__call__"]
        getattr_ = nn.Module.__dict__["__getattr__"]
        try:
            return tracer.trace(module, concrete_args=concrete or None)
        finally:
            # fx restores its patches itself; this guards against a patch left behind
            if nn.Module.__dict__["__call__"] is not call:
                nn.Module.__call__ = call
            if nn.Module.__dict__["__getattr__"] is not getattr_:
                nn.Module.__getattr__ = getattr_


def trace_module(module: nn.Module) -> tuple[fx.GraphModule, list[str]]:
    """Symbolically trace ``module``; return the GraphModule and the input placeholder names.

    ``forward`` parameters with default values are fixed to those defaults.

    Raises
    ------
    ConversionError
        When ``torch.fx`` cannot trace the module (e.g. data-dependent control flow).
    """
    import inspect

    try:
        sig = inspect.signature(module.forward)
    except (TypeError, ValueError):  # pragma: no cover - builtin forwards
        sig = None
    concrete: dict[str, object] = {}
    if sig is not None:
        for p in sig.parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise ConversionError(
                    f"cannot convert {type(module).__name__}: forward(*args / **kwargs) has no "
                    "fixed inputs; wrap it in a module with named tensor arguments"
                )
            if p.default is not p.empty:
                concrete[p.name] = p.default
    tracer = _Tracer()
    try:
        graph = _trace(tracer, module, concrete)
    except Exception as err:  # noqa: BLE001 - fx raises many kinds of errors
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConversionError(
            f"torch.fx could not trace {type(module).__name__}: {type(err).__name__}: {first}. "
            "Models with data-dependent control flow (if/for on tensor values, len(x), ...) "
            "cannot be converted to a layer graph; the gradient methods (Gradient, SmoothGrad, "
            "IntegratedGradients, ExpectedGradients) still work on them"
        ) from err
    gm = fx.GraphModule(tracer.root, graph, type(module).__name__)
    inputs = [n.name for n in gm.graph.nodes if n.op == "placeholder" and not n.args]
    return gm, inputs


def _user_frame(node: fx.Node) -> str:
    """``file.py:line`` of the user code that created ``node`` (if recorded)."""
    trace = node.stack_trace or ""
    frames = re.findall(r'File "([^"]+)", line (\d+)', trace)
    torch_dir = os.path.dirname(torch.__file__)
    here = os.path.dirname(os.path.dirname(__file__))
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


def _where(node: fx.Node) -> str:
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


def _what(node: fx.Node, gm: fx.GraphModule) -> str:
    if node.op == "call_module":
        cls = type(gm.get_submodule(node.target))
        prefix = "nn." if cls.__module__.startswith("torch.nn") else f"{cls.__module__}."
        return f"{prefix}{cls.__name__}"
    if node.op == "call_method":
        return f"tensor method .{node.target}()"
    name = _fn_name(node.target)
    return name if name.startswith("tensor") else f"function {name}"


# ---------------------------------------------------------------------------- helpers
def _bind(node: fx.Node, spec: Sequence[tuple[str, object]], skip_self: bool = False) -> dict:
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
    missing = [k for k, v in out.items() if v is _REQ]
    if missing:
        raise ConversionError(f"missing argument(s) {missing} of node {node.name!r}")
    return out


def _tuple(v: object, nd: int) -> tuple[int, ...]:
    if isinstance(v, (tuple, list)):
        t = tuple(int(x) for x in v)
        return t if len(t) == nd else t * nd if len(t) == 1 else t
    return (int(v),) * nd


_SPATIAL = {
    nn.Conv1d: 1, nn.Conv2d: 2, nn.MaxPool1d: 1, nn.MaxPool2d: 2, nn.AvgPool1d: 1,
    nn.AvgPool2d: 2, nn.AdaptiveAvgPool1d: 1, nn.AdaptiveAvgPool2d: 2, nn.AdaptiveMaxPool1d: 1,
    nn.AdaptiveMaxPool2d: 2,
}


class _Converter:
    """Walks the traced program with recorded values and emits graph nodes."""

    def __init__(self, gm: fx.GraphModule, inputs: list[str], values: dict, dtype, device):
        self.gm, self.values, self.dtype, self.device = gm, values, dtype, device
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
                _what(node, self.gm), _where(node),
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
        return UnsupportedLayerError(_what(node, self.gm), _where(node), reason)

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
                outputs = self.outputs(node)
                continue
            if not any(p.name in self.dynamic for p in node.all_input_nodes):
                continue  # a constant: its recorded value is used where needed
            value = self.values.get(node.name)
            if not isinstance(value, torch.Tensor):
                if _contains_tensor(value):
                    raise self.unsupported(node, "it returns several tensors")
                # shape arithmetic (x.size(0), x.shape[1], x.dtype, ...): a constant, and so
                # is a tensor built only from it (torch.arange(x.shape[1]), as _scan allows)
                continue
            self.dynamic.add(node.name)
            self.check_constant_write(node, value)
            handler = _handler(node, self.gm)
            if handler is None:
                raise self.unsupported(node)
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
            if not self.is_data(a):
                raise ConversionError(
                    "the model returns a value that is not an input-dependent tensor "
                    f"({a!r}); only tensors (or tuples of tensors) can be explained"
                )
            names.append(self.alias[a.name])
        return names


def _contains_tensor(v: object) -> bool:
    if isinstance(v, torch.Tensor):
        return True
    if isinstance(v, (tuple, list)):
        return any(_contains_tensor(x) for x in v)
    if isinstance(v, dict):
        return any(_contains_tensor(x) for x in v.values())
    return False


# ---------------------------------------------------------------------------- handlers
Handler = Callable[[_Converter, fx.Node], str]


def _first(node: fx.Node, cv: _Converter, key: str = "input") -> object:
    return node.args[0] if node.args else node.kwargs.get(key, node.kwargs.get("self"))


def _activation(name: str, **params) -> Handler:
    def h(cv: _Converter, node: fx.Node) -> str:
        x = _first(node, cv)
        return cv.add(node, Activation(name, **params), [cv.data(x, node)])
    return h


def _softmax_like(name: str, spec) -> Handler:
    def h(cv: _Converter, node: fx.Node) -> str:
        b = _bind(node, spec)
        if b.get("dtype") is not None:
            raise cv.unsupported(node, "a dtype argument is not supported")
        rank = len(cv.shape(b["input"]))
        d = b["dim"]
        if d is None:  # torch's legacy implicit dim
            d = 0 if rank in (0, 1, 3) else 1
        return cv.add(node, Activation(name, dim=cv.dim(cv.val(d), rank, node)),
                      [cv.data(b["input"], node)])
    return h


def _param_activation(name: str, spec, params: Sequence[str]) -> Handler:
    def h(cv: _Converter, node: fx.Node) -> str:
        b = _bind(node, spec)
        kw = {p: cv.val(b[p]) for p in params}
        kw = {k: (float(v) if isinstance(v, (int, float)) else v) for k, v in kw.items()}
        return cv.add(node, Activation(name, **kw), [cv.data(b["input"], node)])
    return h


def _skip(cv: _Converter, node: fx.Node) -> str:
    return cv.data(_first(node, cv), node)


def _reshape_handler(flatten_spec=None) -> Handler:
    """Any op that only reshapes its first argument; the shape comes from the recorded value."""

    def h(cv: _Converter, node: fx.Node) -> str:
        x = _first(node, cv)
        src = cv.data(x, node)
        shp_in, shp_out = cv.shape(x), tuple(cv.values[node.name].shape)
        if shp_out == shp_in:
            return src
        if not shp_out or shp_out[0] != shp_in[0]:
            raise cv.unsupported(node, "the reshape mixes the batch axis with other axes")
        if flatten_spec is not None:
            b = _bind(node, flatten_spec)
            rank = len(shp_in)
            s = cv.dim(cv.val(b["start_dim"]), rank, node)
            e = int(cv.val(b["end_dim"])) % rank
            return cv.add(node, Flatten(s, -1 if e == rank - 1 else e), [src])
        if len(shp_out) == 2 and len(shp_in) > 2:
            return cv.add(node, Flatten(1, -1), [src])
        return cv.add(node, Reshape(shp_out[1:]), [src])
    return h


def _flatten_module(cv: _Converter, node: fx.Node) -> str:
    mod = cv.gm.get_submodule(node.target)
    x = node.args[0]
    rank = len(cv.shape(x))
    s = cv.dim(mod.start_dim, rank, node)
    e = int(mod.end_dim) % rank
    if tuple(cv.values[node.name].shape) == cv.shape(x):
        return cv.data(x, node)
    return cv.add(node, Flatten(s, -1 if e == rank - 1 else e), [cv.data(x, node)])


def _per_channel(cv: _Converter, c: object, x_shape: tuple[int, ...], node: fx.Node
                 ) -> torch.Tensor:
    """A constant operand as the per-channel vector of an ElementwiseAffine (axis 1)."""
    t = cv.buf(c)
    if t.numel() == 1:
        return t.reshape(1)
    rank = len(x_shape)
    if t.ndim > rank:
        raise cv.unsupported(node, f"a constant of shape {tuple(t.shape)} changes the shape")
    full = (1,) * (rank - t.ndim) + tuple(t.shape)
    if full[0] != 1 or any(d != 1 for d in full[2:]) or full[1] != x_shape[1]:
        raise cv.unsupported(
            node, f"the constant operand has shape {tuple(t.shape)}; only scalars and constants "
            "varying along the channel / feature axis (axis 1) are supported"
        )
    return t.reshape(-1)


def _affine(cv: _Converter, node: fx.Node, x: str, scale=None, shift=None, suffix="") -> str:
    if scale is None:
        scale = torch.ones_like(shift)
    if shift is None:
        shift = torch.zeros_like(scale)
    if scale.numel() != shift.numel():
        n = max(scale.numel(), shift.numel())
        scale, shift = scale.expand(n).clone(), shift.expand(n).clone()
    return cv.add(node, ElementwiseAffine(scale, shift), [x], suffix)


def _binary(op: str) -> Handler:
    def h(cv: _Converter, node: fx.Node) -> str:
        if node.op == "call_method":
            a, b = node.args[0], node.args[1] if len(node.args) > 1 else node.kwargs["other"]
            alpha = node.kwargs.get("alpha", 1)
        else:
            a = node.args[0] if node.args else node.kwargs["input"]
            b = node.args[1] if len(node.args) > 1 else node.kwargs["other"]
            alpha = node.kwargs.get("alpha", 1)
        if node.kwargs.get("rounding_mode") is not None:
            raise cv.unsupported(node, "rounding division is not differentiable")
        out_shape = tuple(cv.values[node.name].shape)
        da, db = cv.is_data(a), cv.is_data(b)
        alpha = float(cv.val(alpha))
        if da and db:
            if op in ("mul", "div"):
                raise cv.unsupported(node, "products of two input-dependent tensors are not "
                                     "layers of the graph")
            if cv.shape(a) != out_shape or cv.shape(b) != out_shape:
                raise cv.unsupported(node, f"broadcasting {cv.shape(a)} with {cv.shape(b)}")
            xa, xb = cv.alias[a.name], cv.alias[b.name]
            factor = alpha * (-1.0 if op == "sub" else 1.0)
            if factor != 1.0:
                xb = _affine(cv, node, xb, scale=cv.buf([factor]), suffix="_scale")
            return cv.add(node, Add(), [xa, xb])
        if not (da or db):
            raise cv.unsupported(node, "no operand depends on the model input")
        x_node, c = (a, b) if da else (b, a)
        x = cv.alias[x_node.name]
        if cv.shape(x_node) != out_shape:
            raise cv.unsupported(node, "the constant operand broadcasts the tensor to a new shape")
        cvec = _per_channel(cv, cv.val(c), out_shape, node)
        if op == "add":
            return _affine(cv, node, x, shift=cvec * (alpha if da else 1.0),
                           scale=None if da or alpha == 1.0 else cv.buf([alpha]))
        if op == "sub":
            if da:
                return _affine(cv, node, x, shift=-alpha * cvec)
            return _affine(cv, node, x, scale=cv.buf([-alpha]), shift=cvec)
        if op == "mul":
            return _affine(cv, node, x, scale=cvec)
        if da:  # div by constant
            return _affine(cv, node, x, scale=1.0 / cvec)
        raise cv.unsupported(node, "dividing by an input-dependent tensor")
    return h


def _neg(cv: _Converter, node: fx.Node) -> str:
    return _affine(cv, node, cv.data(_first(node, cv), node), scale=cv.buf([-1.0]))


def _cat(cv: _Converter, node: fx.Node) -> str:
    b = _bind(node, [("tensors", _REQ), ("dim", 0)])
    tensors = list(b["tensors"])
    names = [cv.data(t, node) for t in tensors]
    rank = len(cv.shape(tensors[0]))
    return cv.add(node, Concat(cv.dim(cv.val(b["dim"]), rank, node)), names)


def _mean(cv: _Converter, node: fx.Node) -> str:
    b = _bind(node, [("input", _REQ), ("dim", None), ("keepdim", False), ("dtype", None)])
    x = b["input"]
    rank = len(cv.shape(x))
    dims = cv.val(b["dim"])
    if dims is None or rank not in (3, 4) or b["dtype"] is not None:
        raise cv.unsupported(node, "only the mean over all spatial axes (global average "
                             "pooling) is supported")
    dims = {int(d) % rank for d in (dims if isinstance(dims, (tuple, list)) else [dims])}
    if dims != set(range(2, rank)):
        raise cv.unsupported(node, "only the mean over all spatial axes (global average "
                             "pooling) is supported")
    out = cv.add(node, AdaptiveAvgPool(rank - 2, 1), [cv.data(x, node)],
                 "" if cv.val(b["keepdim"]) else "_pool")
    if not cv.val(b["keepdim"]):
        out = cv.add(node, Flatten(1, -1), [out])
    return out


def _conv_padding(cv: _Converter, node: fx.Node, x: str, pad: Sequence[int], nd: int,
                  mode: str = "zeros") -> tuple[str, tuple[int, ...]]:
    """Split F.pad-order ``pad`` into symmetric conv zero padding or a Pad node first."""
    pad = [int(p) for p in pad]
    per_dim = [(pad[2 * (nd - 1 - i)], pad[2 * (nd - 1 - i) + 1]) for i in range(nd)]
    if mode == "zeros" and all(lo == hi for lo, hi in per_dim):
        return x, tuple(lo for lo, _ in per_dim)
    if any(pad):
        x = cv.add(node, Pad(tuple(pad), "constant" if mode == "zeros" else mode, 0.0), [x],
                   "_pad")
    return x, (0,) * nd


def _conv_from(cv, node, x, weight, bias, stride, padding, dilation, groups) -> str:
    nd = weight.ndim - 2
    if nd not in (1, 2):
        raise cv.unsupported(node, f"{nd}d convolutions are not supported")
    dilation = _tuple(dilation, nd)
    if isinstance(padding, str):
        if padding == "valid":
            pad = [0] * (2 * nd)
        else:  # "same": torch puts the odd extra element on the right / bottom
            pad = []
            for d, k in zip(reversed(dilation), reversed(weight.shape[2:])):
                total = d * (k - 1)
                pad += [total // 2, total - total // 2]
    else:
        p = _tuple(padding, nd)
        pad = [v for d in reversed(p) for v in (d, d)]
    x, conv_pad = _conv_padding(cv, node, x, pad, nd)
    layer = Conv(cv.buf(weight), None if bias is None else cv.buf(bias), _tuple(stride, nd),
                 conv_pad, dilation, int(groups))
    return cv.add(node, layer, [x])


def _conv_module(cv: _Converter, node: fx.Node) -> str:
    mod = cv.gm.get_submodule(node.target)
    nd = _SPATIAL[type(mod)] if type(mod) in _SPATIAL else mod.weight.ndim - 2
    x = cv.data(node.args[0], node)
    x, conv_pad = _conv_padding(cv, node, x, mod._reversed_padding_repeated_twice, nd,
                                mod.padding_mode)
    layer = Conv(cv.buf(mod.weight), None if mod.bias is None else cv.buf(mod.bias),
                 _tuple(mod.stride, nd), conv_pad, _tuple(mod.dilation, nd), mod.groups)
    return cv.add(node, layer, [x])


def _conv_fn(cv: _Converter, node: fx.Node) -> str:
    b = _bind(node, [("input", _REQ), ("weight", _REQ), ("bias", None), ("stride", 1),
                     ("padding", 0), ("dilation", 1), ("groups", 1)])
    if cv.is_data(b["weight"]) or cv.is_data(b["bias"]):
        raise cv.unsupported(node, "input-dependent weights")
    return _conv_from(cv, node, cv.data(b["input"], node), cv.val(b["weight"]),
                      cv.val(b["bias"]), cv.val(b["stride"]), cv.val(b["padding"]),
                      cv.val(b["dilation"]), cv.val(b["groups"]))


def _linear_module(cv: _Converter, node: fx.Node) -> str:
    mod = cv.gm.get_submodule(node.target)
    layer = Dense(cv.buf(mod.weight), None if mod.bias is None else cv.buf(mod.bias))
    return cv.add(node, layer, [cv.data(node.args[0], node)])


def _linear_fn(cv: _Converter, node: fx.Node) -> str:
    b = _bind(node, [("input", _REQ), ("weight", _REQ), ("bias", None)])
    if cv.is_data(b["weight"]) or cv.is_data(b["bias"]):
        raise cv.unsupported(node, "input-dependent weights")
    bias = cv.val(b["bias"])
    layer = Dense(cv.buf(cv.val(b["weight"])), None if bias is None else cv.buf(bias))
    return cv.add(node, layer, [cv.data(b["input"], node)])


def _batch_stats(cv: _Converter, node: fx.Node, reason: str) -> BatchStatisticsError:
    return BatchStatisticsError(_what(node, cv.gm), _where(node), reason)


def _bn_layer(cv, node, mean, var, weight, bias, eps) -> BatchNorm:
    if mean is None or var is None:
        raise _batch_stats(cv, node, "BatchNorm without running statistics "
                           "(track_running_stats=False) normalises with the statistics of "
                           "the current batch, even in eval mode")
    mean, var = cv.buf(mean), cv.buf(var)
    scale = torch.rsqrt(var + float(eps))
    if weight is not None:
        scale = scale * cv.buf(weight)
    shift = -mean * scale
    if bias is not None:
        shift = shift + cv.buf(bias)
    return BatchNorm(scale, shift)


def _bn_module(cv: _Converter, node: fx.Node) -> str:
    mod = cv.gm.get_submodule(node.target)
    layer = _bn_layer(cv, node, mod.running_mean, mod.running_var, mod.weight, mod.bias, mod.eps)
    return cv.add(node, layer, [cv.data(node.args[0], node)])


def _bn_fn(cv: _Converter, node: fx.Node) -> str:
    b = _bind(node, [("input", _REQ), ("running_mean", _REQ), ("running_var", _REQ),
                     ("weight", None), ("bias", None), ("training", False), ("momentum", 0.1),
                     ("eps", 1e-5)])
    if cv.val(b["training"]):
        raise _batch_stats(cv, node, "batch_norm(training=True) normalises with the "
                           "statistics of the current batch")
    layer = _bn_layer(cv, node, cv.val(b["running_mean"]), cv.val(b["running_var"]),
                      cv.val(b["weight"]), cv.val(b["bias"]), cv.val(b["eps"]))
    return cv.add(node, layer, [cv.data(b["input"], node)])


def _pool_module(cv: _Converter, node: fx.Node) -> str:
    mod = cv.gm.get_submodule(node.target)
    nd = _SPATIAL[type(mod)]
    x = cv.data(node.args[0], node)
    if isinstance(mod, (nn.MaxPool1d, nn.MaxPool2d)):
        if mod.return_indices:
            raise cv.unsupported(node, "return_indices=True")
        layer = MaxPool(nd, mod.kernel_size, mod.stride, mod.padding, mod.dilation,
                        mod.ceil_mode)
    elif isinstance(mod, (nn.AvgPool1d, nn.AvgPool2d)):
        layer = AvgPool(nd, mod.kernel_size, mod.stride, mod.padding, mod.ceil_mode,
                        mod.count_include_pad, getattr(mod, "divisor_override", None))
    else:
        if getattr(mod, "return_indices", False):
            raise cv.unsupported(node, "return_indices=True")
        out = _adaptive_size(cv, node, node.args[0], mod.output_size, nd)
        cls = AdaptiveAvgPool if "Avg" in type(mod).__name__ else AdaptiveMaxPool
        layer = cls(nd, out)
    return cv.add(node, layer, [x])


def _adaptive_size(cv, node, x, output_size, nd) -> tuple[int, ...]:
    size = output_size if isinstance(output_size, (tuple, list)) else (output_size,) * nd
    spatial = cv.shape(x)[-nd:]
    return tuple(int(s) if s is not None else int(d) for s, d in zip(size, spatial))


def _pool_fn(kind: str, nd: int) -> Handler:
    def h(cv: _Converter, node: fx.Node) -> str:
        if kind == "max":
            b = _bind(node, [("input", _REQ), ("kernel_size", _REQ), ("stride", None),
                             ("padding", 0), ("dilation", 1), ("ceil_mode", False),
                             ("return_indices", False)])
            if cv.val(b["return_indices"]):
                raise cv.unsupported(node, "return_indices=True")
            stride = cv.val(b["stride"]) or None
            layer = MaxPool(nd, cv.val(b["kernel_size"]), stride, cv.val(b["padding"]),
                            cv.val(b["dilation"]), bool(cv.val(b["ceil_mode"])))
        elif kind == "avg":
            spec = [("input", _REQ), ("kernel_size", _REQ), ("stride", None), ("padding", 0),
                    ("ceil_mode", False), ("count_include_pad", True)]
            if nd == 2:
                spec.append(("divisor_override", None))
            b = _bind(node, spec)
            stride = cv.val(b["stride"]) or None
            layer = AvgPool(nd, cv.val(b["kernel_size"]), stride, cv.val(b["padding"]),
                            bool(cv.val(b["ceil_mode"])), bool(cv.val(b["count_include_pad"])),
                            cv.val(b.get("divisor_override")))
        else:
            b = _bind(node, [("input", _REQ), ("output_size", _REQ), ("return_indices", False)])
            if cv.val(b["return_indices"]):
                raise cv.unsupported(node, "return_indices=True")
            out = _adaptive_size(cv, node, b["input"], cv.val(b["output_size"]), nd)
            layer = (AdaptiveAvgPool if kind == "adaptive_avg" else AdaptiveMaxPool)(nd, out)
        return cv.add(node, layer, [cv.data(b["input"], node)])
    return h


def _pad_module(cv: _Converter, node: fx.Node) -> str:
    mod = cv.gm.get_submodule(node.target)
    if isinstance(mod, (nn.ReflectionPad1d, nn.ReflectionPad2d)):
        mode = "reflect"
    elif isinstance(mod, (nn.ReplicationPad1d, nn.ReplicationPad2d)):
        mode = "replicate"
    elif isinstance(mod, (nn.CircularPad1d, nn.CircularPad2d)):
        mode = "circular"
    else:
        mode = "constant"
    value = float(getattr(mod, "value", 0.0))
    return cv.add(node, Pad(tuple(mod.padding), mode, value), [cv.data(node.args[0], node)])


def _pad_fn(cv: _Converter, node: fx.Node) -> str:
    b = _bind(node, [("input", _REQ), ("pad", _REQ), ("mode", "constant"), ("value", None)])
    value = cv.val(b["value"])
    layer = Pad(tuple(cv.val(b["pad"])), cv.val(b["mode"]), 0.0 if value is None else value)
    return cv.add(node, layer, [cv.data(b["input"], node)])


def _act_module(cv: _Converter, node: fx.Node) -> str:
    mod = cv.gm.get_submodule(node.target)
    x = node.args[0]
    rank = len(cv.shape(x))
    if isinstance(mod, nn.LeakyReLU):
        layer = Activation("leaky_relu", negative_slope=float(mod.negative_slope))
    elif isinstance(mod, nn.ELU):
        layer = Activation("elu", alpha=float(mod.alpha))
    elif isinstance(mod, nn.Softplus):
        layer = Activation("softplus", beta=float(mod.beta), threshold=float(mod.threshold))
    elif isinstance(mod, nn.GELU):
        layer = Activation("gelu", approximate=mod.approximate)
    elif isinstance(mod, (nn.Softmax, nn.LogSoftmax, nn.Softmax2d)):
        name = "log_softmax" if isinstance(mod, nn.LogSoftmax) else "softmax"
        d = -3 if isinstance(mod, nn.Softmax2d) else mod.dim
        if d is None:
            d = 0 if rank in (0, 1, 3) else 1
        layer = Activation(name, dim=cv.dim(d, rank, node))
    else:
        layer = Activation(_SIMPLE_ACT_MODULES[type(mod)])
    return cv.add(node, layer, [cv.data(x, node)])


_SIMPLE_ACT_MODULES = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", nn.SiLU: "silu"}

_MODULES: dict[type, Handler] = {
    nn.Linear: _linear_module,
    nn.Conv1d: _conv_module, nn.Conv2d: _conv_module,
    nn.MaxPool1d: _pool_module, nn.MaxPool2d: _pool_module,
    nn.AvgPool1d: _pool_module, nn.AvgPool2d: _pool_module,
    nn.AdaptiveAvgPool1d: _pool_module, nn.AdaptiveAvgPool2d: _pool_module,
    nn.AdaptiveMaxPool1d: _pool_module, nn.AdaptiveMaxPool2d: _pool_module,
    nn.BatchNorm1d: _bn_module, nn.BatchNorm2d: _bn_module,
    nn.Flatten: _flatten_module, nn.Unflatten: _reshape_handler(),
    nn.Dropout: _skip, nn.Dropout1d: _skip, nn.Dropout2d: _skip, nn.AlphaDropout: _skip,
    nn.FeatureAlphaDropout: _skip, nn.Identity: _skip,
    nn.ZeroPad1d: _pad_module, nn.ZeroPad2d: _pad_module, nn.ConstantPad1d: _pad_module,
    nn.ConstantPad2d: _pad_module, nn.ReflectionPad1d: _pad_module,
    nn.ReflectionPad2d: _pad_module, nn.ReplicationPad1d: _pad_module,
    nn.ReplicationPad2d: _pad_module, nn.CircularPad1d: _pad_module,
    nn.CircularPad2d: _pad_module,
    nn.ReLU: _act_module, nn.LeakyReLU: _act_module, nn.ELU: _act_module, nn.Tanh: _act_module,
    nn.Sigmoid: _act_module, nn.Softplus: _act_module, nn.Softmax: _act_module,
    nn.LogSoftmax: _act_module, nn.Softmax2d: _act_module, nn.GELU: _act_module,
    nn.SiLU: _act_module,
}

_ACT_SPEC = [("input", _REQ), ("inplace", False)]
_SOFTMAX_SPEC = [("input", _REQ), ("dim", None), ("_stacklevel", 3), ("dtype", None)]
_TORCH_SOFTMAX_SPEC = [("input", _REQ), ("dim", _REQ), ("dtype", None)]
_FLATTEN_SPEC = [("input", _REQ), ("start_dim", 0), ("end_dim", -1)]

_FUNCTIONS: dict[object, Handler] = {
    F.relu: _activation("relu"), torch.relu: _activation("relu"),
    torch.relu_: _activation("relu"), F.relu_: _activation("relu"),
    F.tanh: _activation("tanh"), torch.tanh: _activation("tanh"),
    F.sigmoid: _activation("sigmoid"), torch.sigmoid: _activation("sigmoid"),
    F.silu: _activation("silu"), torch.exp: _activation("exp"),
    F.leaky_relu: _param_activation(
        "leaky_relu", [("input", _REQ), ("negative_slope", 0.01), ("inplace", False)],
        ["negative_slope"]),
    F.elu: _param_activation("elu", [("input", _REQ), ("alpha", 1.0), ("inplace", False)],
                             ["alpha"]),
    F.softplus: _param_activation(
        "softplus", [("input", _REQ), ("beta", 1.0), ("threshold", 20.0)], ["beta", "threshold"]),
    F.gelu: _param_activation("gelu", [("input", _REQ), ("approximate", "none")],
                              ["approximate"]),
    F.softmax: _softmax_like("softmax", _SOFTMAX_SPEC),
    torch.softmax: _softmax_like("softmax", _TORCH_SOFTMAX_SPEC),
    F.log_softmax: _softmax_like("log_softmax", _SOFTMAX_SPEC),
    torch.log_softmax: _softmax_like("log_softmax", _TORCH_SOFTMAX_SPEC),
    F.linear: _linear_fn,
    F.conv1d: _conv_fn, F.conv2d: _conv_fn,
    F.max_pool1d: _pool_fn("max", 1), F.max_pool2d: _pool_fn("max", 2),
    F.avg_pool1d: _pool_fn("avg", 1), F.avg_pool2d: _pool_fn("avg", 2),
    F.adaptive_avg_pool1d: _pool_fn("adaptive_avg", 1),
    F.adaptive_avg_pool2d: _pool_fn("adaptive_avg", 2),
    F.adaptive_max_pool1d: _pool_fn("adaptive_max", 1),
    F.adaptive_max_pool2d: _pool_fn("adaptive_max", 2),
    F.batch_norm: _bn_fn, F.pad: _pad_fn,
    F.dropout: _skip, F.dropout1d: _skip, F.dropout2d: _skip, F.alpha_dropout: _skip,
    F.feature_alpha_dropout: _skip,
    torch.flatten: _reshape_handler(_FLATTEN_SPEC),
    torch.reshape: _reshape_handler(), torch.squeeze: _reshape_handler(),
    torch.unsqueeze: _reshape_handler(),
    operator.add: _binary("add"), operator.iadd: _binary("add"), torch.add: _binary("add"),
    operator.sub: _binary("sub"), operator.isub: _binary("sub"), torch.sub: _binary("sub"),
    operator.mul: _binary("mul"), operator.imul: _binary("mul"), torch.mul: _binary("mul"),
    operator.truediv: _binary("div"), operator.itruediv: _binary("div"),
    torch.div: _binary("div"),
    operator.neg: _neg, torch.neg: _neg,
    torch.cat: _cat, torch.concat: _cat, torch.concatenate: _cat,
    torch.mean: _mean,
}

_METHODS: dict[str, Handler] = {
    "relu": _activation("relu"), "relu_": _activation("relu"), "tanh": _activation("tanh"),
    "tanh_": _activation("tanh"), "sigmoid": _activation("sigmoid"),
    "sigmoid_": _activation("sigmoid"), "exp": _activation("exp"),
    "softmax": _softmax_like("softmax", [("input", _REQ), ("dim", _REQ), ("dtype", None)]),
    "log_softmax": _softmax_like("log_softmax",
                                 [("input", _REQ), ("dim", _REQ), ("dtype", None)]),
    "view": _reshape_handler(), "reshape": _reshape_handler(),
    "flatten": _reshape_handler(_FLATTEN_SPEC), "squeeze": _reshape_handler(),
    "unsqueeze": _reshape_handler(), "contiguous": _skip,
    "add": _binary("add"), "add_": _binary("add"), "sub": _binary("sub"),
    "sub_": _binary("sub"), "mul": _binary("mul"), "mul_": _binary("mul"),
    "div": _binary("div"), "div_": _binary("div"), "neg": _neg, "mean": _mean,
}

#: methods / functions whose result is shape information, not data
_META_METHODS = {"size", "dim", "numel", "ndimension", "nelement"}


def _handler(node: fx.Node, gm: fx.GraphModule) -> Handler | None:
    if node.op == "call_module":
        return _MODULES.get(type(gm.get_submodule(node.target)))
    if node.op == "call_method":
        return _METHODS.get(node.target)
    try:
        return _FUNCTIONS.get(node.target)
    except TypeError:  # unhashable target
        return None


def _scan(gm: fx.GraphModule, inputs: Sequence[str]) -> None:
    """Shape-free check that every input-dependent operation has a graph layer."""
    dynamic, meta = set(inputs), set()
    for node in gm.graph.nodes:
        if node.op in ("placeholder", "get_attr", "output"):
            continue
        deps = [p.name for p in node.all_input_nodes if p.name in dynamic]
        if not deps:
            continue
        dynamic.add(node.name)
        is_meta = (
            (node.op == "call_method" and node.target in _META_METHODS)
            or (node.op == "call_function" and node.target is getattr)
            or all(d in meta for d in deps)
        )
        if is_meta:
            meta.add(node.name)
            continue
        if _handler(node, gm) is None:
            reason = ""
            if node.op == "call_function" and node.target is operator.getitem:
                reason = "indexing or slicing a tensor (or a tuple of tensors) is not a layer"
            raise UnsupportedLayerError(_what(node, gm), _where(node), reason)


def class_names_for(classes: Sequence, k: int) -> list | None:
    """Names of a k-unit output from class labels (one unit for two classes: ``classes[1]``)."""
    classes = list(classes)
    if len(classes) == k:
        return classes
    if k == 1 and len(classes) == 2:
        return [classes[1]]
    return None


class _Recorder(fx.Interpreter):
    def __init__(self, gm: fx.GraphModule) -> None:
        super().__init__(gm)
        self.values: dict[str, object] = {}

    def run_node(self, n: fx.Node) -> object:
        result = super().run_node(n)
        self.values[n.name] = result
        return result


def _infer_input_shapes(gm: fx.GraphModule, inputs: Sequence[str]) -> list | None:
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


def _ends_with_activation(gm: fx.GraphModule) -> bool:
    out = [n for n in gm.graph.nodes if n.op == "output"]
    if not out:
        return False
    first = out[0].args[0]
    while isinstance(first, (tuple, list)) and first:
        first = first[0]
    if not isinstance(first, fx.Node):
        return False
    if first.op == "call_module":
        return type(gm.get_submodule(first.target)) in (
            set(_SIMPLE_ACT_MODULES) | {nn.LeakyReLU, nn.ELU, nn.Softplus, nn.GELU, nn.Softmax,
                                        nn.LogSoftmax, nn.Softmax2d})
    handler = _handler(first, gm)
    return handler is not None and getattr(handler, "__qualname__", "").startswith(
        ("_activation", "_softmax_like", "_param_activation"))


class TorchSource(Source):
    """A torch module: private copy, fx trace, shape-free support check.

    Parameters
    ----------
    module : nn.Module
        The user's module (copied; never modified).
    post : Activation, optional
        Applied to the first output (skorch's predict nonlinearity).
    class_names : sequence, optional
        Names of the first output's units.
    """

    def __init__(self, module: nn.Module, dtype: torch.dtype, device: torch.device, *,
                 post: Activation | None = None, class_names: Sequence | None = None,
                 description: str | None = None) -> None:
        super().__init__(dtype, device)
        self.description = description or f"torch module {type(module).__name__}"
        self.module = private_copy(module, dtype, device)
        self.post = post
        self.gm, self.inputs = trace_module(self.module)
        self.n_inputs = len(self.inputs)
        if self.n_inputs == 0:
            raise ConversionError(f"the {self.description} takes no tensor input")
        self.ends_with_activation = post is not None or _ends_with_activation(self.gm)
        try:
            _scan(self.gm, self.inputs)
        except UnsupportedLayerError as err:
            err.ends_with_activation = self.ends_with_activation  # for ignore_last_act warnings
            raise
        self.input_shapes = _infer_input_shapes(self.gm, self.inputs)
        self.class_names = None if class_names is None else list(class_names)

    def _run_original(self, xs: Sequence[torch.Tensor]) -> object:
        with torch.no_grad():  # on copies: the module may modify its inputs in place
            return self.module(*private_inputs(xs))

    def check_inputs(self, xs: Sequence[torch.Tensor]) -> None:
        self._run_original(xs)

    def build(self, xs: Sequence[torch.Tensor]) -> Graph:
        rec = _Recorder(self.gm)
        try:
            with torch.no_grad():
                rec.run(*private_inputs(xs))
        except Exception as err:  # noqa: BLE001
            shapes = ", ".join(str(tuple(x.shape[1:])) for x in xs)
            raise ConversionError(
                f"the {self.description} failed on example inputs of per-sample shape "
                f"{shapes}: {str(err).splitlines()[0] if str(err) else type(err).__name__}; "
                "pass the right input_shape (channels first) or X_ref"
            ) from err
        graph = _Converter(self.gm, self.inputs, rec.values, self.dtype, self.device).run(
            None if self.post is None else copy.deepcopy(self.post))
        if self.class_names is not None:
            with torch.no_grad():
                first = graph(*private_inputs(xs))[0]
            k = first.reshape(first.shape[0], -1).shape[1] if first.ndim > 1 else 1
            names = class_names_for(self.class_names, k)
            if names is not None:
                graph.output_names_ = [names] + [None] * (len(graph.outputs) - 1)
        return graph

    def reference(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        from .._model import flatten_outputs

        outs = flatten_outputs(self._run_original(xs))
        if self.post is not None:
            with torch.no_grad():
                outs[0] = flatten_outputs(self.post(outs[0]))[0]
        return outs
