"""The rule registry: names to rule classes, layer keys, and per-layer-type rule resolution."""

from __future__ import annotations

from collections.abc import Mapping

from .attention import AttnLRPSoftmax, ConservativeAttention
from .base import Rule
from .linear import AlphaBeta, Epsilon, Flat, Gamma, Simple, WSquare, ZBox, ZPlus
from .presets import PRESETS, Preset, get_preset
from .structural import EqualSplit, Pass

__all__ = ["LAYER_KEYS", "RULES", "LayerRules", "get_rule", "resolve_rules"]


#: name -> rule class.
RULES: dict[str, type[Rule]] = {
    cls.name: cls
    for cls in (Simple, Epsilon, AlphaBeta, ZPlus, Gamma, Flat, WSquare, ZBox, Pass, EqualSplit,
                AttnLRPSoftmax, ConservativeAttention)
}

#: layer-type keys of a ``rule_name`` / ``rule_param`` dict; ``"input"`` = first layer(s)
LAYER_KEYS = (
    "Dense", "Conv", "BatchNorm", "ElementwiseAffine", "AvgPool", "AdaptiveAvgPool",
    "MaxPool", "AdaptiveMaxPool", "Add", "Softmax", "input",
)
#: innsight's layer names accepted as aliases
_INNSIGHT_KEYS = {
    "Dense_Layer": "Dense", "Conv1D_Layer": "Conv", "Conv2D_Layer": "Conv",
    "BatchNorm_Layer": "BatchNorm", "AvgPool1D_Layer": "AvgPool", "AvgPool2D_Layer": "AvgPool",
    "MaxPool1D_Layer": "MaxPool", "MaxPool2D_Layer": "MaxPool",
}
_LINEAR_RULES = {"simple", "epsilon", "alpha_beta", "zplus", "gamma", "flat", "wsquare", "zbox"}
#: which rules each layer key accepts
_ALLOWED = {
    "Dense": _LINEAR_RULES, "Conv": _LINEAR_RULES, "input": _LINEAR_RULES,
    "BatchNorm": _LINEAR_RULES | {"pass"}, "ElementwiseAffine": _LINEAR_RULES | {"pass"},
    "AvgPool": _LINEAR_RULES, "AdaptiveAvgPool": _LINEAR_RULES,
    "MaxPool": _LINEAR_RULES, "AdaptiveMaxPool": _LINEAR_RULES,
    "Add": {"equal", "simple", "epsilon"},
    "Softmax": {"attnlrp", "cp"},
}
#: keys that fall back to another key when not given in a dict
_FALLBACK = {"AdaptiveAvgPool": "AvgPool", "AdaptiveMaxPool": "MaxPool"}
#: defaults of keys that a single rule name does not cover
_FIXED_DEFAULTS = {"BatchNorm": "pass", "ElementwiseAffine": "pass", "Add": "equal",
                   "Softmax": "attnlrp"}


def get_rule(rule: str | Rule, param: object = None) -> Rule:
    """Build a rule from its name (and ``rule_param``) or return a rule object as is.

    Parameters
    ----------
    rule : str or Rule
        A name from :data:`RULES` or a rule instance.
    param : object, optional
        The rule's parameter: ``epsilon`` for "epsilon", ``alpha`` for "alpha_beta",
        ``gamma`` for "gamma", ``(low, high)`` or ``{"low": .., "high": ..}`` for "zbox".
        None keeps the default. Rules without a parameter ("simple", "zplus", "flat",
        "wsquare", "pass", "equal") and rule objects refuse one (innsight ignored it
        silently).

    Returns
    -------
    Rule

    Raises
    ------
    ValueError
        For an unknown name, a parameter for a rule that takes none (or for a rule object),
        and invalid parameter values.

    Examples
    --------
    >>> from sknn_explain.rules import get_rule
    >>> get_rule("epsilon", 0.1)
    Epsilon(epsilon=0.1)
    >>> get_rule("alpha_beta")
    AlphaBeta(alpha=0.5, stabilizer=None)
    >>> get_rule("simple", 0.1)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: the LRP rule 'simple' takes no parameter, but rule_param=0.1 was given; ...
    """
    if isinstance(rule, Rule):
        if param is not None:
            raise ValueError(
                f"rule_param={param!r} was given with the rule object {rule!r}; set the "
                "parameter on the object instead and leave rule_param=None"
            )
        return rule
    if not isinstance(rule, str):
        raise TypeError(f"an LRP rule must be a name or a Rule object, got {type(rule).__name__}")
    if rule not in RULES:
        raise ValueError(
            f"unknown LRP rule {rule!r}; known rules: {sorted(RULES)}, presets: {sorted(PRESETS)}"
        )
    cls = RULES[rule]
    if param is not None and cls.param_name is None:
        raise ValueError(
            f"the LRP rule {rule!r} takes no parameter, but rule_param={param!r} was given; "
            "use a rule with a parameter (e.g. 'epsilon') or leave rule_param=None"
        )
    if param is None:
        if cls is ZBox:
            raise ValueError('the "zbox" rule needs rule_param=(low, high) (input bounds)')
        return cls()
    if cls is ZBox:
        if isinstance(param, Mapping):
            return ZBox(**param)
        if isinstance(param, (tuple, list)) and len(param) == 2:
            return ZBox(*param)
        raise ValueError(f'rule_param for "zbox" must be (low, high), got {param!r}')
    return cls(param)


class LayerRules:
    """Resolved rules per layer key (see :data:`LAYER_KEYS`), with an optional input rule.

    Made by :func:`resolve_rules` from LRP's ``rule_name`` / ``rule_param``.

    Parameters
    ----------
    rules : dict of str to Rule
        The rule of each layer key.
    input_rule : Rule or None
        The rule of the Dense / Conv layers that read a model input; None: their key's rule.

    Examples
    --------
    >>> from sknn_explain.rules import resolve_rules
    >>> rules = resolve_rules("epsilon", 0.1)
    >>> rules.for_key("Dense")
    Epsilon(epsilon=0.1)
    """

    def __init__(self, rules: dict[str, Rule], input_rule: Rule | None) -> None:
        self.rules = rules
        self.input_rule = input_rule

    def for_key(self, key: str, is_input_layer: bool = False) -> Rule:
        """The rule of a layer.

        Parameters
        ----------
        key : str
            The layer's key (:data:`LAYER_KEYS`), e.g. ``"Dense"``.
        is_input_layer : bool, default=False
            Whether the layer reads a model input (then a Dense / Conv layer gets
            ``input_rule`` if there is one).

        Returns
        -------
        Rule
            The rule to apply to the layer.
        """
        if is_input_layer and self.input_rule is not None and key in ("Dense", "Conv"):
            return self.input_rule
        return self.rules[key]

    def __repr__(self) -> str:
        return f"LayerRules({self.rules!r}, input={self.input_rule!r})"


def _normalise_keys(mapping: Mapping, what: str) -> dict[str, object]:
    out = {}
    for key, value in mapping.items():
        norm = _INNSIGHT_KEYS.get(key, key)
        if norm not in LAYER_KEYS:
            raise ValueError(
                f"unknown layer type {key!r} in {what}; use one of {list(LAYER_KEYS)}"
            )
        out[norm] = value
    return out


def resolve_rules(rule_name: object = "simple", rule_param: object = None) -> LayerRules:
    """Turn LRP's ``rule_name`` / ``rule_param`` into one rule per layer key.

    Parameters
    ----------
    rule_name : str, Rule, Preset or dict
        A preset (:mod:`sknn_explain.rules.presets`, or its name such as ``"EpsilonPlus"``),
        a single rule for Dense, Conv and pooling layers (BatchNorm and scalers keep
        ``"pass"``, Add keeps ``"equal"``), or a dict from layer keys (:data:`LAYER_KEYS`,
        innsight's ``"Dense_Layer"`` ... also accepted) to rules; missing keys get
        ``"simple"`` (Dense, Conv, pooling), ``"pass"`` (BatchNorm, ElementwiseAffine) or
        ``"equal"`` (Add). ``"input"`` overrides the rule of the Dense / Conv layers that
        read the model input (possibly through scalers, padding or reshaping).
        ``"Softmax"`` chooses how a softmax inside the graph (attention weights) is
        treated: ``"attnlrp"`` (default, AttnLRP's linearisation) or ``"cp"`` (CP-LRP:
        attention weights as constants, conservative).
    rule_param : scalar, tuple or dict, optional
        The parameter of the rules (see :func:`get_rule`) or a dict with the keys of
        ``rule_name``. With a single rule name the rule must take a parameter; with a dict of
        rules a single ``rule_param`` goes to the rules that take one (at least one must).
        A dict entry for a layer key whose rule takes no parameter is an error.

    Returns
    -------
    LayerRules

    Raises
    ------
    ValueError
        For unknown names / keys, rules a layer type cannot use (e.g. "pass" for Dense) and
        a ``rule_param`` that no rule would use (e.g. ``"simple"`` with ``rule_param=0.1``).

    Examples
    --------
    >>> from sknn_explain.rules import resolve_rules
    >>> r = resolve_rules({"Dense": "epsilon", "input": "zbox"},
    ...                   {"Dense": 0.1, "input": (-3.0, 3.0)})
    >>> r.for_key("Dense"), r.for_key("BatchNorm")
    (Epsilon(epsilon=0.1), Pass())
    """
    if isinstance(rule_name, str) and rule_name in PRESETS:
        rule_name = get_preset(rule_name)
    if isinstance(rule_name, Preset):
        if rule_param is not None:
            raise ValueError(
                f"rule_param={rule_param!r} was given with the preset {rule_name!r}; set the "
                "parameters on the preset and leave rule_param=None"
            )
        rule_name = rule_name.layer_rules()
    if isinstance(rule_name, Mapping):
        names = _normalise_keys(rule_name, "rule_name")
    elif isinstance(rule_name, (str, Rule)):
        names = {k: rule_name for k in LAYER_KEYS if k not in _FIXED_DEFAULTS and k != "input"}
    else:
        raise TypeError(
            f"rule_name must be a rule or preset name, a Rule, a Preset or a dict of rules, got "
            f"{type(rule_name).__name__}"
        )
    if isinstance(rule_param, Mapping):
        params = _normalise_keys(rule_param, "rule_param")
        if "input" in params and "input" not in names:
            raise ValueError('rule_param has an "input" entry but rule_name has no "input" rule')
    else:
        params = None
    single = not isinstance(rule_name, Mapping)
    used = False  # whether a scalar rule_param went to some rule

    def build(key: str, name: object) -> Rule:
        nonlocal used
        if params is not None:
            param = params.get(key)
            if param is None and _FALLBACK.get(key) in params and _takes_param(name):
                param = params[_FALLBACK[key]]
            if param is not None and key in params and not _takes_param(name):
                default = "" if key in names else " (the default: rule_name does not set it)"
                raise ValueError(
                    f"rule_param[{key!r}]={param!r} was given, but the {key} rule "
                    f"{_rule_label(name)}{default} takes no parameter"
                )
        elif rule_param is None or not (single or _takes_param(name)):
            param = None  # a dict of rules: a single rule_param goes to those that take one
        else:
            param = rule_param
        used = used or param is not None
        return _checked(get_rule(name, param), key)

    rules: dict[str, Rule] = {}
    for key in LAYER_KEYS:
        if key == "input":
            continue
        if key in names:
            name = names[key]
        elif key in _FALLBACK and _FALLBACK[key] in names:
            name = names[_FALLBACK[key]]
        else:
            name = _FIXED_DEFAULTS.get(key, "simple")
            if params is None and single and key in _FIXED_DEFAULTS:
                rules[key] = _checked(get_rule(name), key)  # not the user's rule: no param
                continue
        rules[key] = build(key, name)
    input_rule = build("input", names["input"]) if "input" in names else None
    if params is None and rule_param is not None and not used:
        chosen = sorted({_rule_label(n) for n in names.values()})
        raise ValueError(
            f"rule_param={rule_param!r} is not used: none of the rules {', '.join(chosen)} "
            "takes a parameter; use a rule with a parameter or leave rule_param=None"
        )
    return LayerRules(rules, input_rule)


def _takes_param(rule: object) -> bool:
    """Whether the rule name stands for a rule with a parameter (objects carry their own)."""
    return isinstance(rule, str) and rule in RULES and RULES[rule].param_name is not None


def _rule_label(rule: object) -> str:
    return repr(rule) if isinstance(rule, (str, Rule)) else type(rule).__name__


def _checked(rule: Rule, key: str) -> Rule:
    if rule.name not in _ALLOWED[key]:
        raise ValueError(
            f"the LRP rule {rule.name!r} cannot be used for {key} layers; allowed: "
            f"{sorted(_ALLOWED[key])}"
        )
    return rule
