"""innsight's "model as list" form (a plain dict) <-> :class:`~sknn_explain.convert.Graph`.

The dict follows innsight's converter (``Converter$new(model_as_list)``) so models exported for
innsight load unchanged:

* ``input_dim``: per-sample shape (channels first), or a list of shapes for several inputs;
* ``input_nodes`` / ``output_nodes``: **1-based** indices into ``layers`` of the layers taking
  the model inputs / giving the model outputs (defaults: the first / the last layer);
* ``input_names`` / ``output_names`` (optional), ``output_dim`` (optional, checked);
* ``layers``: dicts with ``type``, ``input_layers`` (1-based, ``0`` = model input),
  ``output_layers`` (``-1`` = model output; informational), optional ``dim_in`` / ``dim_out``
  (checked) and per type:

  - ``"Dense"``: ``weight`` (out, in), ``bias``, ``activation_name``;
  - ``"Conv1D"`` / ``"Conv2D"``: ``weight`` (out, in, *kernel), ``bias``, ``activation_name``,
    ``stride``, ``padding`` (``(left, right)`` / ``(left, right, top, bottom)``),
    ``dilation``; extension: ``groups``;
  - ``"MaxPooling1D/2D"``, ``"AveragePooling1D/2D"``: ``kernel_size``, ``strides``;
  - ``"BatchNorm"``: ``num_features``, ``eps``, ``gamma``, ``beta``, ``run_mean``, ``run_var``;
  - ``"Flatten"``: ``start_dim`` / ``end_dim`` (R axes: 1 = batch, default 2 and -1);
  - ``"Concatenate"``: ``axis`` (or ``dim``; R axes: 2 = channels / features);
  - ``"Add"``; ``"Skipping"`` (dropout, identity);
  - ``"Padding"``: ``padding``, ``mode``, ``value``;
  - ``"GlobalPooling"``: ``method`` (``"average"`` or ``"max"``; output ``(C,)``);
  - ``"Activation"``: ``act_name``.

  Activation names: ``linear``, ``relu``, ``leaky_relu``, ``elu``, ``tanh``, ``sigmoid``,
  ``softplus``, ``softmax``, ``gelu``, ``silu``, ``exp`` (parameters such as
  ``negative_slope`` or ``beta`` may be given as extra keys). Extensions written by
  :func:`graph_to_dict` for layers innsight lacks: ``"Reshape"`` (``shape``),
  ``"ElementwiseAffine"`` (``scale``, ``shift``), ``"AdaptivePooling"`` (``method``,
  ``output_size``), and ``padding`` / ``dilation`` / ``ceil_mode`` / ``count_include_pad`` keys
  on pooling layers.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
from torch import nn

from .._naming import normalize_names, normalize_output_names
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
    Layer,
    MaxPool,
    Pad,
    Reshape,
)
from ..layers.activation import ACTIVATION_ALIASES, ACTIVATION_PARAMS
from .nodes import NodeBuilder, input_name

__all__ = ["build_graph", "graph_to_dict"]

#: a Graph class (``build_graph`` is given the class, so this module need not import it)
G = TypeVar("G", bound=nn.Module)


#: largest number of values per sample of any input or layer output a model dict may define
#: (the builder runs every layer once on one example row to learn the shapes)
MAX_VALUES_PER_SAMPLE = 2**24


def _size(v: object, what: str) -> int:
    """One axis length: a positive integer (an integral float such as ``3.0`` is accepted)."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer, float,
                                                              np.floating)):
        raise ValueError(f"{what} must contain positive integers, got {v!r}")
    if not float(v).is_integer() or v < 1:
        raise ValueError(f"{what} must contain positive integers, got {v!r}")
    return int(v)


def _check_values(shape: Sequence[int], what: str) -> None:
    n = int(np.prod([int(d) for d in shape], dtype=np.float64))
    if n > MAX_VALUES_PER_SAMPLE:
        raise ValueError(f"{what} {tuple(shape)} has {n} values per sample; at most "
                         f"{MAX_VALUES_PER_SAMPLE} are supported")


def _shape_list(dim: object, what: str) -> list[tuple[int, ...]]:
    if isinstance(dim, (int, np.integer, float)) and not isinstance(dim, bool):
        shapes = [(_size(dim, what),)]
    else:
        arr = list(dim) if isinstance(dim, (list, tuple, np.ndarray)) else None
        if arr and all(isinstance(v, (int, np.integer, float, np.floating)) for v in arr):
            shapes = [tuple(_size(v, what) for v in arr)]
        elif arr and all(isinstance(v, (list, tuple, np.ndarray, int, np.integer))
                         for v in arr):
            shapes = [s for v in arr for s in _shape_list(v, what)]
        else:
            raise ValueError(f"{what} must be a shape or a list of shapes, got {dim!r}")
    for s in shapes:  # before anything is allocated for it
        _check_values(s, what)
    return shapes


def _ints(v: object) -> list[int]:
    if v is None:
        return []
    if isinstance(v, (int, np.integer, float)):
        return [int(v)]
    return [int(x) for x in np.asarray(v).reshape(-1)]


def _tensor(v: object, what: str, dtype: torch.dtype, device: torch.device,
            numel: int | None = None) -> torch.Tensor:
    """A finite weight tensor (``numel``: the exact number of values required)."""
    if v is None:
        raise ValueError(f"{what} is missing")
    if isinstance(v, torch.Tensor):
        t = v.detach().to(dtype=torch.float64, device="cpu")
    else:
        try:
            t = torch.as_tensor(np.asarray(v, dtype=np.float64))
        except (TypeError, ValueError) as err:
            raise ValueError(f"{what} must be numeric, got {type(v).__name__}") from err
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{what} contains NaN or infinite values")
    if numel is not None and t.numel() != numel:
        raise ValueError(f"{what} must have {numel} values, got shape {tuple(t.shape)}")
    return t.to(dtype=dtype, device=device)


def _axis(d: object, rank: int, what: str) -> int:
    """A 0-based torch axis of a rank-``rank`` tensor (batch axis 0 refused; no wrapping)."""
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)):
        raise ValueError(f"{what} must be an integer axis, got {d!r}")
    d = int(d)
    if not -rank <= d < rank:
        raise ValueError(f"{what} {d} is out of range for a tensor with {rank} axes "
                         "(batch axis included)")
    if d % rank == 0:
        raise ValueError(f"{what} {d} is the batch axis")
    return d % rank


def _r_axis(d: object, rank: int, what: str) -> int:
    """innsight's 1-based axis (1 = batch, negative from the end) -> 0-based torch axis."""
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)):
        raise ValueError(f"{what} must be an integer axis, got {d!r}")
    d = int(d)
    if d == 0:
        raise ValueError(f"{what} 0 does not exist: axes are 1-based as in innsight (1 is the "
                         "batch axis, 2 the first feature / channel axis)")
    if d == 1:
        raise ValueError(f"{what} 1 is the batch axis in innsight's convention; the first "
                         "feature / channel axis is 2")
    if d > rank or d < -(rank - 1):
        raise ValueError(f"{what} {d} is out of range for a tensor with {rank} axes (1-based, "
                         "batch axis included)")
    return d - 1 if d > 0 else d % rank


def _activation(name: object, params: dict, rank: int) -> Activation | None:
    key = name.lower() if isinstance(name, str) else name
    key = ACTIVATION_ALIASES.get(key, key)
    if key is None:
        return None
    if key not in ACTIVATION_PARAMS:
        raise ValueError(f"unknown activation_name {name!r}; use one of "
                         f"{sorted(set(ACTIVATION_PARAMS) | {'linear'})}")
    kw = {k: params[k] for k in ACTIVATION_PARAMS[key] if k in params}
    if key in ("softmax", "log_softmax"):
        kw["dim"] = _axis(kw.get("dim", 1), rank, f"{key} dim")
    return Activation(key, **kw)


class _Builder:
    """Reads a model dict layer by layer (topological order) into graph nodes, running each
    layer once on an example row to learn the shapes."""

    def __init__(self, model: dict, dtype: torch.dtype, device: torch.device,
                 graph_cls: type[G]) -> None:
        if not isinstance(model, dict):
            raise TypeError(f"a model dict is required, got {type(model).__name__}")
        if "input_dim" not in model or "layers" not in model:
            raise ValueError("the model dict needs at least the keys 'input_dim' and 'layers'")
        self.model, self.dtype, self.device = model, dtype, device
        self.graph_cls = graph_cls
        self.shapes = _shape_list(model["input_dim"], "input_dim")
        self.layers = list(model["layers"])
        if not self.layers:
            raise ValueError("the model dict has no layers")
        n = len(self.layers)
        if "input_nodes" not in model:
            warnings.warn("the model dict has no 'input_nodes'; assuming the first layer is the "
                          "only input layer", UserWarning, stacklevel=4)
        if "output_nodes" not in model:
            warnings.warn("the model dict has no 'output_nodes'; assuming the last layer is the "
                          "only output layer", UserWarning, stacklevel=4)
        self.input_nodes = _ints(model.get("input_nodes", [1]))
        self.output_nodes = _ints(model.get("output_nodes", [n]))
        for idx in self.input_nodes + self.output_nodes:
            if not 1 <= idx <= n:
                raise ValueError(f"layer index {idx} in input_nodes / output_nodes is out of "
                                 f"range 1..{n} (indices are 1-based, as in innsight)")
        if len(self.input_nodes) != len(self.shapes):
            raise ValueError(f"input_dim gives {len(self.shapes)} input shape(s) but "
                             f"input_nodes lists {len(self.input_nodes)} layer(s)")
        self.builder = NodeBuilder(len(self.shapes))
        self.values = {input_name(i): torch.zeros((1, *s), dtype=dtype, device=device)
                       for i, s in enumerate(self.shapes)}

    def parents(self, idx: int) -> list[int]:
        spec = self.layers[idx - 1]
        if "input_layers" in spec:
            return _ints(spec["input_layers"])
        if idx in self.input_nodes:
            return [0]
        warnings.warn(f"layer {idx} has no 'input_layers'; assuming layer {idx - 1}",
                      UserWarning, stacklevel=5)
        return [idx - 1]

    def order(self) -> list[int]:
        n = len(self.layers)
        deps = {i: [p for p in self.parents(i) if p != 0] for i in range(1, n + 1)}
        for i, ps in deps.items():
            bad = [p for p in ps if not 1 <= p <= n]
            if bad:
                raise ValueError(f"layer {i} has input_layers {bad} out of range 1..{n}")
        done: list[int] = []
        placed: set[int] = set()
        while len(done) < n:
            ready = [i for i in range(1, n + 1) if i not in placed and
                     all(p in placed for p in deps[i])]
            if not ready:
                raise ValueError("the layers of the model dict contain a cycle")
            done.append(ready[0])
            placed.add(ready[0])
        return done

    def run(self) -> G:
        names: dict[int, str] = {}
        for idx in self.order():
            spec = self.layers[idx - 1]
            parents = []
            for p in self.parents(idx):
                if p == 0:
                    if idx not in self.input_nodes:
                        raise ValueError(f"layer {idx} takes the model input (input_layers 0) "
                                         "but is not listed in input_nodes")
                    parents.append(input_name(self.input_nodes.index(idx)))
                else:
                    parents.append(names[p])
            try:
                names[idx] = self.layer(idx, spec, parents)
            except (ValueError, RuntimeError, TypeError, KeyError) as err:
                raise ValueError(
                    f"layer {idx} ({spec.get('type')!r}) of the model dict: "
                    f"{str(err).splitlines()[0]}"
                ) from err
        outputs = self.builder.ensure_node_outputs([names[i] for i in self.output_nodes])
        graph = self.graph_cls(self.builder.nodes, len(self.shapes), outputs, self.shapes)
        self.check_output_dim(graph)
        graph.input_names = self.names("input_names", self.shapes)
        out_dims = [tuple(self.values[o].shape[1:]) for o in outputs]
        if self.model.get("output_names") is not None:
            names = normalize_output_names(self.model["output_names"], len(outputs))
            for j, (n, s) in enumerate(zip(names, out_dims)):
                if len(n) != int(np.prod(s)):
                    raise ValueError(f"output_names for output {j} has {len(n)} names, the "
                                     f"output has {int(np.prod(s))} nodes")
            graph.output_names = names
        return graph

    def names(self, key: str, shapes: Sequence[tuple]) -> list | None:
        given = self.model.get(key)
        if given is None:
            return None
        return normalize_names(given, shapes, key)

    def check_output_dim(self, graph: G) -> None:
        if self.model.get("output_dim") is None:
            return
        given = _shape_list(self.model["output_dim"], "output_dim")
        calc = [tuple(self.values[o].shape[1:]) for o in graph.outputs]
        if given != calc:
            raise ValueError(f"output_dim of the model dict is {given}, the layers give {calc}")

    # -- one layer
    def emit(self, base: str, layer: Layer, inputs: list[str]) -> str:
        with torch.no_grad():
            out = layer(*[self.values[i] for i in inputs])
        name = self.builder.add(base, layer, inputs)
        self.values[name] = out
        return name

    def check_dim(self, idx: int, key: str, got: object) -> None:
        spec = self.layers[idx - 1]
        if spec.get(key) is None:
            return
        given = spec[key]
        if isinstance(got, list):
            ok = [tuple(_ints(g)) for g in given] == got
        else:
            ok = tuple(_ints(given)) == got
        if not ok:
            raise ValueError(f"{key} is {given!r}, but the computed shape is {got!r}")

    def check_padding(self, shape: tuple[int, ...], pad: Sequence[int]) -> None:
        """Bound the padded size before the example row is padded."""
        if any(p < 0 for p in pad):
            raise ValueError(f"padding must be non-negative, got {list(pad)}")
        if len(pad) % 2 or len(pad) // 2 > len(shape):
            raise ValueError(f"padding must give (left, right) pairs for at most {len(shape)} "
                             f"axes, got {list(pad)}")
        out = list(shape)
        for i in range(len(pad) // 2):
            out[-1 - i] += pad[2 * i] + pad[2 * i + 1]
        _check_values(out, "the padded output shape")

    def check_output(self, shape: tuple[int, ...], w: torch.Tensor, pad: Sequence[int],
                     spec: dict, nd: int) -> None:
        """Bound a convolution's output size before it is computed."""
        if any(p < 0 for p in pad):
            raise ValueError(f"padding must be non-negative, got {list(pad)}")
        stride = _ints(spec.get("stride")) or [1] * nd
        dilation = _ints(spec.get("dilation")) or [1] * nd
        if any(v < 1 for v in stride + dilation):
            raise ValueError("stride and dilation must be positive")
        spatial = list(shape[1:])
        for i in range(min(nd, len(spatial))):
            padded = spatial[-1 - i] + pad[2 * i] + pad[2 * i + 1]
            span = dilation[-1 - i if len(dilation) > 1 else 0] * (w.shape[-1 - i] - 1) + 1
            step = stride[-1 - i if len(stride) > 1 else 0]
            spatial[-1 - i] = max(0, (padded - span) // step + 1)
        _check_values([w.shape[0], *spatial], "the convolution's output shape")

    def layer(self, idx: int, spec: dict, parents: list[str]) -> str:
        kind = spec.get("type")
        in_shapes = [tuple(self.values[p].shape[1:]) for p in parents]
        self.check_dim(idx, "dim_in", in_shapes[0] if len(in_shapes) == 1 else in_shapes)
        base = f"{str(kind).lower()}_{idx}"
        x = parents[0]
        rank = len(in_shapes[0]) + 1
        act_name = spec.get("activation_name")
        reader = _READERS.get(kind) if isinstance(kind, str) else None
        if reader is None:
            raise ValueError(f"unknown layer type {kind!r}")
        out = reader(self, _LayerAt(spec, parents, in_shapes, base, x, rank, kind))
        if act_name is not None and kind in ("Dense", "Conv1D", "Conv2D"):
            act = _activation(act_name, spec, len(self.values[out].shape))
            if act is not None:
                out = self.emit(f"{base}_{act.name}", act, [out])
        self.check_dim(idx, "dim_out", tuple(self.values[out].shape[1:]))
        return out



# ---------------------------------------------------------------------------- layer readers
@dataclass(frozen=True)
class _LayerAt:
    """One layer of the dict while it is read: its spec, parents and their shapes."""

    spec: dict
    parents: list[str]
    in_shapes: list[tuple[int, ...]]
    base: str  # the node name to start from
    x: str  # the first parent
    rank: int  # of the first input, batch axis included
    kind: str


def _read_dense(bld: _Builder, at: _LayerAt) -> str:
    spec, in_shapes, base, x = at.spec, at.in_shapes, at.base, at.x
    dt, dev = bld.dtype, bld.device
    w = _tensor(spec.get("weight"), "weight", dt, dev)
    if w.ndim != 2 or w.shape[1] != in_shapes[0][-1]:
        raise ValueError(f"weight must have shape (out, in) = (*, {in_shapes[0][-1]}), "
                         f"got {tuple(w.shape)}")
    b = spec.get("bias")
    bias = None if b is None else _tensor(b, "bias", dt, dev, numel=w.shape[0])
    return bld.emit(base, Dense(w, None if bias is None else bias.reshape(-1)), [x])


def _read_conv(bld: _Builder, at: _LayerAt) -> str:
    spec, in_shapes, base, x, kind = at.spec, at.in_shapes, at.base, at.x, at.kind
    dt, dev = bld.dtype, bld.device
    nd = 1 if kind == "Conv1D" else 2
    w = _tensor(spec.get("weight"), "weight", dt, dev)
    if w.ndim != nd + 2:
        raise ValueError(f"weight must be (out, in, *kernel) with {nd} kernel axes")
    pad = _ints(spec.get("padding")) or [0] * (2 * nd)
    if len(pad) == 1:
        pad = pad * (2 * nd)
    elif len(pad) == nd and nd == 2 and len(pad) != 2 * nd:
        pad = [pad[0], pad[0], pad[1], pad[1]]
    if len(pad) != 2 * nd:
        raise ValueError(f"padding must have 1 or {2 * nd} entries, got {pad}")
    per_dim = [(pad[2 * (nd - 1 - i)], pad[2 * (nd - 1 - i) + 1]) for i in range(nd)]
    conv_pad = tuple(lo for lo, _ in per_dim)
    if any(lo != hi for lo, hi in per_dim):
        x = bld.emit(f"{base}_pad", Pad(tuple(pad)), [x])
        conv_pad = (0,) * nd
    b = spec.get("bias")
    bias = None if b is None else _tensor(b, "bias", dt, dev, numel=w.shape[0])
    bld.check_output(in_shapes[0], w, pad, spec, nd)
    layer = Conv(w, None if bias is None else bias.reshape(-1),
                 tuple(_ints(spec.get("stride")) or [1] * nd), conv_pad,
                 tuple(_ints(spec.get("dilation")) or [1] * nd),
                 int(spec.get("groups", 1)))
    return bld.emit(base, layer, [x])


def _read_pooling(bld: _Builder, at: _LayerAt) -> str:
    spec, base, x, kind = at.spec, at.base, at.x, at.kind
    nd = 1 if kind.endswith("1D") else 2
    kernel = _ints(spec.get("kernel_size"))
    if not kernel:
        raise ValueError("kernel_size is missing")
    strides = _ints(spec.get("strides")) or kernel
    pad = _ints(spec.get("padding")) or [0]
    if kind.startswith("Max"):
        layer = MaxPool(nd, kernel, strides, pad, _ints(spec.get("dilation")) or [1],
                        bool(spec.get("ceil_mode", False)))
    else:
        layer = AvgPool(nd, kernel, strides, pad, bool(spec.get("ceil_mode", False)),
                        bool(spec.get("count_include_pad", True)))
    return bld.emit(base, layer, [x])


def _read_batch_norm(bld: _Builder, at: _LayerAt) -> str:
    spec, in_shapes, base, x = at.spec, at.in_shapes, at.base, at.x
    dt, dev = bld.dtype, bld.device
    n = in_shapes[0][0] if in_shapes[0] else 0
    if spec.get("num_features") is not None and _ints(spec["num_features"]) != [n]:
        raise ValueError(f"num_features is {spec['num_features']!r}, but the input "
                         f"has {n} channels / features")
    f64 = torch.float64
    gamma = _tensor(spec.get("gamma"), "gamma", f64, dev, numel=n).reshape(-1)
    beta = spec.get("beta")
    beta = torch.zeros(n, dtype=f64, device=dev) if beta is None else _tensor(
        beta, "beta", f64, dev, numel=n).reshape(-1)
    mean = _tensor(spec.get("run_mean"), "run_mean", f64, dev, numel=n).reshape(-1)
    var = _tensor(spec.get("run_var"), "run_var", f64, dev, numel=n).reshape(-1)
    eps = _tensor(spec.get("eps", 1e-5), "eps", f64, dev, numel=1).reshape(())
    if bool((var < 0).any()) or bool(eps < 0):
        raise ValueError("run_var and eps must be non-negative (a variance)")
    if bool((var + eps <= 0).any()):
        raise ValueError("run_var + eps must be positive")
    scale = gamma / torch.sqrt(var + eps)
    return bld.emit(base, BatchNorm(scale.to(dt), (beta - mean * scale).to(dt)), [x])


def _read_flatten(bld: _Builder, at: _LayerAt) -> str:
    spec, base, x, rank = at.spec, at.base, at.x, at.rank
    start, end = spec.get("start_dim"), spec.get("end_dim")
    s = _r_axis(2 if start is None else start, rank, "start_dim")
    e = _r_axis(-1 if end is None else end, rank, "end_dim")
    if e < s:
        raise ValueError(f"end_dim {end!r} comes before start_dim {start!r}")
    return bld.emit(base, Flatten(s, -1 if e == rank - 1 else e), [x])


def _read_concatenate(bld: _Builder, at: _LayerAt) -> str:
    spec, parents, base, rank = at.spec, at.parents, at.base, at.rank
    d = _r_axis(spec.get("axis", spec.get("dim", 2)), rank, "axis")
    return bld.emit(base, Concat(d), parents)


def _read_add(bld: _Builder, at: _LayerAt) -> str:
    parents, base = at.parents, at.base
    return bld.emit(base, Add(), parents)


def _read_skipping(bld: _Builder, at: _LayerAt) -> str:
    return at.x


def _read_padding(bld: _Builder, at: _LayerAt) -> str:
    spec, in_shapes, base, x = at.spec, at.in_shapes, at.base, at.x
    value = spec.get("value", 0.0)
    bld.check_padding(in_shapes[0], _ints(spec.get("padding")))
    out = bld.emit(base, Pad(tuple(_ints(spec.get("padding"))),
                              spec.get("mode", "constant"),
                              0.0 if value is None else float(value)), [x])
    return out


def _read_global_pooling(bld: _Builder, at: _LayerAt) -> str:
    spec, in_shapes, base, x, rank, kind = at.spec, at.in_shapes, at.base, at.x, at.rank, at.kind
    method = spec.get("method", "average")
    if method not in ("average", "max"):
        raise ValueError(f"method must be 'average' or 'max', got {method!r}")
    nd = rank - 2
    cls = AdaptiveAvgPool if method == "average" else AdaptiveMaxPool
    if kind == "GlobalPooling":
        pooled = bld.emit(f"{base}_pool", cls(nd, 1), [x])
        out = bld.emit(base, Flatten(1, -1), [pooled])
    else:
        size = [_size(v, "output_size") for v in _ints(spec.get("output_size"))]
        _check_values([in_shapes[0][0], *size], "the pooled output shape")
        out = bld.emit(base, cls(nd, size), [x])
    return out


def _read_activation(bld: _Builder, at: _LayerAt) -> str:
    spec, base, x, rank = at.spec, at.base, at.x, at.rank
    act = _activation(spec.get("act_name"), spec, rank)
    return x if act is None else bld.emit(base, act, [x])


def _read_reshape(bld: _Builder, at: _LayerAt) -> str:
    spec, base, x = at.spec, at.base, at.x
    return bld.emit(base, Reshape(tuple(_ints(spec.get("shape")))), [x])


def _read_elementwise_affine(bld: _Builder, at: _LayerAt) -> str:
    spec, in_shapes, base, x = at.spec, at.in_shapes, at.base, at.x
    dt, dev = bld.dtype, bld.device
    scale = _tensor(spec.get("scale"), "scale", dt, dev).reshape(-1)
    shift = _tensor(spec.get("shift"), "shift", dt, dev).reshape(-1)
    n = in_shapes[0][0] if in_shapes[0] else 1
    if scale.numel() not in (1, n) or shift.numel() not in (1, n):
        raise ValueError(f"scale and shift must have 1 or {n} values (one per channel "
                         f"/ feature), got {scale.numel()} and {shift.numel()}")
    return bld.emit(base, ElementwiseAffine(scale, shift), [x])


#: innsight layer ``type`` -> the reader that emits its graph node(s); returns the node
#: holding the layer's output (Dense / Conv layers' ``activation_name`` is added after)
_READERS: dict[str, Callable[[_Builder, _LayerAt], str]] = {
    "Dense": _read_dense,
    "Conv1D": _read_conv,
    "Conv2D": _read_conv,
    "MaxPooling1D": _read_pooling,
    "MaxPooling2D": _read_pooling,
    "AveragePooling1D": _read_pooling,
    "AveragePooling2D": _read_pooling,
    "BatchNorm": _read_batch_norm,
    "Flatten": _read_flatten,
    "Concatenate": _read_concatenate,
    "Concatenation": _read_concatenate,
    "Add": _read_add,
    "Skipping": _read_skipping,
    "Padding": _read_padding,
    "GlobalPooling": _read_global_pooling,
    "AdaptivePooling": _read_global_pooling,
    "Activation": _read_activation,
    "Reshape": _read_reshape,
    "ElementwiseAffine": _read_elementwise_affine,
}


def build_graph(model: dict, dtype: torch.dtype, device: torch.device, *,
                graph_cls: type[G]) -> G:
    """A ``graph_cls`` (:class:`~sknn_explain.convert.Graph`) from innsight's "model as list"
    dict (see the module docstring; :func:`~sknn_explain.convert.dict_to_graph` is the
    public entry point)."""
    return _Builder(model, dtype, torch.device(device), graph_cls).run()


# ---------------------------------------------------------------------------- export
def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy().copy()


def _layer_dict(layer: Layer, rank: int | None) -> dict:
    if isinstance(layer, Dense):
        return {"type": "Dense", "weight": _np(layer.weight),
                "bias": None if layer.bias is None else _np(layer.bias),
                "activation_name": "linear"}
    if isinstance(layer, Conv):
        nd = layer.spatial_dims
        pad = [p for d in reversed(layer.padding) for p in (d, d)]
        return {"type": f"Conv{nd}D", "weight": _np(layer.weight),
                "bias": None if layer.bias is None else _np(layer.bias),
                "activation_name": "linear", "stride": list(layer.stride), "padding": pad,
                "dilation": list(layer.dilation), "groups": layer.groups}
    if isinstance(layer, MaxPool):
        return {"type": f"MaxPooling{layer.spatial_dims}D", "kernel_size": list(layer.kernel_size),
                "strides": list(layer.stride), "padding": list(layer.padding),
                "dilation": list(layer.dilation), "ceil_mode": layer.ceil_mode}
    if isinstance(layer, AvgPool):
        if layer.divisor_override is not None:
            raise ValueError("AvgPool with divisor_override has no dict form")
        return {"type": f"AveragePooling{layer.spatial_dims}D",
                "kernel_size": list(layer.kernel_size), "strides": list(layer.stride),
                "padding": list(layer.padding), "ceil_mode": layer.ceil_mode,
                "count_include_pad": layer.count_include_pad}
    if isinstance(layer, BatchNorm):
        n = layer.scale.numel()
        return {"type": "BatchNorm", "num_features": n, "eps": 0.0, "gamma": _np(layer.scale),
                "beta": _np(layer.shift), "run_mean": np.zeros(n), "run_var": np.ones(n)}
    if isinstance(layer, ElementwiseAffine):
        return {"type": "ElementwiseAffine", "scale": _np(layer.scale), "shift": _np(layer.shift)}
    if isinstance(layer, Flatten):
        s, e = layer.start_dim, layer.end_dim
        return {"type": "Flatten", "start_dim": s + 1 if s >= 0 else s,
                "end_dim": e + 1 if e >= 0 else e}
    if isinstance(layer, Reshape):
        return {"type": "Reshape", "shape": list(layer.shape)}
    if isinstance(layer, Concat):
        d = layer.dim if layer.dim >= 0 or rank is None else layer.dim % rank
        return {"type": "Concatenate", "axis": d + 1 if d >= 0 else d}
    if isinstance(layer, Add):
        return {"type": "Add"}
    if isinstance(layer, Pad):
        return {"type": "Padding", "padding": list(layer.pad), "mode": layer.mode,
                "value": layer.value}
    if isinstance(layer, (AdaptiveAvgPool, AdaptiveMaxPool)):
        method = "average" if isinstance(layer, AdaptiveAvgPool) else "max"
        return {"type": "AdaptivePooling", "method": method,
                "output_size": list(layer.output_size)}
    if isinstance(layer, Activation):
        out = {"type": "Activation", "act_name": "linear" if layer.name == "identity"
               else layer.name}
        out.update({k: v for k, v in layer.params.items()})
        if "dim" in out and rank is not None:
            out["dim"] = int(out["dim"]) % rank
        return out
    raise ValueError(f"layer {type(layer).__name__} has no dict form")


def graph_to_dict(graph: nn.Module) -> dict:
    """innsight's "model as list" form of a :class:`~sknn_explain.convert.Graph`.

    The weights are numpy arrays; the format is described in the module docstring.
    ``dict_to_graph(graph_to_dict(g))`` computes the same function as ``g``.

    Parameters
    ----------
    graph : Graph
        The graph to serialise.

    Returns
    -------
    dict
        ``input_dim``, ``input_nodes``, ``output_nodes`` and ``layers`` (one dict per
        layer), as :func:`~sknn_explain.convert.dict_to_graph` reads them.

    Examples
    --------
    >>> import torch
    >>> from sknn_explain.convert import Graph, Node, dict_to_graph, graph_to_dict
    >>> from sknn_explain.layers import Dense
    >>> g = Graph([Node("dense", Dense(torch.ones(2, 3)), ["input_0"])], 1, ["dense"], [(3,)])
    >>> model = graph_to_dict(g)
    >>> model["input_dim"], [layer["type"] for layer in model["layers"]]
    ([[3]], ['Dense'])
    >>> dict_to_graph(model)(torch.ones(1, 3))
    (tensor([[3., 3.]]),)
    """
    shapes = graph.node_shapes() if graph.input_shapes is not None else None
    names = [n.name for n in graph.nodes]
    layers: list[dict] = []
    index: dict[str, int] = {}
    input_nodes: list[int] = []
    consumers: dict[str, list[str]] = {}
    for node in graph.nodes:
        for p in node.inputs:
            consumers.setdefault(p, []).append(node.name)
    # every graph input enters through one layer (a Skipping layer when it is shared)
    direct_input: dict[str, str] = {}
    for i in range(graph.n_inputs):
        inp = input_name(i)
        users = consumers.get(inp, [])
        if len(users) == 1 and graph.node(users[0]).inputs == [inp]:
            direct_input[users[0]] = inp
        else:
            layers.append({"type": "Skipping", "input_layers": [0], "output_layers": []})
            index[inp] = len(layers)
        input_nodes.append(index.get(inp, 0))
    for node in graph.nodes:
        rank = None if shapes is None else len(shapes[node.inputs[0]]) + 1
        d = _layer_dict(node.layer, rank)
        d["input_layers"] = [0] if node.name in direct_input else [index[p] for p in node.inputs]
        d["output_layers"] = []
        if shapes is not None:
            dims = [list(shapes[p]) for p in node.inputs]
            d["dim_in"] = dims[0] if len(dims) == 1 else dims
            d["dim_out"] = list(shapes[node.name])
        layers.append(d)
        index[node.name] = len(layers)
        if node.name in direct_input:
            input_nodes[int(direct_input[node.name].split("_")[1])] = len(layers)
    for node in graph.nodes:
        for p in node.inputs:
            if p in index and p not in direct_input.values():
                layers[index[p] - 1]["output_layers"].append(index[node.name])
    for out in graph.outputs:
        layers[index[out] - 1]["output_layers"].append(-1)
    del names
    model: dict = {
        "input_dim": [list(s) for s in graph.input_shapes] if graph.input_shapes else None,
        "input_nodes": input_nodes,
        "output_nodes": [index[o] for o in graph.outputs],
        "layers": layers,
    }
    if graph.input_names is not None:
        model["input_names"] = graph.input_names
    if graph.output_names is not None and all(n is not None for n in graph.output_names):
        model["output_names"] = [list(n) for n in graph.output_names]
    return model
