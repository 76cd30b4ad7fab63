"""Handlers of tensor operations, more activations, LayerNorm / RMSNorm and transposed
convolutions (issue #12, part 1); merged into the tables of :mod:`.handlers`.

========================================================  =====================================
torch                                                     graph layer
========================================================  =====================================
``x[:, 0]``, ``x[..., 1:3]``, ``select``, ``narrow``      :class:`~sknn_explain.layers.Index`
``transpose``, ``swapaxes``, ``permute``                  :class:`~sknn_explain.layers.Permute`
``sum`` / ``mean`` over non-batch axes                    :class:`~sknn_explain.layers.Reduce`
``clamp`` / ``clip``, ``pow`` / ``**`` (constant          :class:`~sknn_explain.layers.Activation`
exponent), ``square``, SELU, CELU, Mish, ReLU6,
Hardtanh, Hardswish, Hardsigmoid, LogSigmoid, Softsign,
Tanhshrink, PReLU (modules and ``F.*``)
``nn.LayerNorm``, ``F.layer_norm``                        :class:`~sknn_explain.layers.LayerNorm`
``nn.RMSNorm``, ``F.rms_norm``                            :class:`~sknn_explain.layers.RMSNorm`
``nn.ConvTranspose1d/2d/3d``, ``F.conv_transpose*``       :class:`~sknn_explain.layers.
                                                          ConvTranspose`
========================================================  =====================================

Operations along the batch axis (indexing it, summing over it, moving it) are refused with
:class:`~sknn_explain.convert.UnsupportedLayerError`.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn

from ...layers import Activation, ConvTranspose, Index, LayerNorm, Permute, Reduce, RMSNorm
from .walker import REQ, Converter, Handler, as_tuple, bind

__all__ = ["OPS_FUNCTIONS", "OPS_METHODS", "OPS_MODULES", "reduce_handler"]


def _input(node: fx.Node) -> object:
    return node.args[0] if node.args else node.kwargs.get("input", node.kwargs.get("self"))


def _number(cv: Converter, node: fx.Node, v: object, what: str) -> float | int | None:
    if cv.is_data(v):
        raise cv.unsupported(node, f"{what} must be a constant, not an input-dependent tensor")
    v = cv.val(v)
    if v is None:
        return None
    if isinstance(v, torch.Tensor):
        if v.numel() != 1:
            raise cv.unsupported(node, f"{what} must be a number, got a tensor")
        v = v.item()
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise cv.unsupported(node, f"{what} must be a number, got {v!r}")
    return v.item() if isinstance(v, np.generic) else v


# ----------------------------------------------------------------------------- indexing
def _index_key(cv: Converter, node: fx.Node, key: object, rank: int) -> tuple:
    """A basic-indexing key with Ellipsis expanded; refuses tensors and the batch axis."""
    key = cv.val(key)
    key = tuple(key) if isinstance(key, tuple) else (key,)
    out = []
    for k in key:
        if isinstance(k, torch.Tensor) or (isinstance(k, list) and not all(
                isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in k)):
            raise cv.unsupported(node, "indexing with a tensor or a mask (advanced indexing) "
                                 "is not supported; use integers, slices or a list of integers")
        if isinstance(k, bool):
            raise cv.unsupported(node, "indexing with a bool is not supported")
        if isinstance(k, np.integer):
            k = int(k)
        if isinstance(k, list):
            k = [int(i) for i in k]
        out.append(k)
    if sum(isinstance(k, list) for k in out) > 1:
        raise cv.unsupported(node, "indexing with several lists (advanced indexing)")
    consuming = sum(k is not None and k is not Ellipsis for k in out)
    if Ellipsis in out:
        i = out.index(Ellipsis)
        out[i:i + 1] = [slice(None)] * (rank - consuming)
    if not out or out[0] is None:
        raise cv.unsupported(node, "it adds an axis before the batch axis")
    first = out[0]
    if not (isinstance(first, slice) and first.start in (None, 0) and first.stop is None
            and first.step in (None, 1)):
        raise cv.unsupported(node, "it indexes or slices the batch axis (axis 0); only the "
                             "other axes can be indexed")
    out[0] = slice(None)
    return tuple(out)


def _getitem(cv: Converter, node: fx.Node) -> str:
    x, key = node.args[0], node.args[1]
    if not isinstance(cv.values.get(getattr(x, "name", None)), torch.Tensor):
        raise cv.unsupported(node, "indexing a tuple or list of tensors is not a layer")
    src = cv.data(x, node)
    return cv.add(node, Index(_index_key(cv, node, key, len(cv.shape(x)))), [src])


def _select(cv: Converter, node: fx.Node) -> str:
    b = bind(node, [("input", REQ), ("dim", REQ), ("index", REQ)])
    rank = len(cv.shape(b["input"]))
    d = cv.dim(cv.val(b["dim"]), rank, node)
    key = (slice(None),) * d + (int(_number(cv, node, b["index"], "the index")),)
    return cv.add(node, Index(key), [cv.data(b["input"], node)])


def _narrow(cv: Converter, node: fx.Node) -> str:
    b = bind(node, [("input", REQ), ("dim", REQ), ("start", REQ), ("length", REQ)])
    shape = cv.shape(b["input"])
    d = cv.dim(cv.val(b["dim"]), len(shape), node)
    start = int(_number(cv, node, b["start"], "start")) % shape[d]
    length = int(_number(cv, node, b["length"], "length"))
    key = (slice(None),) * d + (slice(start, start + length),)
    return cv.add(node, Index(key), [cv.data(b["input"], node)])


# ----------------------------------------------------------------------------- permutations
def _permute_node(cv: Converter, node: fx.Node, x: object, dims: Sequence[int]) -> str:
    rank = len(cv.shape(x))
    dims = tuple(int(d) % rank for d in dims)
    if len(dims) != rank or sorted(dims) != list(range(rank)):
        raise cv.unsupported(node, f"{dims} is not a permutation of {rank} axes")
    if dims[0] != 0:
        raise cv.unsupported(node, "it moves the batch axis (axis 0)")
    src = cv.data(x, node)
    if dims == tuple(range(rank)):
        return src
    return cv.add(node, Permute(dims), [src])


def _transpose(cv: Converter, node: fx.Node) -> str:
    b = bind(node, [("input", REQ), ("dim0", REQ), ("dim1", REQ)])
    rank = len(cv.shape(b["input"]))
    d0, d1 = int(cv.val(b["dim0"])) % rank, int(cv.val(b["dim1"])) % rank
    dims = list(range(rank))
    dims[d0], dims[d1] = dims[d1], dims[d0]
    return _permute_node(cv, node, b["input"], dims)


def _permute(cv: Converter, node: fx.Node) -> str:
    if node.op == "call_method":  # x.permute(0, 2, 1) or x.permute((0, 2, 1))
        args = list(node.args[1:]) or [node.kwargs["dims"]]
        dims = cv.val(args[0]) if len(args) == 1 else [cv.val(a) for a in args]
        return _permute_node(cv, node, node.args[0], dims)
    b = bind(node, [("input", REQ), ("dims", REQ)])
    return _permute_node(cv, node, b["input"], cv.val(b["dims"]))


# ----------------------------------------------------------------------------- reductions
def reduce_handler(kind: str) -> Handler:
    """``sum`` / ``mean`` over non-batch axes (function or method)."""

    def h(cv: Converter, node: fx.Node) -> str:
        b = bind(node, [("input", REQ), ("dim", None), ("keepdim", False), ("dtype", None)])
        if b["dtype"] is not None:
            raise cv.unsupported(node, "a dtype argument is not supported")
        rank = len(cv.shape(b["input"]))
        dims = cv.val(b["dim"])
        if dims is None:
            raise cv.unsupported(node, f"a {kind} over all axes includes the batch axis; "
                                 "give the axes (e.g. dim=1)")
        dims = dims if isinstance(dims, (tuple, list)) else [dims]
        dims = tuple(cv.dim(d, rank, node) for d in dims)
        layer = Reduce(kind, dims, bool(cv.val(b["keepdim"])))
        return cv.add(node, layer, [cv.data(b["input"], node)])
    return h


# ----------------------------------------------------------------------------- element-wise
def _elementwise(name: str, spec: Sequence[tuple[str, object]] = (("input", REQ),),
                 params: Sequence[str] = ()) -> Handler:
    def h(cv: Converter, node: fx.Node) -> str:
        b = bind(node, [*spec, ("inplace", False)])
        kw = {p: _number(cv, node, b[p], p) for p in params}
        return cv.add(node, Activation(name, **kw), [cv.data(b["input"], node)])
    return h


def _clamp(cv: Converter, node: fx.Node) -> str:
    b = bind(node, [("input", REQ), ("min", None), ("max", None)])
    lo = _number(cv, node, b["min"], "min")
    hi = _number(cv, node, b["max"], "max")
    return cv.add(node, Activation("clamp", min=lo, max=hi), [cv.data(b["input"], node)])


def _pow(cv: Converter, node: fx.Node) -> str:
    base, exponent = node.args[0], node.args[1] if len(node.args) > 1 else node.kwargs.get(
        "exponent", node.kwargs.get("other"))
    if not cv.is_data(base) or cv.is_data(exponent):
        raise cv.unsupported(node, "only a power with a constant exponent is supported")
    e = _number(cv, node, exponent, "the exponent")
    return cv.add(node, Activation("pow", exponent=e), [cv.data(base, node)])


def _square(cv: Converter, node: fx.Node) -> str:
    return cv.add(node, Activation("pow", exponent=2), [cv.data(_input(node), node)])


def _prelu_weight(cv: Converter, node: fx.Node, weight: object) -> tuple[float, ...]:
    w = cv.val(weight)
    if not isinstance(w, torch.Tensor) or cv.is_data(weight):
        raise cv.unsupported(node, "the PReLU weight must be a constant tensor")
    return tuple(float(v) for v in w.detach().double().reshape(-1).tolist())


def _act_module(cv: Converter, node: fx.Node) -> str:
    mod = cv.gm.get_submodule(node.target)
    if isinstance(mod, nn.PReLU):
        layer = Activation("prelu", weight=_prelu_weight(cv, node, mod.weight))
    elif isinstance(mod, nn.CELU):
        layer = Activation("celu", alpha=float(mod.alpha))
    elif type(mod) is nn.Hardtanh:
        layer = Activation("hardtanh", min_val=float(mod.min_val), max_val=float(mod.max_val))
    else:
        layer = Activation(_MODULE_NAMES[type(mod)])
    return cv.add(node, layer, [cv.data(node.args[0], node)])


def _prelu_fn(cv: Converter, node: fx.Node) -> str:
    b = bind(node, [("input", REQ), ("weight", REQ)])
    layer = Activation("prelu", weight=_prelu_weight(cv, node, b["weight"]))
    return cv.add(node, layer, [cv.data(b["input"], node)])


_MODULE_NAMES = {
    nn.SELU: "selu", nn.Mish: "mish", nn.ReLU6: "relu6", nn.Hardswish: "hardswish",
    nn.Hardsigmoid: "hardsigmoid", nn.LogSigmoid: "logsigmoid", nn.Softsign: "softsign",
    nn.Tanhshrink: "tanhshrink",
}


# ----------------------------------------------------------------------------- normalisation
def _norm_shape(cv: Converter, node: fx.Node, x: object, shape: object) -> tuple[int, ...]:
    shape = cv.val(shape)
    shape = (int(shape),) if isinstance(shape, int) else tuple(int(s) for s in shape)
    if len(shape) >= len(cv.shape(x)):
        raise cv.unsupported(node, "it normalises over the batch axis")
    return shape


def _opt_buf(cv: Converter, t: object) -> torch.Tensor | None:
    return None if t is None else cv.buf(t)


def _layer_norm_module(cv: Converter, node: fx.Node) -> str:
    mod = cv.gm.get_submodule(node.target)
    x = node.args[0]
    shape = _norm_shape(cv, node, x, mod.normalized_shape)
    if isinstance(mod, nn.RMSNorm):
        layer = RMSNorm(shape, _opt_buf(cv, mod.weight), mod.eps)
    else:
        layer = LayerNorm(shape, _opt_buf(cv, mod.weight), _opt_buf(cv, mod.bias), mod.eps)
    return cv.add(node, layer, [cv.data(x, node)])


def _layer_norm_fn(cv: Converter, node: fx.Node) -> str:
    b = bind(node, [("input", REQ), ("normalized_shape", REQ), ("weight", None), ("bias", None),
                     ("eps", 1e-5)])
    if cv.is_data(b["weight"]) or cv.is_data(b["bias"]):
        raise cv.unsupported(node, "input-dependent weights")
    shape = _norm_shape(cv, node, b["input"], b["normalized_shape"])
    layer = LayerNorm(shape, _opt_buf(cv, cv.val(b["weight"])), _opt_buf(cv, cv.val(b["bias"])),
                      float(cv.val(b["eps"])))
    return cv.add(node, layer, [cv.data(b["input"], node)])


def _rms_norm_fn(cv: Converter, node: fx.Node) -> str:
    b = bind(node, [("input", REQ), ("normalized_shape", REQ), ("weight", None), ("eps", None)])
    if cv.is_data(b["weight"]):
        raise cv.unsupported(node, "input-dependent weights")
    shape = _norm_shape(cv, node, b["input"], b["normalized_shape"])
    eps = cv.val(b["eps"])
    layer = RMSNorm(shape, _opt_buf(cv, cv.val(b["weight"])), None if eps is None else float(eps))
    return cv.add(node, layer, [cv.data(b["input"], node)])


# ----------------------------------------------------------------------------- transposed conv
def _conv_transpose_from(cv: Converter, node: fx.Node, x: object, weight, bias, stride, padding,
                         groups, dilation) -> str:
    nd = weight.ndim - 2
    stride, padding = as_tuple(stride, nd), as_tuple(padding, nd)
    dilation = as_tuple(dilation, nd)
    in_sp, out_sp = cv.shape(x)[2:], tuple(cv.values[node.name].shape)[2:]
    # the output size the module chose (output_padding or output_size=) read off the result
    output_padding = tuple(
        o - ((i - 1) * s - 2 * p + d * (k - 1) + 1)
        for i, o, s, p, d, k in zip(in_sp, out_sp, stride, padding, dilation, weight.shape[2:]))
    layer = ConvTranspose(cv.buf(weight), _opt_buf(cv, bias), stride, padding, output_padding,
                          int(groups), dilation)
    return cv.add(node, layer, [cv.data(x, node)])


def _conv_transpose_module(cv: Converter, node: fx.Node) -> str:
    mod = cv.gm.get_submodule(node.target)
    if mod.padding_mode != "zeros":  # pragma: no cover - torch refuses other modes itself
        raise cv.unsupported(node, f"padding_mode={mod.padding_mode!r}")
    return _conv_transpose_from(cv, node, node.args[0], mod.weight, mod.bias, mod.stride,
                                mod.padding, mod.groups, mod.dilation)


def _conv_transpose_fn(cv: Converter, node: fx.Node) -> str:
    b = bind(node, [("input", REQ), ("weight", REQ), ("bias", None), ("stride", 1),
                     ("padding", 0), ("output_padding", 0), ("groups", 1), ("dilation", 1)])
    if cv.is_data(b["weight"]) or cv.is_data(b["bias"]):
        raise cv.unsupported(node, "input-dependent weights")
    return _conv_transpose_from(cv, node, b["input"], cv.val(b["weight"]), cv.val(b["bias"]),
                                cv.val(b["stride"]), cv.val(b["padding"]), cv.val(b["groups"]),
                                cv.val(b["dilation"]))


# ----------------------------------------------------------------------------- tables
_HARDTANH_SPEC = (("input", REQ), ("min_val", -1.0), ("max_val", 1.0))

OPS_MODULES: dict[type, Handler] = {
    **{cls: _act_module for cls in (*_MODULE_NAMES, nn.PReLU, nn.CELU, nn.Hardtanh)},
    nn.LayerNorm: _layer_norm_module, nn.RMSNorm: _layer_norm_module,
    nn.ConvTranspose1d: _conv_transpose_module, nn.ConvTranspose2d: _conv_transpose_module,
    nn.ConvTranspose3d: _conv_transpose_module,
}

OPS_FUNCTIONS: dict[object, Handler] = {
    operator.getitem: _getitem,
    torch.select: _select, torch.narrow: _narrow,
    torch.transpose: _transpose, torch.swapaxes: _transpose, torch.swapdims: _transpose,
    torch.permute: _permute,
    torch.sum: reduce_handler("sum"),
    torch.clamp: _clamp, torch.clip: _clamp,
    torch.pow: _pow, operator.pow: _pow, torch.square: _square,
    F.selu: _elementwise("selu"), torch.selu: _elementwise("selu"),
    F.celu: _elementwise("celu", (("input", REQ), ("alpha", 1.0)), ["alpha"]),
    F.mish: _elementwise("mish"), F.relu6: _elementwise("relu6"),
    F.hardtanh: _elementwise("hardtanh", _HARDTANH_SPEC, ["min_val", "max_val"]),
    F.hardswish: _elementwise("hardswish"), F.hardsigmoid: _elementwise("hardsigmoid"),
    F.logsigmoid: _elementwise("logsigmoid"), F.softsign: _elementwise("softsign"),
    F.tanhshrink: _elementwise("tanhshrink"), F.prelu: _prelu_fn,
    F.layer_norm: _layer_norm_fn, F.rms_norm: _rms_norm_fn,
    F.conv_transpose1d: _conv_transpose_fn, F.conv_transpose2d: _conv_transpose_fn,
    F.conv_transpose3d: _conv_transpose_fn,
}

OPS_METHODS: dict[str, Handler] = {
    "select": _select, "narrow": _narrow,
    "transpose": _transpose, "swapaxes": _transpose, "swapdims": _transpose,
    "permute": _permute, "sum": reduce_handler("sum"),
    "clamp": _clamp, "clip": _clamp, "pow": _pow, "__pow__": _pow, "square": _square,
}
