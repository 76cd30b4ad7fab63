"""Excitation Backprop (Zhang et al., 2016): marginal winning probabilities over the graph.

A top-down winner-take-all process: the probability ``P(a_i)`` of an output unit is passed
to the units ``a_j`` below it with the conditional probabilities
``P(a_j | a_i) = a_j w+_ji / sum_j' a_j' w+_j'i`` (only excitatory, positive weights;
biases play no part), so ``P(a_j) = a_j sum_i w+_ji P(a_i) / sum_j' a_j' w+_j'i``
(the paper's eqs. 5-7). Per layer class:

* Dense, Conv, average pooling: the formula above (average pooling has uniform positive
  weights, so ``P`` is shared in proportion to the inputs).
* Max pooling: the window's maximum wins everything (``winner_takes_all``).
* Activations, BatchNorm and other element-wise affine layers: ``P`` passes position-wise.
* Add: shared in proportion to the summands; Concat, Flatten, Reshape, Pad: structural.

With non-negative inputs ``a_j`` (post-ReLU activations; the paper's setting) this is
exactly LRP's z+ rule without biases (zennit's ``ZPlus``: ``x+ w+``) started from a one
instead of the output's value: ``EB(x) = LRP_z+(x) / f(x)`` for every selected output.
Negative inputs (e.g. standardised pixels at the first layer) are used as they are, where
the "probabilities" are no longer probabilities.
"""

from __future__ import annotations

import torch

from ..convert.graph import Graph
from ..rules import resolve_rules
from ..rules.linear import LinearRule, Share, Term
from ..rules.modifiers import KEEP, POSITIVE
from ..rules.registry import LayerRules
from .lrp import lrp_backward

__all__ = ["ExcitationRule", "excitation_backward"]


class ExcitationRule(LinearRule):
    """``P(a_j) = a_j sum_i w+_ji P(a_i) / sum_j' a_j' w+_j'i`` (no bias)."""

    name = "excitation"

    def shares(self) -> tuple[Share, ...]:
        return (Share((Term(KEEP, POSITIVE, None),)),)


def excitation_backward(
    graph: Graph,
    values: dict[str, torch.Tensor],
    start: dict[str, torch.Tensor],
    *,
    keep: tuple[str, ...] = (),
) -> dict[str, torch.Tensor]:
    """Marginal winning probabilities of the graph inputs (and the nodes in ``keep``),
    ``(K, n, *shape)``, from one-hot start probabilities of the selected outputs."""
    return lrp_backward(graph, values, start, _RULES, winner_takes_all=True, keep=keep)


def _rules() -> LayerRules:
    # the defaults (pass-through BatchNorm / affine, "simple" Add) with the excitation rule
    # for the weighted layers (the registry only admits LRP's own rules by name)
    base = resolve_rules({"Add": "simple"})
    rule = ExcitationRule()
    keys = ("Dense", "Conv", "AvgPool", "AdaptiveAvgPool", "MaxPool", "AdaptiveMaxPool")
    return LayerRules({**base.rules, **{k: rule for k in keys}}, None)


_RULES = _rules()
