"""Excitation Backprop (Zhang et al., 2016) as an explainer."""

from __future__ import annotations

import torch

from .._validation import StrOptions
from ..convert.graph import Graph, Node, input_name
from ..layers import Dense
from ..propagation import predictions, start_states
from ..propagation.excitation import excitation_backward
from ._layer_target import layer_axis_names, resolve_layer
from .gradient import _COMMON_DOC
from .layer import LayerExplainer

__all__ = ["ExcitationBackprop"]

_DOC = _COMMON_DOC.split("    embeddings :")[0]


class ExcitationBackprop(LayerExplainer):
    __doc__ = f"""Excitation Backprop (Zhang et al., 2016): marginal winning probabilities.

    Each selected output starts with probability one; every Dense / Conv / average-pooling
    layer passes ``P(a_i)`` to its inputs with ``P(a_j | a_i) = a_j w+_ji / sum_j' a_j'
    w+_j'i`` (positive weights only, biases ignored), max pooling to the window's winner,
    activations and BatchNorm position-wise (formulas and the layer table:
    :mod:`sknn_explain.propagation.excitation`). The result is the MWP map ``P(a_j)``, at
    the inputs (``layer=None``) or at a hidden layer (``layer="features.3"``, the paper's
    usual choice). Where no probability is lost (non-negative inputs, no unit without
    positive input) it sums to one per sample and output.

    Relation to LRP: with non-negative activations this is LRP's z+ rule without biases
    (zennit's ``ZPlus``) started from 1 instead of ``f(x)``: ``EB = LRP_z+ / f(x)``.

    Parameters
    ----------
    layer : str or None, default=None
        None: the model inputs; else a hidden layer (graph node or torch module path).
    contrastive : {{"none", "c-mwp"}}, default="none"
        ``"c-mwp"``: the paper's contrastive MWP, ``P(target) - P(dual)``, where the dual
        unit has the negated weights of the selected output's last Dense layer (the
        selected outputs must be produced by a Dense layer).
    {_DOC}
    Examples
    --------
    >>> import torch
    >>> from sknn_explain import ExcitationBackprop
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> res = ExcitationBackprop(layer="1").fit(net).explain(torch.rand(5, 4))
    >>> res.values.shape
    (5, 8, 3)
    """

    method_name = "ExcitationBackprop"
    _goal_description = "1 (probability mass)"
    _parameter_constraints = {
        **LayerExplainer._parameter_constraints, "layer": [str, None],
        "contrastive": [StrOptions({"none", "c-mwp"})],
    }

    def __init__(
        self, layer=None, contrastive="none", *, ignore_last_act=True, channels_first=True,
        dtype="float", device="cpu", batch_size=None, verbose=False, space="network",
    ):
        super().__init__(
            ignore_last_act=ignore_last_act, channels_first=channels_first, dtype=dtype,
            device=device, batch_size=batch_size, verbose=verbose,
        )
        self.layer = layer
        self.contrastive = contrastive
        self.space = space

    def layer_node(self) -> str:
        """The graph node the probabilities are reported at: ``layer``, or the input.

        Returns
        -------
        str
            The node's name in :attr:`graph_`.
        """
        if self.layer is None:
            if self.graph_.n_inputs != 1:
                raise ValueError("ExcitationBackprop explains models with one input; pass "
                                 "layer= for a hidden layer of a multi-input model")
            return input_name(0)
        return resolve_layer(self.graph_, self.layer)

    def _result_channels_first(self) -> bool:
        return bool(self.channels_first) if self.layer is None else True

    def _dual_graph(self):
        """The graph whose output Dense layers have negated weights (c-MWP's dual units)."""
        nodes = []
        outs = set(self.graph_.outputs)
        for node in self.graph_.nodes:
            layer = node.layer
            if node.name in outs:
                if not isinstance(layer, Dense):
                    raise ValueError("contrastive='c-mwp' needs outputs produced by a Dense "
                                     f"layer; {node.name!r} is a {type(layer).__name__}")
                layer = Dense(-layer.weight, None if layer.bias is None else -layer.bias)
            nodes.append(Node(node.name, layer, node.inputs))
        g = self.graph_
        return Graph(nodes, g.n_inputs, g.outputs, g.input_shapes, g.input_names, g.output_names)

    def _attribute_layer(self, xs, target, selection, batch_size):
        graph = self.graph_
        dual = self._dual_graph() if self.contrastive == "c-mwp" else None
        n, k = xs[0].shape[0], sum(selection.sizes)
        rows = self._rows_per_chunk(xs, k, batch_size)
        values, acts, preds = [], [], []
        for a, b in self._chunks(n, rows, self.method_name):
            vx = self._forward_all([x[a:b] for x in xs])
            start = start_states(graph, vx, selection, fill="one")
            with torch.no_grad():
                p = excitation_backward(graph, vx, start, keep=(target,))[target]
                if dual is not None:
                    vd = dict(vx)
                    vd.update({o: dual.node(o).layer(*[vx[q] for q in dual.node(o).inputs])
                               for o in graph.outputs})
                    p = p - excitation_backward(dual, vd, start, keep=(target,))[target]
            values.append(p.movedim(0, -1))
            acts.append(vx[target])
            preds.append(predictions(graph, vx, selection))
        preds = torch.cat(preds)
        h = torch.cat(acts)
        if self.layer is None:
            names = None
        else:
            names = layer_axis_names(target, h.shape[1:])
        goal = None if dual is not None else torch.ones_like(preds)
        return torch.cat(values), h, names, preds, goal
