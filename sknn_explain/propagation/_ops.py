"""Building blocks shared by the propagation methods (LRP, DeepLift, Connection Weights).

Layout
------
Relevances / multipliers carry the output axis **first** inside the pass: ``(K, n, *shape)``
for ``K`` selected output nodes and ``n`` samples. Activations ``(n, *shape)`` then
broadcast against them from the right, and convolution transposes see ``K * n`` rows. The
explainers move the axis to the end (innsight's ``(n, *shape, K)``) when they are done.

A pass is :func:`walk`: nodes in reverse topological order, each node's state (a tensor, or
a ``(positive, negative)`` pair for DeepLift's RevealCancel) mapped onto its inputs by a
method-specific ``backward(node, state)`` and summed where a value feeds several nodes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch.nn.grad import conv1d_input, conv2d_input, conv3d_input

from .._output_selection import OutputSelection
from ..convert.graph import Graph, Node, input_name
from ..layers import (
    AdaptiveAvgPool,
    AdaptiveMaxPool,
    AvgPool,
    BatchNorm,
    Concat,
    Conv,
    Dense,
    ElementwiseAffine,
    Flatten,
    Gather,
    Layer,
    MaxPool,
    Pad,
    Reshape,
)
from ..rules.modifiers import KEEP, Modifier

State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]
Backward = Callable[[Node, State], Sequence[State | None]]

__all__ = [
    "AffineOp",
    "ConvOp",
    "DenseOp",
    "PositiveOp",
    "input_layers",
    "layer_key",
    "linear_op",
    "linear_vjp",
    "pool_indices",
    "predictions",
    "route",
    "start_states",
    "structural_backward",
    "walk",
    "window_mean",
]


def layer_key(layer: Layer) -> str:
    """The rule key of a layer (see :data:`sknn_explain.rules.LAYER_KEYS`)."""
    for cls in (Dense, Conv, BatchNorm, ElementwiseAffine, AdaptiveAvgPool, AvgPool,
                AdaptiveMaxPool, MaxPool):
        if isinstance(layer, cls):
            return cls.__name__
    return type(layer).__name__


# ---------------------------------------------------------------------------- linear ops
class LinearOp:
    """A linear layer ``x -> x W' (+ b')`` under weight / bias modifiers.

    Implements :class:`sknn_explain.rules.LinearMap`: ``fwd(x, weights, bias)`` evaluates
    the layer on ``(n, *in)`` with modified weights and modified bias (None: no bias);
    ``bwd(g, weights)`` applies the transpose of the modified weights to ``(K, n, *out)``.
    """

    in_shape: tuple[int, ...]

    def fwd(self, x: torch.Tensor, weights: Modifier = KEEP,
            bias: Modifier | None = None) -> torch.Tensor:
        raise NotImplementedError

    def bwd(self, g: torch.Tensor, weights: Modifier = KEEP) -> torch.Tensor:
        raise NotImplementedError


class DenseOp(LinearOp):
    def __init__(self, layer: Dense, in_shape: tuple[int, ...]) -> None:
        self.weight, self.bias, self.in_shape = layer.weight, layer.bias, in_shape

    def fwd(self, x, weights=KEEP, bias=None):
        b = None if bias is None or self.bias is None else bias(self.bias)
        return F.linear(x, weights(self.weight), b)

    def bwd(self, g, weights=KEEP):
        return torch.matmul(g, weights(self.weight))


class ConvOp(LinearOp):
    def __init__(self, layer: Conv, in_shape: tuple[int, ...]) -> None:
        self.layer, self.in_shape = layer, in_shape

    def fwd(self, x, weights=KEEP, bias=None):
        la = self.layer
        b = None if bias is None or la.bias is None else bias(la.bias)
        fn = (F.conv1d, F.conv2d, F.conv3d)[la.spatial_dims - 1]
        return fn(x, weights(la.weight), b, la.stride, la.padding, la.dilation, la.groups)

    def bwd(self, g, weights=KEEP):
        la = self.layer
        k, n = g.shape[:2]
        fn = (conv1d_input, conv2d_input, conv3d_input)[la.spatial_dims - 1]
        out = fn((k * n, *self.in_shape), weights(la.weight),
                 g.reshape(k * n, *g.shape[2:]), la.stride, la.padding, la.dilation, la.groups)
        return out.reshape(k, n, *self.in_shape)


class AffineOp(LinearOp):
    """Element-wise affine layers (BatchNorm, scalers): ``x * scale + shift`` on axis 1."""

    def __init__(self, layer: ElementwiseAffine, in_shape: tuple[int, ...]) -> None:
        self.scale, self.shift, self.in_shape = layer.scale, layer.shift, in_shape

    def _view(self, t: torch.Tensor) -> torch.Tensor:
        return t.reshape(-1, *([1] * (len(self.in_shape) - 1)))

    def fwd(self, x, weights=KEEP, bias=None):
        out = x * self._view(weights(self.scale))
        if bias is not None:
            out = out + self._view(bias(self.shift))
        return out

    def bwd(self, g, weights=KEEP):
        return g * self._view(weights(self.scale))


class PositiveOp(LinearOp):
    """A bias-free linear map with non-negative, per-output uniform weights (pooling).

    A weight modifier reduces to its :meth:`~sknn_explain.rules.modifiers.Modifier.
    pooling_factor`: ``w+ = w``, ``w- = 0``, ``w + g w+ = (1 + g) w``; ``w^2`` and ones act
    like ``w`` because the rules that use them only use each output's weights normalised
    over its window, and the weights are uniform within a window.
    """

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor],
                 in_shape: tuple[int, ...]) -> None:
        self.fn, self.in_shape = fn, in_shape

    def fwd(self, x, weights=KEEP, bias=None):
        return self.fn(x) * weights.pooling_factor()

    def bwd(self, g, weights=KEEP):
        f = weights.pooling_factor()
        if f == 0.0:
            return g.new_zeros((*g.shape[:2], *self.in_shape))
        return linear_vjp(self.fn, self.in_shape, g) * f


def linear_op(layer: Layer, x: torch.Tensor) -> LinearOp:
    """The :class:`LinearOp` of a Dense / Conv / affine / average-pooling layer at input x."""
    in_shape = tuple(x.shape[1:])
    if isinstance(layer, Dense):
        return DenseOp(layer, in_shape)
    if isinstance(layer, Conv):
        return ConvOp(layer, in_shape)
    if isinstance(layer, ElementwiseAffine):
        return AffineOp(layer, in_shape)
    if isinstance(layer, (AvgPool, AdaptiveAvgPool)):
        return PositiveOp(layer, in_shape)
    if isinstance(layer, (MaxPool, AdaptiveMaxPool)):
        return PositiveOp(window_mean(layer), in_shape)
    raise TypeError(f"no linear form for layer {type(layer).__name__}")  # pragma: no cover


def linear_vjp(fn: Callable[[torch.Tensor], torch.Tensor], in_shape: Sequence[int],
               g: torch.Tensor) -> torch.Tensor:
    """Transpose of the (affine) map ``fn`` applied to ``g`` of shape ``(K, n, *out)``."""
    k, n = g.shape[:2]
    z = torch.zeros((k * n, *in_shape), dtype=g.dtype, device=g.device, requires_grad=True)
    with torch.enable_grad():
        out = fn(z)
        (gi,) = torch.autograd.grad(out, z, g.reshape(k * n, *g.shape[2:]))
    return gi.reshape(k, n, *in_shape)


# ---------------------------------------------------------------------------- max pooling
def pool_indices(layer: MaxPool | AdaptiveMaxPool, x: torch.Tensor):
    """Max pooling of ``x`` with the winners' flat spatial indices."""
    if isinstance(layer, MaxPool):
        fn = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[layer.spatial_dims - 1]
        return fn(x, layer.kernel_size, layer.stride, layer.padding, layer.dilation,
                  layer.ceil_mode, return_indices=True)
    fn = (F.adaptive_max_pool1d, F.adaptive_max_pool2d,
          F.adaptive_max_pool3d)[layer.spatial_dims - 1]
    return fn(x, layer.output_size, return_indices=True)


def route(g: torch.Tensor, idx: torch.Tensor, in_shape: Sequence[int]) -> torch.Tensor:
    """Scatter-add ``g`` ``(K, n, C, *out)`` onto the winners ``idx`` ``(n or 1, C, *out)``."""
    k, n, c = g.shape[:3]
    out = g.new_zeros((k, n, c, math.prod(in_shape[1:])))
    index = idx.reshape(1, idx.shape[0], c, -1).expand(k, n, c, -1)
    out.scatter_add_(3, index, g.reshape(k, n, c, -1))
    return out.reshape(k, n, *in_shape)


class _WindowMean:
    """Mean over each max-pooling window (zero padding counted, divisor = kernel size)."""

    def __init__(self, layer: MaxPool) -> None:
        self.layer = layer

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        la = self.layer
        nd = la.spatial_dims
        pads: list[int] = []
        for d in reversed(range(nd)):
            length = x.shape[2 + d] + 2 * la.padding[d]
            span = la.dilation[d] * (la.kernel_size[d] - 1) + 1
            n_out = (length - span) // la.stride[d] + 1
            if la.ceil_mode:
                n_out = -(-(length - span) // la.stride[d]) + 1
                # torch drops a last window that starts inside the right padding
                if (n_out - 1) * la.stride[d] >= x.shape[2 + d] + la.padding[d]:
                    n_out -= 1
            extra = max(0, (n_out - 1) * la.stride[d] + span - length)
            pads += [la.padding[d], la.padding[d] + extra]
        xp = F.pad(x, pads)
        c = x.shape[1]
        weight = x.new_full((c, 1, *la.kernel_size), 1.0 / math.prod(la.kernel_size))
        fn = (F.conv1d, F.conv2d, F.conv3d)[nd - 1]
        return fn(xp, weight, None, la.stride, 0, la.dilation, c)


class _AdaptiveWindowMean:
    def __init__(self, layer: AdaptiveMaxPool) -> None:
        self.layer = layer

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        la = self.layer
        fn = (F.adaptive_avg_pool1d, F.adaptive_avg_pool2d,
              F.adaptive_avg_pool3d)[la.spatial_dims - 1]
        return fn(x, la.output_size)


def window_mean(layer: MaxPool | AdaptiveMaxPool) -> Callable[[torch.Tensor], torch.Tensor]:
    """The average pooling over the same windows as a max pooling layer."""
    return _WindowMean(layer) if isinstance(layer, MaxPool) else _AdaptiveWindowMean(layer)


# ---------------------------------------------------------------------------- the pass
def structural_backward(node: Node, g: torch.Tensor,
                        values: dict[str, torch.Tensor]) -> list[torch.Tensor] | None:
    """Shape-only layers (same for every method); None if ``node`` is not one of them."""
    layer = node.layer
    if isinstance(layer, (Flatten, Reshape)):
        x = values[node.inputs[0]]
        return [g.reshape(g.shape[0], g.shape[1], *x.shape[1:])]
    if isinstance(layer, Concat):
        sizes = [values[p].shape[layer.dim] for p in node.inputs]
        dim = layer.dim + 1 if layer.dim >= 0 else layer.dim
        return list(torch.split(g, sizes, dim=dim))
    if isinstance(layer, Pad):
        x = values[node.inputs[0]]
        return [linear_vjp(layer, x.shape[1:], g)]
    if isinstance(layer, Gather):  # recurrent states read by the model
        return [layer.transpose(g, tuple(values[node.inputs[0]].shape[1:]))]
    return None


def _accumulate(a: State, b: State) -> State:
    if isinstance(a, tuple) or isinstance(b, tuple):
        a2 = a if isinstance(a, tuple) else (a, a)
        b2 = b if isinstance(b, tuple) else (b, b)
        return (a2[0] + b2[0], a2[1] + b2[1])
    return a + b


def walk(graph: Graph, start: dict[str, State], backward: Backward,
         keep: Sequence[str] = ()) -> dict[str, State]:
    """Propagate ``start`` states from the output nodes down to the graph inputs.

    Returns the state of every graph input (``input_0`` ...) that received one, and of
    every node named in ``keep`` that received one (its complete state, at the output of
    that node).
    """
    states = dict(start)
    kept: dict[str, State] = {}
    for node in reversed(graph.nodes):
        g = states.pop(node.name, None)
        if g is None:
            continue
        if node.name in keep:
            kept[node.name] = g
        for name, c in zip(node.inputs, backward(node, g)):
            if c is not None:
                states[name] = c if name not in states else _accumulate(states[name], c)
    return {**kept, **{input_name(i): states[input_name(i)] for i in range(graph.n_inputs)
                       if input_name(i) in states}}


def start_states(graph: Graph, values: dict[str, torch.Tensor], selection: OutputSelection,
                 *, fill: str) -> dict[str, torch.Tensor]:
    """One-hot start states ``(K, n, *out_shape)`` of the selected output nodes.

    ``fill="value"`` puts the output's value at the node (LRP), ``"one"`` a one (DeepLift,
    Connection Weights). Column ``c`` of the trailing output axis is output node
    ``selection.indices[l][j]`` of output layer ``selection.layers[l]``.
    """
    k_total = sum(selection.sizes)
    start: dict[str, torch.Tensor] = {}
    offset = 0
    for layer, idx in zip(selection.layers, selection.indices):
        name = graph.outputs[layer]
        v = values[name]
        n = v.shape[0]
        flat = v.reshape(n, -1)
        idx_t = torch.as_tensor(idx, dtype=torch.long, device=v.device)
        t = v.new_zeros((k_total, n, flat.shape[1]))
        rows = torch.arange(offset, offset + len(idx), device=v.device)
        src = flat[:, idx_t].T if fill == "value" else v.new_ones((len(idx), n))
        t[rows, :, idx_t] = src
        t = t.reshape(k_total, n, *v.shape[1:])
        start[name] = t if name not in start else start[name] + t
        offset += len(idx)
    return start


def predictions(graph: Graph, values: dict[str, torch.Tensor],
                selection: OutputSelection) -> torch.Tensor:
    """Selected outputs ``(n, K)`` from the forward values."""
    outs = [values[o].reshape(values[o].shape[0], -1) for o in graph.outputs]
    return selection.pick(outs)


def input_layers(graph: Graph) -> set[str]:
    """Dense / Conv nodes that read a graph input directly or through shape-only layers."""
    passthrough = (Flatten, Reshape, Pad, ElementwiseAffine)
    reach = {input_name(i) for i in range(graph.n_inputs)}
    found: set[str] = set()
    for node in graph.nodes:
        if any(p in reach for p in node.inputs):
            if isinstance(node.layer, (Dense, Conv)):
                found.add(node.name)
            elif isinstance(node.layer, passthrough):
                reach.add(node.name)
    return found
