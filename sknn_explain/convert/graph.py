"""The layer graph every model is converted to.

A :class:`Graph` is a DAG of :class:`Node` s in topological order. Each node applies one
:class:`~sknn_explain.layers.Layer` to the outputs of its parents (other nodes or the graph
inputs ``"input_0"``, ``"input_1"``, ...). The graph's outputs are the outputs of the nodes
named in ``outputs``. Propagation methods walk ``nodes`` in reverse, using the activations of
:meth:`Graph.forward_all`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch import nn

from ..layers import Activation
from .nodes import Node, input_name
from .serialize import build_graph, graph_to_dict

__all__ = ["Graph", "Node", "input_name", "release_plan", "run_nodes"]


def release_plan(nodes: Sequence[Node], keep: Sequence[str]) -> list[tuple[str, ...]]:
    """Per node, the values no node after it reads: they can be released once it has run.

    Parameters
    ----------
    nodes : sequence of Node
        In topological order.
    keep : sequence of str
        Values never released (the outputs).

    Returns
    -------
    list of tuple of str
        ``plan[i]``: names whose last reader is ``nodes[i]`` (inputs included), or that
        ``nodes[i]`` itself produces when nothing reads them.

    Examples
    --------
    >>> from sknn_explain.convert import Node
    >>> nodes = [Node("a", None, ["input_0"]), Node("b", None, ["a"]),
    ...          Node("c", None, ["a", "b"])]
    >>> release_plan(nodes, ["c"])
    [('input_0',), (), ('a', 'b')]
    """
    last: dict[str, int] = {}
    for i, node in enumerate(nodes):
        last.setdefault(node.name, i)  # produced and never read: released right away
        for p in node.inputs:
            last[p] = i
    kept = set(keep)
    plan: list[list[str]] = [[] for _ in nodes]
    for name, i in last.items():
        if name not in kept:
            plan[i].append(name)
    return [tuple(p) for p in plan]


def run_nodes(nodes: Sequence[Node], plan: Sequence[tuple[str, ...]],
              values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Run ``nodes`` in order on ``values`` (updated in place: every node's output added,
    then the names ``plan`` releases after it removed), and return ``values``.

    Parameters
    ----------
    nodes : sequence of Node
        In topological order; their inputs are in ``values`` or produced before.
    plan : sequence of tuple of str
        :func:`release_plan` of ``nodes``.
    values : dict of str to torch.Tensor
        The values the nodes read that they do not produce (the graph's inputs, ...).

    Returns
    -------
    dict of str to torch.Tensor
        ``values``, holding what ``plan`` kept.
    """
    for node, done in zip(nodes, plan):
        values[node.name] = node.layer(*[values[p] for p in node.inputs])
        for name in done:
            values.pop(name, None)  # pop: a given value may be one that no node reads
    return values


class Graph(nn.Module):
    """A converted model.

    Parameters
    ----------
    nodes : list of Node
        In topological order; names unique and different from the input names.
    n_inputs : int
        Number of graph inputs (``input_0`` ...).
    outputs : list of str
        Node names whose values are the model outputs, in order.
    input_shapes : list of tuple, optional
        Per-sample shape of each input (channels first).
    input_names, output_names : nested lists of names, optional
        Per input per axis names; per output node names (e.g. classes).

    Attributes
    ----------
    output_names : list of list or None
        Names of every output node, per output (``output_names_`` is its deprecated
        spelling).

    Examples
    --------
    >>> import torch
    >>> from sknn_explain.convert import Graph, Node
    >>> from sknn_explain.layers import Activation, Dense
    >>> g = Graph([Node("dense", Dense(torch.ones(2, 3)), ["input_0"]),
    ...            Node("act", Activation("relu"), ["dense"])], 1, ["act"], [(3,)])
    >>> g(torch.ones(1, 3))
    (tensor([[3., 3.]]),)
    >>> g.node_shapes()["dense"]
    (2,)
    """

    def __init__(
        self,
        nodes: Sequence[Node],
        n_inputs: int,
        outputs: Sequence[str],
        input_shapes: Sequence[tuple[int, ...]] | None = None,
        input_names: list[list[list[str]]] | None = None,
        output_names: list[list] | None = None,
    ) -> None:
        super().__init__()
        self.nodes = list(nodes)
        self.n_inputs = int(n_inputs)
        self.outputs = list(outputs)
        self.input_shapes = None if input_shapes is None else [tuple(s) for s in input_shapes]
        self.input_names = input_names
        self.output_names = output_names
        known = {input_name(i) for i in range(self.n_inputs)}
        self._layers = nn.ModuleList([n.layer for n in self.nodes])
        for node in self.nodes:
            if node.name in known:
                raise ValueError(f"duplicate node name {node.name!r}")
            missing = [p for p in node.inputs if p not in known]
            if missing:
                raise ValueError(
                    f"node {node.name!r} uses {missing} before they are defined "
                    "(nodes must be in topological order)"
                )
            known.add(node.name)
        for out in self.outputs:
            if out not in known:
                raise ValueError(f"unknown output node {out!r}")

    @property
    def output_names_(self) -> list[list] | None:
        """Deprecated alias of :attr:`output_names` (a Graph is not a fitted estimator)."""
        warnings.warn("Graph.output_names_ is deprecated; use Graph.output_names",
                      DeprecationWarning, stacklevel=2)
        return self.output_names

    @output_names_.setter
    def output_names_(self, value: list[list] | None) -> None:
        warnings.warn("Graph.output_names_ is deprecated; use Graph.output_names",
                      DeprecationWarning, stacklevel=2)
        self.output_names = value

    def __setstate__(self, state: dict) -> None:
        # graphs pickled before the rename stored their output names as ``output_names_``
        if "output_names_" in state:
            state["output_names"] = state.pop("output_names_")
        super().__setstate__(state)

    def forward_all(self, *xs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every value of the graph: inputs (``input_i``) and every node's output.

        Parameters
        ----------
        *xs : torch.Tensor
            One batch ``(n, *input_shape)`` per graph input.

        Returns
        -------
        dict of str to torch.Tensor
            Value name (``input_0``, ..., then the node names) -> its value.

        Raises
        ------
        ValueError
            For a number of inputs other than ``n_inputs``.
        """
        if len(xs) != self.n_inputs:
            raise ValueError(f"the graph takes {self.n_inputs} input(s), got {len(xs)}")
        values = {input_name(i): x for i, x in enumerate(xs)}
        for node in self.nodes:
            values[node.name] = node.layer(*[values[p] for p in node.inputs])
        return values

    def forward_values(self, xs: Sequence[torch.Tensor],
                       names: Sequence[str]) -> dict[str, torch.Tensor]:
        """The values ``names`` only: the nodes they depend on run, every other value is
        released once its last reader has run (see :meth:`forward`).

        Parameters
        ----------
        xs : sequence of torch.Tensor
            One batch ``(n, *input_shape)`` per graph input.
        names : sequence of str
            Node (or input) names.

        Returns
        -------
        dict of str to torch.Tensor
            ``{name: value}`` for ``names``.
        """
        if len(xs) != self.n_inputs:
            raise ValueError(f"the graph takes {self.n_inputs} input(s), got {len(xs)}")
        wanted = set(names)
        needed = set(wanted)
        for node in reversed(self.nodes):
            if node.name in needed:
                needed.update(node.inputs)
        nodes = [n for n in self.nodes if n.name in needed]
        values = run_nodes(nodes, release_plan(nodes, list(wanted)),
                           {input_name(i): x for i, x in enumerate(xs)})
        return {name: values[name] for name in names}

    def forward(self, *xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The model outputs.

        Unlike :meth:`forward_all`, every value is released as soon as the last node reading
        it has run (:func:`release_plan`), as a torch module's forward does: the memory of an
        activation is reused for the next ones instead of all activations being held until
        the end (which made the allocator fetch fresh pages on every call: a ResNet forward
        ran 2x slower than the module's).

        Parameters
        ----------
        *xs : torch.Tensor
            One batch ``(n, *input_shape)`` per graph input.

        Returns
        -------
        tuple of torch.Tensor
            The values of the ``outputs`` nodes, in order (a tuple also for one output).
        """
        if len(xs) != self.n_inputs:
            raise ValueError(f"the graph takes {self.n_inputs} input(s), got {len(xs)}")
        key = (tuple(map(id, self.nodes)), tuple(self.outputs))
        cached = self.__dict__.get("_release_plan")
        if cached is None or cached[0] != key:
            cached = (key, release_plan(self.nodes, self.outputs))
            self.__dict__["_release_plan"] = cached
        values = run_nodes(self.nodes, cached[1], {input_name(i): x for i, x in enumerate(xs)})
        return tuple(values[o] for o in self.outputs)

    def node(self, name: str) -> Node:
        """The node called ``name``.

        Parameters
        ----------
        name : str
            A node name.

        Returns
        -------
        Node
            The node (its layer is the graph's own, not a copy).

        Raises
        ------
        KeyError
            If the graph has no node of that name.
        """
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def without_last_activation(self) -> Graph:
        """A graph whose outputs skip a final :class:`Activation` node (``ignore_last_act``).

        Shares layers with ``self``; nodes only feeding removed activations stay (harmless).

        Returns
        -------
        Graph
            A new graph, or ``self`` when no output is an activation.
        """
        outputs = []
        for out in self.outputs:
            node = self.node(out)
            outputs.append(node.inputs[0] if isinstance(node.layer, Activation) else out)
        if outputs == self.outputs:
            return self
        return Graph(self.nodes, self.n_inputs, outputs, self.input_shapes, self.input_names,
                     self.output_names)

    # ------------------------------------------------------------------ inspection
    def _example_dtype(self) -> tuple[torch.dtype, torch.device]:
        for b in self.buffers():
            if b.is_floating_point():
                return b.dtype, b.device
        return torch.float32, torch.device("cpu")

    def node_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-sample shape of every value (graph inputs and nodes), from ``input_shapes``.

        Returns
        -------
        dict of str to tuple of int
            Value name (``input_0``, ..., then the node names) -> per-sample shape.

        Raises
        ------
        ValueError
            When the graph's input shapes are unknown.
        """
        if self.input_shapes is None:
            raise ValueError("the graph's input shapes are unknown; set graph.input_shapes")
        dtype, device = self._example_dtype()
        xs = [torch.zeros((1, *s), dtype=dtype, device=device) for s in self.input_shapes]
        with torch.no_grad():
            values = self.forward_all(*xs)
        return {k: tuple(v.shape[1:]) for k, v in values.items()}

    @property
    def n_parameters(self) -> int:
        """Number of weights and biases (folded scale/shift included)."""
        return int(sum(b.numel() for b in self.buffers()))

    def summary(self) -> str:
        """One line per node with its layer, parents and output shape (innsight's print).

        Returns
        -------
        str
            The table, with a header line counting inputs, outputs, nodes and parameters.

        Examples
        --------
        >>> import torch
        >>> from sknn_explain.layers import Activation, Dense
        >>> g = Graph([Node("dense", Dense(torch.ones(2, 3)), ["input_0"]),
        ...            Node("act", Activation("tanh"), ["dense"])], 1, ["act"], [(3,)])
        >>> print(g.summary())  # doctest: +NORMALIZE_WHITESPACE
        Graph: 1 input(s), 1 output(s), 2 node(s), 6 parameter(s)
          #  node     layer                            inputs   output shape
          0  input_0  Input                                     (*, 3)
          1  dense    Dense(in=3, out=2, bias=False)   input_0  (*, 2)
          2  act      Activation(tanh)                 dense    (*, 2)
        outputs: act (*, 2)
        """
        try:
            shapes: dict[str, tuple[int, ...]] | None = self.node_shapes()
        except Exception:  # noqa: BLE001 - unknown or inconsistent shapes: print without
            shapes = None

        def fmt(name: str) -> str:
            if shapes is None or name not in shapes:
                return "?"
            return "(*" + "".join(f", {d}" for d in shapes[name]) + ")"

        rows = [("#", "node", "layer", "inputs", "output shape")]
        for i in range(self.n_inputs):
            rows.append((str(i), input_name(i), "Input", "", fmt(input_name(i))))
        for k, node in enumerate(self.nodes, start=self.n_inputs):
            extra = node.layer.extra_repr()
            layer = f"{type(node.layer).__name__}({extra})" if extra else type(node.layer).__name__
            rows.append((str(k), node.name, layer, ", ".join(node.inputs), fmt(node.name)))
        widths = [max(len(r[c]) for r in rows) for c in range(5)]
        lines = [
            f"Graph: {self.n_inputs} input(s), {len(self.outputs)} output(s), "
            f"{len(self.nodes)} node(s), {self.n_parameters} parameter(s)"
        ]
        for r in rows:
            lines.append("  " + "  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
        outs = []
        for j, out in enumerate(self.outputs):
            text = f"{out} {fmt(out)}"
            names = self.output_names[j] if self.output_names and j < len(
                self.output_names) else None
            if names is not None:
                shown = ", ".join(map(str, list(names)[:6])) + (", ..." if len(names) > 6 else "")
                text += f": {shown}"
            outs.append(text)
        lines.append("outputs: " + "; ".join(outs))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()

    # ------------------------------------------------------------------ dict form
    def to_dict(self) -> dict:
        """The graph in innsight's "model as list" form.

        Returns
        -------
        dict
            As :func:`~sknn_explain.convert.graph_to_dict`.
        """
        return graph_to_dict(self)

    @classmethod
    def from_dict(cls, model: dict, dtype: torch.dtype = torch.float32) -> Graph:
        """Build a graph from innsight's "model as list" form.

        Parameters
        ----------
        model : dict
            As :func:`~sknn_explain.convert.dict_to_graph`.
        dtype : torch.dtype, default=torch.float32
            The dtype of the layers' parameters.

        Returns
        -------
        Graph
            The graph, on the CPU.
        """
        return build_graph(model, dtype, torch.device("cpu"), graph_cls=cls)
