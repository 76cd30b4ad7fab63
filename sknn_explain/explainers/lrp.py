"""Layer-wise Relevance Propagation (Bach et al., 2015) as an explainer."""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Real

import numpy as np
import torch

from .._validation import BOOLEAN, Interval
from ..convert.graph import input_name
from ..propagation import lrp_backward, merge_batchnorm, predictions, start_states
from ..rules import Preset, Rule, resolve_rules
from .gradient import _COMMON_DOC
from .graph_explainer import GraphExplainer

__all__ = ["LRP"]


class LRP(GraphExplainer):
    __doc__ = f"""Layer-wise Relevance Propagation: decompose ``f(x)`` onto the input features.

    The output value of each selected node is propagated back layer by layer; each layer
    redistributes the relevance of its outputs onto its inputs by its rule (see
    :mod:`sknn_explain.rules` for the formulas). All selected outputs are propagated in
    one pass. The bias of a layer stays in the denominators and absorbs its share, so the
    attributions sum to ``f(x)`` exactly only for bias-free networks with the simple rule
    (and pass-through BatchNorm / max pooling); activations pass relevance position-wise.

    Parameters
    ----------
    rule_name : str, Rule, Preset or dict, default="simple"
        A preset of zennit's composites (:mod:`sknn_explain.rules.presets`:
        ``EpsilonPlus()``, ``EpsilonGammaBox(low, high)``, ... or a name such as
        ``"EpsilonPlusFlat"``), or ``"simple"``, ``"epsilon"``, ``"alpha_beta"``,
        ``"zplus"``, ``"gamma"``, ``"flat"``, ``"wsquare"``, ``"zbox"`` (or a
        :class:`~sknn_explain.rules.Rule`) for the Dense, Conv and pooling layers;
        BatchNorm and scalers use ``"pass"`` and Add splits equally unless a dict says
        otherwise. A dict maps layer types (``"Dense"``, ``"Conv"``, ``"BatchNorm"``,
        ``"ElementwiseAffine"``, ``"AvgPool"``, ``"MaxPool"``, ``"AdaptiveAvgPool"``,
        ``"AdaptiveMaxPool"``, ``"Add"``, ``"Softmax"`` for softmax attention weights
        inside the graph: ``"attnlrp"``, the default, or ``"cp"``, CP-LRP's constant
        attention weights, which conserve relevance; and ``"input"`` for the first Dense /
        Conv layer) to rules.
    rule_param : float, tuple or dict, optional
        The rules' parameter (``epsilon`` default 0.01, ``alpha`` default 0.5 in innsight's
        convention ``alpha R+ - (alpha - 1) R-``, ``gamma`` default 0.25, ``(low, high)``
        for ``"zbox"``), or a dict with the keys of ``rule_name``.
    winner_takes_all : bool, default=True
        Max pooling gives all relevance to the window's maximum; False treats it as an
        average pooling with the MaxPool rule.
    canonize : bool, default=False
        Merge each BatchNorm into the Dense / Conv layer that feeds it (zennit's
        canonizer, found from the graph's data flow, so also where the modules are not
        defined in sequence order) before propagating; the merged layer gets the Dense /
        Conv rule. The forward values are unchanged.
    {_COMMON_DOC}
    Examples
    --------
    >>> import torch
    >>> from sknn_explain import LRP
    >>> _ = torch.manual_seed(0)
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8, bias=False), torch.nn.ReLU(),
    ...                           torch.nn.Linear(8, 3, bias=False))
    >>> result = LRP().fit(net).explain(torch.randn(5, 4))
    >>> result.values.shape
    (5, 4, 3)
    >>> bool(abs(result.decomp_sum - result.decomp_goal).max() < 1e-4)  # bias-free: exact
    True
    >>> lrp = LRP(rule_name={{"Dense": "epsilon", "input": "zbox"}},
    ...           rule_param={{"Dense": 0.1, "input": (-3.0, 3.0)}})
    >>> lrp.fit(net).explain(torch.randn(2, 4)).values.shape
    (2, 4, 3)
    """

    method_name = "LRP"
    _goal_description = "f(x)"
    _parameter_constraints = {
        **GraphExplainer._parameter_constraints,
        # names, parameters and their combinations are checked by resolve_rules
        "rule_name": [str, Rule, Preset, Mapping],
        "rule_param": [
            None, Interval(Real, None, None, closed="neither"), tuple, list, np.ndarray,
            torch.Tensor, Mapping,
        ],
        "winner_takes_all": BOOLEAN,
        "canonize": BOOLEAN,
    }

    def __init__(
        self, rule_name="simple", rule_param=None, winner_takes_all=True, canonize=False, *,
        ignore_last_act=True, channels_first=True, dtype="float", device="cpu",
        batch_size=None, verbose=False, space="network",
    ):
        self.rule_name = rule_name
        self.rule_param = rule_param
        self.winner_takes_all = winner_takes_all
        self.canonize = canonize
        self.ignore_last_act = ignore_last_act
        self.channels_first = channels_first
        self.dtype = dtype
        self.device = device
        self.batch_size = batch_size
        self.verbose = verbose
        self.space = space

    def _check_params(self):
        resolve_rules(self.rule_name, self.rule_param)

    def _attribute(self, xs, selection, batch_size):
        graph = self._explained_graph(xs)
        rules = resolve_rules(self.rule_name, self.rule_param)
        n, k = xs[0].shape[0], sum(selection.sizes)
        batch_size = self._rows_per_chunk(xs, k, batch_size)
        values_out = [x.new_empty((n, *x.shape[1:], k)) for x in xs]
        preds = xs[0].new_empty((n, k))
        for a, b in self._chunks(n, batch_size, "LRP"):
            values = self._forward_all([x[a:b] for x in xs], graph)
            start = start_states(graph, values, selection, fill="value")
            with torch.no_grad():
                rel = lrp_backward(graph, values, start, rules,
                                   winner_takes_all=bool(self.winner_takes_all))
            for i, out in enumerate(values_out):
                r = rel.get(input_name(i))
                if r is None:  # an input the selected outputs do not depend on
                    out[a:b] = 0
                else:
                    out[a:b] = r.movedim(0, -1)
            preds[a:b] = predictions(graph, values, selection)
        return values_out, preds, preds.clone()

    def _explained_graph(self, xs):
        """:attr:`graph_`, with BatchNorm merged into its producers if ``canonize``."""
        if not self.canonize:
            return self.graph_
        values = self._forward_all([x[:1] for x in xs])
        return merge_batchnorm(self.graph_, {k: tuple(v.shape[1:]) for k, v in values.items()})
