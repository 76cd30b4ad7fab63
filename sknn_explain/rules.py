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
=============  =========================================================================

Bias terms stay in the denominators, so a layer's bias absorbs its share of relevance (as
innsight and zennit): relevance is conserved exactly only for bias-free layers.
"""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Real

import numpy as np
import torch

__all__ = [
    "LAYER_KEYS",
    "RULES",
    "AlphaBeta",
    "Epsilon",
    "EqualSplit",
    "Flat",
    "Gamma",
    "LayerRules",
    "Pass",
    "Rule",
    "Simple",
    "WSquare",
    "ZBox",
    "ZPlus",
    "get_rule",
    "resolve_rules",
    "tiny_eps",
]


def tiny_eps(dtype: torch.dtype) -> float:
    """innsight's stabiliser: 1e-6 for float32 (and lower precisions), 1e-15 for float64."""
    return 1e-15 if dtype == torch.float64 else 1e-6


def _check_number(value: object, name: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (Real, np.number)) or not np.isfinite(
        float(value)
    ):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if positive and float(value) < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return float(value)


class Rule:
    """Base class of LRP rules.

    Subclasses set ``name`` (the registry key) and ``param_name`` (which argument a scalar
    ``rule_param`` maps to, or None). Rules compare equal when their type and parameters are
    equal, and pickle (plain attributes only).
    """

    name: str = ""
    param_name: str | None = None

    def __init__(self, stabilizer: float | None = None) -> None:
        self.stabilizer = stabilizer
        if stabilizer is not None:
            _check_number(stabilizer, "stabilizer", positive=True)

    def get_params(self) -> dict[str, object]:
        return dict(vars(self))

    def eps(self, dtype: torch.dtype) -> float:
        """Stabiliser added to denominators (``stabilizer``, or :func:`tiny_eps` if None)."""
        return tiny_eps(dtype) if self.stabilizer is None else float(self.stabilizer)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        mine, theirs = self.get_params(), other.get_params()
        if mine.keys() != theirs.keys():
            return False
        return all(np.array_equal(np.asarray(mine[k]), np.asarray(theirs[k])) for k in mine)

    def __hash__(self) -> int:
        return hash((type(self).__name__, repr(self)))


class Simple(Rule):
    """LRP-0 (``"simple"``): ``z`` stabilised by a tiny epsilon only.

    Examples
    --------
    >>> from sknn_explain.rules import Simple
    >>> Simple()
    Simple(stabilizer=None)
    """

    name = "simple"


class Epsilon(Rule):
    """LRP-epsilon (``"epsilon"``): ``z + epsilon * sign(z)`` in the denominator.

    Parameters
    ----------
    epsilon : float, default=0.01
        innsight's default.

    Examples
    --------
    >>> from sknn_explain.rules import Epsilon
    >>> Epsilon(0.1).epsilon
    0.1
    """

    name = "epsilon"
    param_name = "epsilon"

    def __init__(self, epsilon: float = 0.01) -> None:
        self.epsilon = _check_number(epsilon, "epsilon", positive=True)

    def get_params(self) -> dict[str, object]:
        return {"epsilon": self.epsilon}

    def eps(self, dtype: torch.dtype) -> float:
        return self.epsilon


class AlphaBeta(Rule):
    """LRP-alpha-beta (``"alpha_beta"``) in innsight's parameterisation.

    Relevance is ``alpha * R+ - beta * R-`` with ``beta = alpha - 1`` (so the layer
    conserves relevance up to the bias). innsight's default ``alpha = 0.5`` gives
    ``0.5 R+ + 0.5 R-``. zennit's ``AlphaBeta(alpha=a, beta=a - 1)`` (which needs
    ``a >= 1``) is the same rule.

    Parameters
    ----------
    alpha : float, default=0.5
    stabilizer : float, optional
        Added to the denominators; None uses :func:`tiny_eps`.

    Examples
    --------
    >>> from sknn_explain.rules import AlphaBeta
    >>> AlphaBeta(2.0).beta
    1.0
    """

    name = "alpha_beta"
    param_name = "alpha"

    def __init__(self, alpha: float = 0.5, stabilizer: float | None = None) -> None:
        self.alpha = _check_number(alpha, "alpha")
        super().__init__(stabilizer)

    @property
    def beta(self) -> float:
        return self.alpha - 1.0


class ZPlus(Rule):
    """z+ rule (``"zplus"``): only positive contributions (alpha = 1, beta = 0).

    Examples
    --------
    >>> from sknn_explain.rules import ZPlus
    >>> ZPlus().name
    'zplus'
    """

    name = "zplus"


class Gamma(Rule):
    """Generalised gamma rule (``"gamma"``), favouring positive (same-sign) contributions.

    Parameters
    ----------
    gamma : float, default=0.25
        Weight of the added same-sign parts (zennit's default).
    stabilizer : float, optional

    Examples
    --------
    >>> from sknn_explain.rules import Gamma
    >>> Gamma(0.5).gamma
    0.5
    """

    name = "gamma"
    param_name = "gamma"

    def __init__(self, gamma: float = 0.25, stabilizer: float | None = None) -> None:
        self.gamma = _check_number(gamma, "gamma", positive=True)
        super().__init__(stabilizer)


class Flat(Rule):
    """Flat rule (``"flat"``): relevance spread uniformly over each receptive field.

    Examples
    --------
    >>> from sknn_explain.rules import Flat
    >>> Flat().name
    'flat'
    """

    name = "flat"


class WSquare(Rule):
    """w^2 rule (``"wsquare"``): relevance spread proportionally to squared weights.

    Examples
    --------
    >>> from sknn_explain.rules import WSquare
    >>> WSquare().name
    'wsquare'
    """

    name = "wsquare"


class ZBox(Rule):
    """z^B rule (``"zbox"``) for a layer whose inputs lie in ``[low, high]``.

    Parameters
    ----------
    low, high : float or array-like
        Bounds of the layer's input, broadcastable to its per-sample shape (e.g. per
        channel ``(C, 1, 1)`` for images). Use ``rule_param=(low, high)`` with the name.
    stabilizer : float, optional

    Examples
    --------
    >>> from sknn_explain.rules import ZBox
    >>> ZBox(low=0.0, high=1.0)
    ZBox(low=0.0, high=1.0, stabilizer=None)
    """

    name = "zbox"
    param_name = "bounds"

    def __init__(self, low: object, high: object, stabilizer: float | None = None) -> None:
        for value, what in ((low, "low"), (high, "high")):
            arr = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value)
            if arr.dtype.kind not in "biuf" or not np.all(np.isfinite(arr)):
                raise ValueError(f"ZBox {what} must be finite numbers, got {value!r}")
        if np.any(np.asarray(_np(low)) > np.asarray(_np(high))):
            raise ValueError("ZBox needs low <= high")
        self.low = _np(low)
        self.high = _np(high)
        super().__init__(stabilizer)

    def bounds(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``low`` / ``high`` as tensors broadcastable to ``like`` (``(n, *shape)``)."""
        lo = torch.as_tensor(self.low, dtype=like.dtype, device=like.device)
        hi = torch.as_tensor(self.high, dtype=like.dtype, device=like.device)
        try:
            torch.broadcast_shapes(lo.shape, like.shape[1:])
            torch.broadcast_shapes(hi.shape, like.shape[1:])
        except RuntimeError as err:
            raise ValueError(
                f"ZBox bounds of shape {tuple(lo.shape)} / {tuple(hi.shape)} do not broadcast "
                f"to the layer input shape {tuple(like.shape[1:])}"
            ) from err
        return lo, hi


def _np(value: object) -> object:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    arr = np.asarray(value, dtype=np.float64)
    return float(arr) if arr.ndim == 0 else arr


class Pass(Rule):
    """Pass-through (``"pass"``): the input gets the output's relevance unchanged.

    Only for layers that keep the shape (BatchNorm, ElementwiseAffine); innsight's default
    for BatchNorm.

    Examples
    --------
    >>> from sknn_explain.rules import Pass
    >>> Pass().name
    'pass'
    """

    name = "pass"

    def __init__(self) -> None:
        pass

    def get_params(self) -> dict[str, object]:
        return {}


class EqualSplit(Rule):
    """``"equal"``: an ``Add`` node gives every summand ``R / n_summands`` (innsight).

    Examples
    --------
    >>> from sknn_explain.rules import EqualSplit
    >>> EqualSplit().name
    'equal'
    """

    name = "equal"

    def __init__(self) -> None:
        pass

    def get_params(self) -> dict[str, object]:
        return {}


#: name -> rule class
RULES: dict[str, type[Rule]] = {
    cls.name: cls
    for cls in (Simple, Epsilon, AlphaBeta, ZPlus, Gamma, Flat, WSquare, ZBox, Pass, EqualSplit)
}

#: layer-type keys of a ``rule_name`` / ``rule_param`` dict; ``"input"`` = first layer(s)
LAYER_KEYS = (
    "Dense", "Conv", "BatchNorm", "ElementwiseAffine", "AvgPool", "AdaptiveAvgPool",
    "MaxPool", "AdaptiveMaxPool", "Add", "input",
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
}
#: keys that fall back to another key when not given in a dict
_FALLBACK = {"AdaptiveAvgPool": "AvgPool", "AdaptiveMaxPool": "MaxPool"}
#: defaults of keys that a single rule name does not cover
_FIXED_DEFAULTS = {"BatchNorm": "pass", "ElementwiseAffine": "pass", "Add": "equal"}


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
        raise ValueError(f"unknown LRP rule {rule!r}; known rules: {sorted(RULES)}")
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
    """Resolved rules per layer key (see :data:`LAYER_KEYS`), with an optional input rule."""

    def __init__(self, rules: dict[str, Rule], input_rule: Rule | None) -> None:
        self.rules = rules
        self.input_rule = input_rule

    def for_key(self, key: str, is_input_layer: bool = False) -> Rule:
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
    rule_name : str, Rule or dict
        A single rule for Dense, Conv and pooling layers (BatchNorm and scalers keep
        ``"pass"``, Add keeps ``"equal"``), or a dict from layer keys (:data:`LAYER_KEYS`,
        innsight's ``"Dense_Layer"`` ... also accepted) to rules; missing keys get
        ``"simple"`` (Dense, Conv, pooling), ``"pass"`` (BatchNorm, ElementwiseAffine) or
        ``"equal"`` (Add). ``"input"`` overrides the rule of the Dense / Conv layers that
        read the model input (possibly through scalers, padding or reshaping).
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
    if isinstance(rule_name, Mapping):
        names = _normalise_keys(rule_name, "rule_name")
    elif isinstance(rule_name, (str, Rule)):
        names = {k: rule_name for k in LAYER_KEYS if k not in _FIXED_DEFAULTS and k != "input"}
    else:
        raise TypeError(
            f"rule_name must be a rule name, a Rule or a dict of them, got "
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
