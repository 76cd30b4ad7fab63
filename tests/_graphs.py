"""Hand-built sknn_explain Graphs, independent of the library's converter.

``sequential_graph`` maps an ``nn.Sequential`` of the common layers to a Graph node by node
(independent of the library's converter, so the propagation tests do not depend on it).
``ResidualNet`` / ``ConcatNet`` are torch modules with a skip connection / two inputs and
two outputs, with hand-built graphs, for Add and Concat.
"""

from __future__ import annotations

import torch
from torch import nn

from sknn_explain.convert import Graph, Node
from sknn_explain.layers import (
    Activation,
    AdaptiveAvgPool,
    AdaptiveMaxPool,
    Add,
    AvgPool,
    BatchNorm,
    Concat,
    Conv,
    Dense,
    Flatten,
    MaxPool,
    Pad,
)

_ACTS = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", nn.Softplus: "softplus",
         nn.ELU: "elu", nn.LeakyReLU: "leaky_relu", nn.Softmax: "softmax"}


def layer_of(m: nn.Module):
    """The graph layer equivalent to one torch module."""
    w = (lambda t: None if t is None else t.detach().clone())  # noqa: E731
    if isinstance(m, nn.Linear):
        return Dense(w(m.weight), w(m.bias))
    if isinstance(m, (nn.Conv1d, nn.Conv2d)):
        return Conv(w(m.weight), w(m.bias), m.stride, m.padding, m.dilation, m.groups)
    if type(m) in _ACTS:
        params = {}
        if isinstance(m, nn.LeakyReLU):
            params["negative_slope"] = m.negative_slope
        if isinstance(m, nn.Softmax):
            params["dim"] = m.dim
        return Activation(_ACTS[type(m)], **params)
    if isinstance(m, (nn.MaxPool1d, nn.MaxPool2d)):
        nd = 1 if isinstance(m, nn.MaxPool1d) else 2
        return MaxPool(nd, m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode)
    if isinstance(m, (nn.AvgPool1d, nn.AvgPool2d)):
        nd = 1 if isinstance(m, nn.AvgPool1d) else 2
        return AvgPool(nd, m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad)
    if isinstance(m, (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)):
        return AdaptiveAvgPool(1 if isinstance(m, nn.AdaptiveAvgPool1d) else 2, m.output_size)
    if isinstance(m, (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d)):
        return AdaptiveMaxPool(1 if isinstance(m, nn.AdaptiveMaxPool1d) else 2, m.output_size)
    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        scale = m.weight.detach() / torch.sqrt(m.running_var + m.eps)
        return BatchNorm(scale, m.bias.detach() - m.running_mean * scale)
    if isinstance(m, nn.Flatten):
        return Flatten(m.start_dim, m.end_dim)
    raise TypeError(f"no test mapping for {type(m).__name__}")


def sequential_graph(seq: nn.Sequential, input_shape: tuple[int, ...]) -> Graph:
    nodes, prev = [], "input_0"
    for i, m in enumerate(seq):
        nodes.append(Node(f"n{i}", layer_of(m), [prev]))
        prev = f"n{i}"
    return Graph(nodes, 1, [prev], input_shapes=[tuple(input_shape)])


class ResidualNet(nn.Module):
    """x -> relu(l1) -> [relu(l2), l3] -> add -> relu -> out (a skip connection)."""

    def __init__(self, n_in=5, width=8, n_out=4, bias=True, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.l1 = nn.Linear(n_in, width, bias=bias)
        self.a1 = nn.ReLU()
        self.l2 = nn.Linear(width, width, bias=bias)
        self.a2 = nn.ReLU()
        self.l3 = nn.Linear(width, width, bias=bias)
        self.a3 = nn.ReLU()
        self.out = nn.Linear(width, n_out, bias=bias)

    def forward(self, x):
        h = self.a1(self.l1(x))
        return self.out(self.a3(self.a2(self.l2(h)) + self.l3(h)))

    def graph(self) -> Graph:
        L = layer_of
        nodes = [
            Node("l1", L(self.l1), ["input_0"]), Node("a1", L(self.a1), ["l1"]),
            Node("l2", L(self.l2), ["a1"]), Node("a2", L(self.a2), ["l2"]),
            Node("l3", L(self.l3), ["a1"]), Node("add", Add(), ["a2", "l3"]),
            Node("a3", L(self.a3), ["add"]), Node("out", L(self.out), ["a3"]),
        ]
        return Graph(nodes, 1, ["out"], input_shapes=[(self.l1.in_features,)])


class ConcatNet(nn.Module):
    """Two inputs (tabular 5 + signal 2x6), concatenated; one or two outputs."""

    def __init__(self, n_out=(3, 2), bias=True, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.n_out = n_out
        self.t1 = nn.Linear(5, 6, bias=bias)
        self.ta = nn.Tanh()
        self.c1 = nn.Conv1d(2, 3, 3, bias=bias)
        self.ca = nn.ReLU()
        self.flat = nn.Flatten()
        self.mix = nn.Linear(6 + 12, 7, bias=bias)
        self.ma = nn.ReLU()
        self.heads = nn.ModuleList(nn.Linear(7, k, bias=bias) for k in n_out)

    def forward(self, tab, sig):
        h = torch.cat([self.ta(self.t1(tab)), self.flat(self.ca(self.c1(sig)))], dim=1)
        h = self.ma(self.mix(h))
        outs = tuple(head(h) for head in self.heads)
        return outs[0] if len(outs) == 1 else outs

    def graph(self) -> Graph:
        L = layer_of
        nodes = [
            Node("t1", L(self.t1), ["input_0"]), Node("ta", L(self.ta), ["t1"]),
            Node("c1", L(self.c1), ["input_1"]), Node("ca", L(self.ca), ["c1"]),
            Node("flat", L(self.flat), ["ca"]), Node("cat", Concat(1), ["ta", "flat"]),
            Node("mix", L(self.mix), ["cat"]), Node("ma", L(self.ma), ["mix"]),
        ]
        outs = []
        for i, head in enumerate(self.heads):
            nodes.append(Node(f"head{i}", L(head), ["ma"]))
            outs.append(f"head{i}")
        return Graph(nodes, 2, outs, input_shapes=[(5,), (2, 6)])


def odd_pooling_graph(bias: bool = True, seed: int = 0) -> Graph:
    """Reflect padding, max pooling with padding / ceil_mode / dilation, adaptive max
    pooling, a 1d branch with replicate padding, concatenated (hand-built graph)."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64) * 0.5

    def b(n):
        return rnd(n) if bias else None

    nodes = [
        Node("pad", Pad((1, 1, 2, 0), mode="reflect"), ["input_0"]),       # (2, 8, 7)
        Node("c1", Conv(rnd(3, 2, 3, 3), b(3), (1, 1), (1, 1)), ["pad"]),  # (3, 8, 7)
        Node("r1", Activation("relu"), ["c1"]),
        Node("mp", MaxPool(2, 3, 2, 1, 1, True), ["r1"]),                  # (3, 5, 4)
        Node("c2", Conv(rnd(4, 3, 2, 2), b(4)), ["mp"]),                   # (4, 4, 3)
        Node("t2", Activation("tanh"), ["c2"]),
        Node("amp", AdaptiveMaxPool(2, (2, 2)), ["t2"]),                   # (4, 2, 2)
        Node("f1", Flatten(), ["amp"]),
        Node("pad1", Pad((2, 1), mode="replicate"), ["input_1"]),          # (2, 12)
        Node("c3", Conv(rnd(3, 2, 3), b(3), (1,), (0,), (2,)), ["pad1"]),  # (3, 8)
        Node("s3", Activation("softplus"), ["c3"]),
        Node("mp1", MaxPool(1, 3, 2, 1, 2), ["s3"]),                       # (3, 3)
        Node("f2", Flatten(), ["mp1"]),
        Node("cat", Concat(1), ["f1", "f2"]),                              # 16 + 9
        Node("out", Dense(rnd(4, 25), b(4)), ["cat"]),
    ]
    return Graph(nodes, 2, ["out"], input_shapes=[(2, 6, 5), (2, 9)])
