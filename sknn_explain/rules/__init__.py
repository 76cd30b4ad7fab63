"""LRP rules: small picklable objects, a name registry and per-layer-type rule resolution.

A rule says how a layer redistributes the relevance of its outputs onto its inputs. Every rule
has a string name (``"epsilon"``, ``"alpha_beta"``, ...) so an ``LRP`` explainer can be
grid-searched over plain strings, and an object form (:class:`Epsilon`, :class:`AlphaBeta`,
...) for full control over parameters. Rules carry no lambdas and pickle.

Notation for a linear layer ``z_j = sum_i x_i w_ij + b_j`` with upper-layer relevance
``R_j``; ``stab(z) = z + eps * sign(z)`` with ``sign(0) = +1`` (zennit's convention);
``x+ = max(x, 0)``, ``x- = min(x, 0)``, likewise ``w+``, ``w-``, ``b+``, ``b-``.

=============  =========================================================================
name           relevance of input ``i``
=============  =========================================================================
simple         ``x_i sum_j w_ij R_j / stab(z_j)`` with a tiny ``eps`` (1e-6 in float32,
               1e-15 in float64): LRP-0 (Bach et al., 2015).
epsilon        same with ``eps = epsilon`` (default 0.01).
alpha_beta     ``alpha * R+_i - beta * R-_i`` with ``beta = alpha - 1``; ``R+`` redistributes
               ``R`` over the positive contributions ``x+ w+``, ``x- w-`` (denominator
               ``z+ = sum(x+ w+ + x- w-) + b+``), ``R-`` over the negative ones ``x+ w-``,
               ``x- w+`` (denominator ``z- = sum(x+ w- + x- w+) + b-``). innsight's
               parameterisation: ``alpha`` only, default 0.5 (``beta = -0.5``). zennit's
               ``AlphaBeta(alpha, beta)`` is the same rule for ``alpha >= 1``,
               ``beta = alpha - 1``.
zplus          ``R+`` alone (alpha = 1, beta = 0; zennit's ``ZPlus``).
gamma          generalised gamma rule (zennit's ``Gamma``): for ``z_j > 0`` the weights
               become ``w + gamma w+`` on ``x+`` and ``w + gamma w-`` on ``x-`` (bias
               ``b + gamma b+``), for ``z_j < 0`` the other way round (bias ``b + gamma b-``).
flat           ``sum_j R_j / (number of inputs of j)``: all weights and inputs set to one,
               no bias (Lapuschkin et al., 2019).
wsquare        ``sum_j w_ij^2 R_j / stab(sum_i w_ij^2 + b_j^2)`` (Montavon et al., 2017;
               bias squared like zennit).
zbox           ``(x_i w_ij - l_i w+_ij - h_i w-_ij) R_j / stab(z_j - sum_i(l_i w+_ij +
               h_i w-_ij))`` for inputs bounded in ``[low, high]``; meant for the first
               layer.
pass           ``R_i = R_i`` (layers whose input and output have the same shape:
               BatchNorm, scalers).
equal          only for ``Add``: every summand gets ``R / n_summands`` (innsight).
attnlrp        only for ``Softmax`` (attention weights inside the graph), the default:
               AttnLRP's linearisation ``R_x = x (R_s - s sum(R_s))`` (Achtibat et al.,
               2024); its bias absorbs ``sum(R_s) - sum(R_x)``.
cp             only for ``Softmax``: CP-LRP (Ali et al., 2022), attention weights are
               constants; ``A @ v`` passes all its relevance to ``v`` (conservative).
=============  =========================================================================

Bias terms stay in the denominators, so a layer's bias absorbs its share of relevance (as
innsight and zennit): relevance is conserved exactly only for bias-free layers.

Each rule class builds its message from parameter / input modifiers
(:mod:`sknn_explain.rules.modifiers`) and a stabiliser (:mod:`sknn_explain.rules.linear`);
the registry (:mod:`sknn_explain.rules.registry`) maps names and layer types to rules;
presets (:mod:`sknn_explain.rules.presets`) are zennit's composites by name.
"""

from .attention import AttnLRPSoftmax, ConservativeAttention
from .base import LinearMap, Rule
from .linear import AlphaBeta, Epsilon, Flat, Gamma, LinearRule, Simple, WSquare, ZBox, ZPlus
from .modifiers import tiny_eps
from .presets import (
    PRESETS,
    EpsilonAlpha2Beta1,
    EpsilonAlpha2Beta1Flat,
    EpsilonGammaBox,
    EpsilonPlus,
    EpsilonPlusFlat,
    Preset,
    get_preset,
)
from .registry import LAYER_KEYS, RULES, LayerRules, get_rule, resolve_rules
from .structural import EqualSplit, Pass

__all__ = [
    "LAYER_KEYS",
    "PRESETS",
    "RULES",
    "AlphaBeta",
    "AttnLRPSoftmax",
    "ConservativeAttention",
    "Epsilon",
    "EpsilonAlpha2Beta1",
    "EpsilonAlpha2Beta1Flat",
    "EpsilonGammaBox",
    "EpsilonPlus",
    "EpsilonPlusFlat",
    "EqualSplit",
    "Flat",
    "Gamma",
    "LayerRules",
    "LinearMap",
    "LinearRule",
    "Pass",
    "Preset",
    "Rule",
    "Simple",
    "WSquare",
    "ZBox",
    "ZPlus",
    "get_preset",
    "get_rule",
    "resolve_rules",
    "tiny_eps",
]
