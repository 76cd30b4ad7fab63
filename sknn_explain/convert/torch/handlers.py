"""One handler per supported torch operation: module classes, functions, tensor methods.

Each handler reads its fx node's arguments (with the recorded values for shapes and
constants) and emits the graph layer(s) through the :class:`~.walker.Converter`. The tables
``MODULES``, ``FUNCTIONS`` and ``METHODS`` are the registry; :func:`handler_for` looks a node
up and :func:`scan` checks, before any shape is known, that every input-dependent operation
of a traced program has a handler.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import fx, nn

from ...layers import (
    TORCH_ACTIVATION_MODULES,
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
    torch_activation_modules,
)
from ..errors import BatchStatisticsError, UnsupportedLayerError
from .attention import (
    ATTENTION_FUNCTIONS,
    ATTENTION_METHODS,
    ATTENTION_MODULES,
    multiply,
)
from .constant_operands import broadcast_affine, constant_concat, is_per_channel
from .describe import what, where
from .handlers_ops import OPS_FUNCTIONS, OPS_METHODS, OPS_MODULES, reduce_handler
from .recurrent import scan_accepts
from .tuples import is_multi_output
from .walker import REQ, Converter, Handler, as_tuple, bind

__all__ = ["FUNCTIONS", "METHODS", "MODULES", "ends_with_activation", "handler_for", "scan"]

_SPATIAL = {
    nn.Conv1d: 1, nn.Conv2d: 2, nn.MaxPool1d: 1, nn.MaxPool2d: 2, nn.AvgPool1d: 1,
    nn.AvgPool2d: 2, nn.AdaptiveAvgPool1d: 1, nn.AdaptiveAvgPool2d: 2, nn.AdaptiveMaxPool1d: 1,
    nn.AdaptiveMaxPool2d: 2, nn.Conv3d: 3, nn.MaxPool3d: 3, nn.AvgPool3d: 3,
    nn.AdaptiveAvgPool3d: 3, nn.AdaptiveMaxPool3d: 3,
}


def _first(node: fx.Node, cv: Converter, key: str = "input") -> object:
    return node.args[0] if node.args else node.kwargs.get(key, node.kwargs.get("self"))


def _activation(name: str, **params) -> Handler:
    def h(cv: Converter, node: fx.Node) -> str:
        x = _first(node, cv)
        return cv.add(node, Activation(name, **params), [cv.data(x, node)])
    return h


def _softmax_like(name: str, spec) -> Handler:
    def h(cv: Converter, node: fx.Node) -> str:
        b = bind(node, spec)
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
    def h(cv: Converter, node: fx.Node) -> str:
        b = bind(node, spec)
        kw = {p: cv.val(b[p]) for p in params}
        kw = {k: (float(v) if isinstance(v, (int, float)) else v) for k, v in kw.items()}
        return cv.add(node, Activation(name, **kw), [cv.data(b["input"], node)])
    return h


def _skip(cv: Converter, node: fx.Node) -> str:
    return cv.data(_first(node, cv), node)


def _reshape_handler(flatten_spec=None) -> Handler:
    """Any op that only reshapes its first argument; the shape comes from the recorded value."""

    def h(cv: Converter, node: fx.Node) -> str:
        x = _first(node, cv)
        src = cv.data(x, node)
        shp_in, shp_out = cv.shape(x), tuple(cv.values[node.name].shape)
        if shp_out == shp_in:
            return src
        if not shp_out or shp_out[0] != shp_in[0]:
            raise cv.unsupported(node, "the reshape mixes the batch axis with other axes")
        if flatten_spec is not None:
            b = bind(node, flatten_spec)
            rank = len(shp_in)
            s = cv.dim(cv.val(b["start_dim"]), rank, node)
            e = int(cv.val(b["end_dim"])) % rank
            return cv.add(node, Flatten(s, -1 if e == rank - 1 else e), [src])
        if len(shp_out) == 2 and len(shp_in) > 2:
            return cv.add(node, Flatten(1, -1), [src])
        return cv.add(node, Reshape(shp_out[1:]), [src])
    return h


def _flatten_module(cv: Converter, node: fx.Node) -> str:
    mod = cv.gm.get_submodule(node.target)
    x = node.args[0]
    rank = len(cv.shape(x))
    s = cv.dim(mod.start_dim, rank, node)
    e = int(mod.end_dim) % rank
    if tuple(cv.values[node.name].shape) == cv.shape(x):
        return cv.data(x, node)
    return cv.add(node, Flatten(s, -1 if e == rank - 1 else e), [cv.data(x, node)])


def _per_channel(cv: Converter, c: object, x_shape: tuple[int, ...], node: fx.Node
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


def _affine(cv: Converter, node: fx.Node, x: str, scale=None, shift=None, suffix="") -> str:
    if scale is None:
        scale = torch.ones_like(shift)
    if shift is None:
        shift = torch.zeros_like(scale)
    if scale.numel() != shift.numel():
        n = max(scale.numel(), shift.numel())
        scale, shift = scale.expand(n).clone(), shift.expand(n).clone()
    return cv.add(node, ElementwiseAffine(scale, shift), [x], suffix)


def _binary(op: str) -> Handler:
    def h(cv: Converter, node: fx.Node) -> str:
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
            if op == "mul":
                return multiply(cv, node, a, b)
            if op == "div":
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
        if not is_per_channel(cv, c, cv.shape(x_node), out_shape):
            return broadcast_affine(cv, node, op, x_node, c, alpha, da)
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


def _neg(cv: Converter, node: fx.Node) -> str:
    return _affine(cv, node, cv.data(_first(node, cv), node), scale=cv.buf([-1.0]))


def _cat(cv: Converter, node: fx.Node) -> str:
    b = bind(node, [("tensors", REQ), ("dim", 0)])
    tensors = list(b["tensors"])
    rank = len(cv.values[node.name].shape)
    if not all(cv.is_data(t) for t in tensors):
        return constant_concat(cv, node, tensors, cv.dim(cv.val(b["dim"]), rank, node))
    names = [cv.data(t, node) for t in tensors]
    return cv.add(node, Concat(cv.dim(cv.val(b["dim"]), rank, node)), names)


def _mean(cv: Converter, node: fx.Node) -> str:
    b = bind(node, [("input", REQ), ("dim", None), ("keepdim", False), ("dtype", None)])
    x = b["input"]
    rank = len(cv.shape(x))
    dims = cv.val(b["dim"])
    if dims is None or rank not in (3, 4) or b["dtype"] is not None:
        return reduce_handler("mean")(cv, node)
    dims = {int(d) % rank for d in (dims if isinstance(dims, (tuple, list)) else [dims])}
    if dims != set(range(2, rank)):
        return reduce_handler("mean")(cv, node)
    out = cv.add(node, AdaptiveAvgPool(rank - 2, 1), [cv.data(x, node)],
                 "" if cv.val(b["keepdim"]) else "_pool")
    if not cv.val(b["keepdim"]):
        out = cv.add(node, Flatten(1, -1), [out])
    return out


def _conv_padding(cv: Converter, node: fx.Node, x: str, pad: Sequence[int], nd: int,
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
    if nd not in (1, 2, 3):
        raise cv.unsupported(node, f"{nd}d convolutions are not supported")
    dilation = as_tuple(dilation, nd)
    if isinstance(padding, str):
        if padding == "valid":
            pad = [0] * (2 * nd)
        else:  # "same": torch puts the odd extra element on the right / bottom
            pad = []
            for d, k in zip(reversed(dilation), reversed(weight.shape[2:])):
                total = d * (k - 1)
                pad += [total // 2, total - total // 2]
    else:
        p = as_tuple(padding, nd)
        pad = [v for d in reversed(p) for v in (d, d)]
    x, conv_pad = _conv_padding(cv, node, x, pad, nd)
    layer = Conv(cv.buf(weight), None if bias is None else cv.buf(bias), as_tuple(stride, nd),
                 conv_pad, dilation, int(groups))
    return cv.add(node, layer, [x])


def _conv_module(cv: Converter, node: fx.Node) -> str:
    mod = cv.gm.get_submodule(node.target)
    nd = _SPATIAL[type(mod)] if type(mod) in _SPATIAL else mod.weight.ndim - 2
    x = cv.data(node.args[0], node)
    x, conv_pad = _conv_padding(cv, node, x, mod._reversed_padding_repeated_twice, nd,
                                mod.padding_mode)
    layer = Conv(cv.buf(mod.weight), None if mod.bias is None else cv.buf(mod.bias),
                 as_tuple(mod.stride, nd), conv_pad, as_tuple(mod.dilation, nd), mod.groups)
    return cv.add(node, layer, [x])


def _conv_fn(cv: Converter, node: fx.Node) -> str:
    b = bind(node, [("input", REQ), ("weight", REQ), ("bias", None), ("stride", 1),
                     ("padding", 0), ("dilation", 1), ("groups", 1)])
    if cv.is_data(b["weight"]) or cv.is_data(b["bias"]):
        raise cv.unsupported(node, "input-dependent weights")
    return _conv_from(cv, node, cv.data(b["input"], node), cv.val(b["weight"]),
                      cv.val(b["bias"]), cv.val(b["stride"]), cv.val(b["padding"]),
                      cv.val(b["dilation"]), cv.val(b["groups"]))


def _linear_module(cv: Converter, node: fx.Node) -> str:
    mod = cv.gm.get_submodule(node.target)
    layer = Dense(cv.buf(mod.weight), None if mod.bias is None else cv.buf(mod.bias))
    return cv.add(node, layer, [cv.data(node.args[0], node)])


def _linear_fn(cv: Converter, node: fx.Node) -> str:
    b = bind(node, [("input", REQ), ("weight", REQ), ("bias", None)])
    if cv.is_data(b["weight"]) or cv.is_data(b["bias"]):
        raise cv.unsupported(node, "input-dependent weights")
    bias = cv.val(b["bias"])
    layer = Dense(cv.buf(cv.val(b["weight"])), None if bias is None else cv.buf(bias))
    return cv.add(node, layer, [cv.data(b["input"], node)])


def _batch_stats(cv: Converter, node: fx.Node, reason: str) -> BatchStatisticsError:
    return BatchStatisticsError(what(node, cv.gm), where(node), reason)


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


def _bn_module(cv: Converter, node: fx.Node) -> str:
    mod = cv.gm.get_submodule(node.target)
    layer = _bn_layer(cv, node, mod.running_mean, mod.running_var, mod.weight, mod.bias, mod.eps)
    return cv.add(node, layer, [cv.data(node.args[0], node)])


def _bn_fn(cv: Converter, node: fx.Node) -> str:
    b = bind(node, [("input", REQ), ("running_mean", REQ), ("running_var", REQ),
                     ("weight", None), ("bias", None), ("training", False), ("momentum", 0.1),
                     ("eps", 1e-5)])
    if cv.val(b["training"]):
        raise _batch_stats(cv, node, "batch_norm(training=True) normalises with the "
                           "statistics of the current batch")
    layer = _bn_layer(cv, node, cv.val(b["running_mean"]), cv.val(b["running_var"]),
                      cv.val(b["weight"]), cv.val(b["bias"]), cv.val(b["eps"]))
    return cv.add(node, layer, [cv.data(b["input"], node)])


def _pool_module(cv: Converter, node: fx.Node) -> str:
    mod = cv.gm.get_submodule(node.target)
    nd = _SPATIAL[type(mod)]
    x = cv.data(node.args[0], node)
    if isinstance(mod, (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)):
        if mod.return_indices:
            raise cv.unsupported(node, "return_indices=True")
        layer = MaxPool(nd, mod.kernel_size, mod.stride, mod.padding, mod.dilation,
                        mod.ceil_mode)
    elif isinstance(mod, (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)):
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
    def h(cv: Converter, node: fx.Node) -> str:
        if kind == "max":
            b = bind(node, [("input", REQ), ("kernel_size", REQ), ("stride", None),
                             ("padding", 0), ("dilation", 1), ("ceil_mode", False),
                             ("return_indices", False)])
            if cv.val(b["return_indices"]):
                raise cv.unsupported(node, "return_indices=True")
            stride = cv.val(b["stride"]) or None
            layer = MaxPool(nd, cv.val(b["kernel_size"]), stride, cv.val(b["padding"]),
                            cv.val(b["dilation"]), bool(cv.val(b["ceil_mode"])))
        elif kind == "avg":
            spec = [("input", REQ), ("kernel_size", REQ), ("stride", None), ("padding", 0),
                    ("ceil_mode", False), ("count_include_pad", True)]
            if nd >= 2:
                spec.append(("divisor_override", None))
            b = bind(node, spec)
            stride = cv.val(b["stride"]) or None
            layer = AvgPool(nd, cv.val(b["kernel_size"]), stride, cv.val(b["padding"]),
                            bool(cv.val(b["ceil_mode"])), bool(cv.val(b["count_include_pad"])),
                            cv.val(b.get("divisor_override")))
        else:
            b = bind(node, [("input", REQ), ("output_size", REQ), ("return_indices", False)])
            if cv.val(b["return_indices"]):
                raise cv.unsupported(node, "return_indices=True")
            out = _adaptive_size(cv, node, b["input"], cv.val(b["output_size"]), nd)
            layer = (AdaptiveAvgPool if kind == "adaptive_avg" else AdaptiveMaxPool)(nd, out)
        return cv.add(node, layer, [cv.data(b["input"], node)])
    return h


def _pad_module(cv: Converter, node: fx.Node) -> str:
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


def _pad_fn(cv: Converter, node: fx.Node) -> str:
    b = bind(node, [("input", REQ), ("pad", REQ), ("mode", "constant"), ("value", None)])
    value = cv.val(b["value"])
    layer = Pad(tuple(cv.val(b["pad"])), cv.val(b["mode"]), 0.0 if value is None else value)
    return cv.add(node, layer, [cv.data(b["input"], node)])


def _act_module(cv: Converter, node: fx.Node) -> str:
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
        layer = Activation(TORCH_ACTIVATION_MODULES[type(mod)])
    return cv.add(node, layer, [cv.data(x, node)])


MODULES: dict[type, Handler] = {
    nn.Linear: _linear_module,
    nn.Conv1d: _conv_module, nn.Conv2d: _conv_module, nn.Conv3d: _conv_module,
    nn.MaxPool1d: _pool_module, nn.MaxPool2d: _pool_module, nn.MaxPool3d: _pool_module,
    nn.AvgPool1d: _pool_module, nn.AvgPool2d: _pool_module, nn.AvgPool3d: _pool_module,
    nn.AdaptiveAvgPool1d: _pool_module, nn.AdaptiveAvgPool2d: _pool_module,
    nn.AdaptiveAvgPool3d: _pool_module,
    nn.AdaptiveMaxPool1d: _pool_module, nn.AdaptiveMaxPool2d: _pool_module,
    nn.AdaptiveMaxPool3d: _pool_module,
    nn.BatchNorm1d: _bn_module, nn.BatchNorm2d: _bn_module,
    nn.Flatten: _flatten_module, nn.Unflatten: _reshape_handler(),
    nn.Dropout: _skip, nn.Dropout1d: _skip, nn.Dropout2d: _skip, nn.AlphaDropout: _skip,
    nn.FeatureAlphaDropout: _skip, nn.Identity: _skip,
    nn.ZeroPad1d: _pad_module, nn.ZeroPad2d: _pad_module, nn.ConstantPad1d: _pad_module,
    nn.ConstantPad2d: _pad_module, nn.ReflectionPad1d: _pad_module,
    nn.ReflectionPad2d: _pad_module, nn.ReplicationPad1d: _pad_module,
    nn.ReplicationPad2d: _pad_module, nn.CircularPad1d: _pad_module,
    nn.CircularPad2d: _pad_module,
    **{cls: _act_module for cls in torch_activation_modules(convertible=True)},
    **ATTENTION_MODULES,
}

_ACT_SPEC = [("input", REQ), ("inplace", False)]
_SOFTMAX_SPEC = [("input", REQ), ("dim", None), ("_stacklevel", 3), ("dtype", None)]
_TORCH_SOFTMAX_SPEC = [("input", REQ), ("dim", REQ), ("dtype", None)]
_FLATTEN_SPEC = [("input", REQ), ("start_dim", 0), ("end_dim", -1)]

FUNCTIONS: dict[object, Handler] = {
    F.relu: _activation("relu"), torch.relu: _activation("relu"),
    torch.relu_: _activation("relu"), F.relu_: _activation("relu"),
    F.tanh: _activation("tanh"), torch.tanh: _activation("tanh"),
    F.sigmoid: _activation("sigmoid"), torch.sigmoid: _activation("sigmoid"),
    F.silu: _activation("silu"), torch.exp: _activation("exp"),
    F.leaky_relu: _param_activation(
        "leaky_relu", [("input", REQ), ("negative_slope", 0.01), ("inplace", False)],
        ["negative_slope"]),
    F.elu: _param_activation("elu", [("input", REQ), ("alpha", 1.0), ("inplace", False)],
                             ["alpha"]),
    F.softplus: _param_activation(
        "softplus", [("input", REQ), ("beta", 1.0), ("threshold", 20.0)], ["beta", "threshold"]),
    F.gelu: _param_activation("gelu", [("input", REQ), ("approximate", "none")],
                              ["approximate"]),
    F.softmax: _softmax_like("softmax", _SOFTMAX_SPEC),
    torch.softmax: _softmax_like("softmax", _TORCH_SOFTMAX_SPEC),
    F.log_softmax: _softmax_like("log_softmax", _SOFTMAX_SPEC),
    torch.log_softmax: _softmax_like("log_softmax", _TORCH_SOFTMAX_SPEC),
    F.linear: _linear_fn,
    F.conv1d: _conv_fn, F.conv2d: _conv_fn, F.conv3d: _conv_fn,
    F.max_pool1d: _pool_fn("max", 1), F.max_pool2d: _pool_fn("max", 2),
    F.max_pool3d: _pool_fn("max", 3),
    F.avg_pool1d: _pool_fn("avg", 1), F.avg_pool2d: _pool_fn("avg", 2),
    F.avg_pool3d: _pool_fn("avg", 3),
    F.adaptive_avg_pool1d: _pool_fn("adaptive_avg", 1),
    F.adaptive_avg_pool2d: _pool_fn("adaptive_avg", 2),
    F.adaptive_avg_pool3d: _pool_fn("adaptive_avg", 3),
    F.adaptive_max_pool1d: _pool_fn("adaptive_max", 1),
    F.adaptive_max_pool2d: _pool_fn("adaptive_max", 2),
    F.adaptive_max_pool3d: _pool_fn("adaptive_max", 3),
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
    **ATTENTION_FUNCTIONS,
}

METHODS: dict[str, Handler] = {
    "relu": _activation("relu"), "relu_": _activation("relu"), "tanh": _activation("tanh"),
    "tanh_": _activation("tanh"), "sigmoid": _activation("sigmoid"),
    "sigmoid_": _activation("sigmoid"), "exp": _activation("exp"),
    "softmax": _softmax_like("softmax", [("input", REQ), ("dim", REQ), ("dtype", None)]),
    "log_softmax": _softmax_like("log_softmax",
                                 [("input", REQ), ("dim", REQ), ("dtype", None)]),
    "view": _reshape_handler(), "reshape": _reshape_handler(),
    "flatten": _reshape_handler(_FLATTEN_SPEC), "squeeze": _reshape_handler(),
    "unsqueeze": _reshape_handler(), "contiguous": _skip,
    "add": _binary("add"), "add_": _binary("add"), "sub": _binary("sub"),
    "sub_": _binary("sub"), "mul": _binary("mul"), "mul_": _binary("mul"),
    "div": _binary("div"), "div_": _binary("div"), "neg": _neg, "mean": _mean,
    **ATTENTION_METHODS,
}

# issue #12 part 1: tensor ops, more activations, LayerNorm / RMSNorm, ConvTranspose
MODULES.update(OPS_MODULES)
FUNCTIONS.update(OPS_FUNCTIONS)
METHODS.update(OPS_METHODS)

#: methods / functions whose result is shape information, not data
_META_METHODS = {"size", "dim", "numel", "ndimension", "nelement"}


def handler_for(node: fx.Node, gm: fx.GraphModule) -> Handler | None:
    if node.op == "call_module":
        return MODULES.get(type(gm.get_submodule(node.target)))
    if node.op == "call_method":
        return METHODS.get(node.target)
    try:
        return FUNCTIONS.get(node.target)
    except TypeError:  # unhashable target
        return None


def scan(gm: fx.GraphModule, inputs: Sequence[str]) -> None:
    """Shape-free check that every input-dependent operation has a graph layer."""
    dynamic, meta, multi, recurrent = set(inputs), set(), set(), set()
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
        if node.target is operator.getitem and node.args[0].name in multi:
            continue  # an item of a multi-output operation (resolved by the walker)
        if is_multi_output(handler_for(node, gm)):
            multi.add(node.name)
        refusal = getattr(handler_for(node, gm), "precheck", None)  # shape-free refusals
        if refusal is not None and refusal(node) is not None:
            raise UnsupportedLayerError(what(node, gm), where(node), refusal(node))
        if not scan_accepts(node, gm, recurrent) and handler_for(node, gm) is None:
            reason = ""
            if node.op == "call_function" and node.target is operator.getitem:
                reason = "indexing or slicing a tensor (or a tuple of tensors) is not a layer"
            raise UnsupportedLayerError(what(node, gm), where(node), reason)



def ends_with_activation(gm: fx.GraphModule) -> bool:
    out = [n for n in gm.graph.nodes if n.op == "output"]
    if not out:
        return False
    first = out[0].args[0]
    while isinstance(first, (tuple, list)) and first:
        first = first[0]
    if not isinstance(first, fx.Node):
        return False
    if first.op == "call_module":
        return type(gm.get_submodule(first.target)) in torch_activation_modules(convertible=True)
    handler = handler_for(first, gm)
    return handler is not None and getattr(handler, "__qualname__", "").startswith(
        ("_activation", "_softmax_like", "_param_activation"))

