"""LRP rules of the softmax inside a graph (attention weights): AttnLRP or CP-LRP.

Chosen with the ``"Softmax"`` key of LRP's ``rule_name`` dict (default ``"attnlrp"``);
plain names, so an ``LRP`` explainer can be grid-searched over them. The formulas are
applied by :mod:`sknn_explain.propagation.products`.
"""

from __future__ import annotations

from .base import ParameterlessRule

__all__ = ["AttnLRPSoftmax", "ConservativeAttention"]


class AttnLRPSoftmax(ParameterlessRule):
    """``"attnlrp"``: the softmax by its Taylor linearisation (AttnLRP, Achtibat et al.,
    ICML 2024, Prop. 3.1), the default.

    A softmax ``s = softmax(x)`` inside the graph gives its input
    ``R_x = x * (R_s - s * sum(R_s))`` over the softmax axis; the products next to it
    (attention scores, attention times values) split relevance uniformly between their two
    factors. The bias of the linearisation absorbs ``sum(R_s) - sum(R_x)``, so relevance
    is not conserved through a softmax.

    Examples
    --------
    >>> from sknn_explain.rules import resolve_rules
    >>> resolve_rules({"Dense": "epsilon", "Softmax": "attnlrp"}).for_key("Softmax")
    AttnLRPSoftmax()
    """

    name = "attnlrp"


class ConservativeAttention(ParameterlessRule):
    """``"cp"``: conservative propagation (CP-LRP, Ali et al., ICML 2022, "XAI for
    Transformers: Better Explanations through Conservative Propagation").

    The attention weights (the outputs of every softmax inside the graph) are treated as
    constants: a product of a softmax output ``A`` and another tensor ``v``
    (``A @ v``, ``A * v``, the softmax node feeding the product directly) is the linear map
    ``v -> A v``, whose relevance goes to ``v`` alone by the simple rule
    ``R_v = v * A^T (R / stab(A v))`` (the tiny stabiliser of ``"simple"``); the softmax
    and the scores before it get no relevance (relevance reaching a softmax output in any
    other way is absorbed). Together with LayerNorm's identity rule a
    bias-free transformer conserves relevance, and the result equals gradient times input
    of the model whose softmax outputs and normalisation scales are detached (with the
    ``"simple"`` rule on Dense and Add layers).

    Examples
    --------
    >>> from sknn_explain.rules import resolve_rules
    >>> resolve_rules({"Dense": "simple", "Softmax": "cp"}).for_key("Softmax")
    ConservativeAttention()
    """

    name = "cp"
