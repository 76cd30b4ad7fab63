"""LRP presets: zennit's composites by name, as picklable sets of rules per layer type.

A preset is what zennit calls a composite: a rule for each layer type, optionally with a
special rule for the first layer. Pass one as ``LRP(rule_name=EpsilonPlus())`` (or by name,
``LRP("EpsilonPlus")``); presets compare equal by parameters, pickle, and grid-search
(``GridSearchCV(..., {"rule_name": [EpsilonPlus(), EpsilonAlpha2Beta1()]})``).

Every preset, as zennit's ``layer_map_base``: activations and BatchNorm / scalers pass the
relevance, average pooling and ``Add`` use zennit's ``Norm`` (``Simple`` with the preset's
``stabilizer``), Dense layers ``Epsilon(epsilon)``; max pooling keeps ``winner_takes_all``
(the gradient, as zennit) or, with ``winner_takes_all=False``, the ``Norm`` rule too.

==========================  ===================  ============================================
preset                      Conv layers          first Dense / Conv layer (``first_layer``)
==========================  ===================  ============================================
EpsilonPlus                 ``ZPlus``            as the others
EpsilonPlusFlat             ``ZPlus``            ``Flat``
EpsilonAlpha2Beta1          ``AlphaBeta(2)``     as the others
EpsilonAlpha2Beta1Flat      ``AlphaBeta(2)``     ``Flat``
EpsilonGammaBox             ``Gamma(gamma)``     ``ZBox(low, high)``
==========================  ===================  ============================================

``first_layer`` overrides the first-layer rule of any preset: None (no special rule), a rule
name without parameters (``"flat"``, ``"wsquare"``, ``"zplus"``, ``"simple"``, built with
the preset's ``stabilizer``) or a :class:`~sknn_explain.rules.Rule` (e.g. ``ZBox(0, 1)``). The
first layers are the Dense / Conv layers that read a model input (zennit: the first linear
module; the same for sequential models). zennit's ``EpsilonGammaBox`` gives the box rule only
to a first *Conv* layer; here it goes to the first layer of either kind.
"""

from __future__ import annotations

from .base import Rule, ValueObject, check_number
from .linear import AlphaBeta, Epsilon, Flat, Gamma, Simple, WSquare, ZBox, ZPlus
from .structural import Pass

__all__ = [
    "PRESETS",
    "EpsilonAlpha2Beta1",
    "EpsilonAlpha2Beta1Flat",
    "EpsilonGammaBox",
    "EpsilonPlus",
    "EpsilonPlusFlat",
    "Preset",
    "get_preset",
]

#: rules a ``first_layer`` name may stand for (no parameter but the stabiliser)
_FIRST_LAYER_NAMES = {"flat": Flat, "wsquare": WSquare, "zplus": ZPlus, "simple": Simple}


class Preset(ValueObject):
    """Base class of LRP presets: Dense gets ``Epsilon(epsilon)``, Conv :meth:`conv_rule`.

    Parameters
    ----------
    epsilon : float, default=1e-6
        The Dense layers' epsilon (zennit's default).
    stabilizer : float, default=1e-6
        Added to the denominators of the other rules (zennit's default).
    first_layer : None, str or Rule, optional
        The rule of the first Dense / Conv layer(s); None: the preset's own.

    Examples
    --------
    A preset is a subclass choosing the Conv rule:

    >>> from sknn_explain.rules import Flat, Preset
    >>> class EpsilonFlat(Preset):
    ...     def conv_rule(self):
    ...         return Flat(stabilizer=self.stabilizer)
    >>> rules = EpsilonFlat(epsilon=0.1).layer_rules()
    >>> rules["Dense"], rules["Conv"]
    (Epsilon(epsilon=0.1), Flat(stabilizer=1e-06))
    """

    #: the first-layer rule when ``first_layer`` is None (a name) or None for no special rule.
    default_first_layer: str | None = None

    def __init__(self, epsilon: float = 1e-6, stabilizer: float = 1e-6,
                 first_layer: str | Rule | None = None) -> None:
        self.epsilon = check_number(epsilon, "epsilon", positive=True)
        self.stabilizer = check_number(stabilizer, "stabilizer", positive=True)
        self.first_layer = first_layer
        self._first_rule()  # validate

    def conv_rule(self) -> Rule:
        """The rule of the Conv layers (subclasses define it).

        Returns
        -------
        Rule
            A new rule built with the preset's parameters.
        """
        raise NotImplementedError

    def _first_rule(self) -> Rule | None:
        first = self.first_layer if self.first_layer is not None else self.default_first_layer
        if first is None or isinstance(first, Rule):
            return first
        if isinstance(first, str) and first in _FIRST_LAYER_NAMES:
            return _FIRST_LAYER_NAMES[first](stabilizer=self.stabilizer)
        raise ValueError(
            f"first_layer must be None, a Rule or one of {sorted(_FIRST_LAYER_NAMES)}, got "
            f"{first!r}; for a rule with parameters pass the object, e.g. ZBox(low, high)"
        )

    def layer_rules(self) -> dict[str, Rule]:
        """The rule per layer key (:data:`sknn_explain.rules.LAYER_KEYS`).

        Returns
        -------
        dict of str to Rule
            Layer key -> rule, plus ``"input"`` -> the first layers' rule if the preset has
            one.
        """
        norm = Simple(stabilizer=self.stabilizer)
        rules: dict[str, Rule] = {
            "Dense": Epsilon(self.epsilon), "Conv": self.conv_rule(),
            "BatchNorm": Pass(), "ElementwiseAffine": Pass(),
            "AvgPool": norm, "MaxPool": norm, "Add": norm,
        }
        first = self._first_rule()
        if first is not None:
            rules["input"] = first
        return rules


class EpsilonPlus(Preset):
    """zennit's ``EpsilonPlus``: ``ZPlus`` for Conv, ``Epsilon`` for Dense.

    Parameters
    ----------
    epsilon, stabilizer, first_layer
        As :class:`Preset`.

    Examples
    --------
    >>> from sknn_explain.rules import EpsilonPlus
    >>> EpsilonPlus().layer_rules()["Conv"]
    ZPlus(stabilizer=1e-06)
    """

    def conv_rule(self) -> Rule:
        """``ZPlus(stabilizer=stabilizer)``.

        Returns
        -------
        Rule
            The rule of the Conv layers.
        """
        return ZPlus(stabilizer=self.stabilizer)


class EpsilonPlusFlat(EpsilonPlus):
    """zennit's ``EpsilonPlusFlat``: :class:`EpsilonPlus` with ``Flat`` for the first layer.

    Parameters
    ----------
    epsilon, stabilizer, first_layer
        As :class:`Preset`.

    Examples
    --------
    >>> from sknn_explain.rules import EpsilonPlusFlat
    >>> EpsilonPlusFlat().layer_rules()["input"]
    Flat(stabilizer=1e-06)
    """

    default_first_layer = "flat"


class EpsilonAlpha2Beta1(Preset):
    """zennit's ``EpsilonAlpha2Beta1``: ``AlphaBeta(alpha=2, beta=1)`` for Conv.

    Parameters
    ----------
    epsilon, stabilizer, first_layer
        As :class:`Preset`.

    Examples
    --------
    >>> from sknn_explain.rules import EpsilonAlpha2Beta1
    >>> EpsilonAlpha2Beta1().layer_rules()["Conv"]
    AlphaBeta(alpha=2.0, stabilizer=1e-06)
    """

    def conv_rule(self) -> Rule:
        """``AlphaBeta(2.0, stabilizer=stabilizer)``.

        Returns
        -------
        Rule
            The rule of the Conv layers.
        """
        return AlphaBeta(2.0, stabilizer=self.stabilizer)


class EpsilonAlpha2Beta1Flat(EpsilonAlpha2Beta1):
    """zennit's ``EpsilonAlpha2Beta1Flat``: :class:`EpsilonAlpha2Beta1`, ``Flat`` first.

    Parameters
    ----------
    epsilon, stabilizer, first_layer
        As :class:`Preset`.

    Examples
    --------
    >>> from sknn_explain.rules import EpsilonAlpha2Beta1Flat
    >>> EpsilonAlpha2Beta1Flat(first_layer="wsquare").layer_rules()["input"]
    WSquare(stabilizer=1e-06)
    """

    default_first_layer = "flat"


class EpsilonGammaBox(Preset):
    """zennit's ``EpsilonGammaBox``: ``Gamma`` for Conv, ``ZBox(low, high)`` first.

    Parameters
    ----------
    low, high : float or array-like
        Bounds of the model input (broadcastable to one sample, e.g. ``(C, 1, 1)``).
    epsilon, stabilizer, first_layer
        As :class:`Preset`.
    gamma : float, default=0.25
        The Conv layers' :class:`Gamma` parameter (zennit's default).

    Examples
    --------
    >>> from sknn_explain.rules import EpsilonGammaBox
    >>> EpsilonGammaBox(-3.0, 3.0).layer_rules()["input"]
    ZBox(low=-3.0, high=3.0, stabilizer=1e-06)
    """

    def __init__(self, low: object, high: object, epsilon: float = 1e-6, gamma: float = 0.25,
                 stabilizer: float = 1e-6, first_layer: str | Rule | None = None) -> None:
        box = ZBox(low, high)  # validates the bounds
        self.low, self.high = box.low, box.high
        self.gamma = check_number(gamma, "gamma", positive=True)
        super().__init__(epsilon, stabilizer, first_layer)

    def conv_rule(self) -> Rule:
        """``Gamma(gamma, stabilizer=stabilizer)``.

        Returns
        -------
        Rule
            The rule of the Conv layers.
        """
        return Gamma(self.gamma, stabilizer=self.stabilizer)

    def _first_rule(self) -> Rule | None:
        if self.first_layer is None:
            return ZBox(self.low, self.high, stabilizer=self.stabilizer)
        return super()._first_rule()


#: preset name -> class (the names zennit gives its composites).
PRESETS: dict[str, type[Preset]] = {
    cls.__name__: cls
    for cls in (EpsilonPlus, EpsilonPlusFlat, EpsilonAlpha2Beta1, EpsilonAlpha2Beta1Flat,
                EpsilonGammaBox)
}


def get_preset(name: str) -> Preset:
    """The preset ``name`` with its default parameters.

    Parameters
    ----------
    name : str
        A key of :data:`PRESETS` (zennit's composite name, e.g. ``"EpsilonPlus"``).

    Returns
    -------
    Preset
        A new preset with default parameters.

    Raises
    ------
    ValueError
        For ``"EpsilonGammaBox"``, which needs the input bounds: pass
        ``EpsilonGammaBox(low, high)`` instead.

    Examples
    --------
    >>> from sknn_explain.rules import get_preset
    >>> get_preset("EpsilonPlusFlat")
    EpsilonPlusFlat(epsilon=1e-06, stabilizer=1e-06, first_layer=None)
    """
    if name == "EpsilonGammaBox":
        raise ValueError(
            'the preset "EpsilonGammaBox" needs the input bounds: pass '
            "rule_name=EpsilonGammaBox(low, high)"
        )
    return PRESETS[name]()
