"""LRP rules for layers with a linear form, each composed from modifiers and a stabiliser.

A rule is a list of :class:`Share` s. A share has one denominator: the signed sum of its
:class:`Term` s ``z_t = sign_t * (inputs_t(x) weights_t(W) + bias_t(b))``; the output
relevance divided by the stabilised denominator (``s = R / stab(sum_t z_t)``, masked to the
outputs the share covers) goes back through every term, ``sign_t * inputs_t(x) *
weights_t(W)^T s``, and the shares' results are added with their ``weight``. Adding a rule is
adding a class whose :meth:`LinearRule.shares` lists its terms. Formulas:
:mod:`sknn_explain.rules`.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .base import LinearMap, Rule, check_number
from .modifiers import (
    KEEP,
    NEGATIVE,
    ONES,
    POSITIVE,
    SQUARE,
    Bound,
    GammaBoost,
    Modifier,
    stabilize,
)

__all__ = [
    "AlphaBeta",
    "Epsilon",
    "Flat",
    "Gamma",
    "LinearRule",
    "Outputs",
    "Share",
    "Simple",
    "Term",
    "WSquare",
    "ZBox",
    "ZPlus",
]


@dataclass(frozen=True)
class Term:
    """One contribution ``sign * inputs(x) weights(W) (+ bias(b))`` (bias None: none)."""

    inputs: Modifier
    weights: Modifier
    bias: Modifier | None = None
    sign: float = 1.0


#: the layer itself: ``x W + b``
PLAIN = Term(KEEP, KEEP, KEEP)


class Outputs(enum.Enum):
    """Which outputs a share redistributes: all, or those with ``z > 0`` / ``z < 0``."""

    ALL = 0
    POSITIVE = 1
    NEGATIVE = -1

    def mask(self, z: torch.Tensor) -> torch.Tensor | None:
        if self is Outputs.ALL:
            return None
        # written straight into a float tensor (a bool mask's ``.to`` is slow on CPU)
        cmp = torch.gt if self is Outputs.POSITIVE else torch.lt
        return cmp(z, 0, out=torch.empty_like(z))


@dataclass(frozen=True)
class Share:
    """Terms with one denominator, weighted by ``weight``, for the ``outputs`` it covers."""

    terms: tuple[Term, ...]
    weight: float = 1.0
    outputs: Outputs = Outputs.ALL


class LinearRule(Rule):
    """A rule for linear layers defined by its :meth:`shares`.

    Parameters
    ----------
    stabilizer : float, optional
        Added to the denominators; None uses :func:`tiny_eps`.

    Examples
    --------
    A new rule is a subclass listing its terms; this one is LRP-0:

    >>> from sknn_explain.rules import LinearRule, Simple
    >>> from sknn_explain.rules.linear import PLAIN, Share
    >>> class Zero(LinearRule):
    ...     name = "zero"
    ...     def shares(self):
    ...         return (Share((PLAIN,)),)
    >>> Zero().shares() == Simple().shares()
    True
    """

    def shares(self) -> tuple[Share, ...]:
        """The rule's terms, grouped by denominator (subclasses define them).

        Returns
        -------
        tuple of Share
            The shares whose weighted results add up to the input relevance.
        """
        raise NotImplementedError

    def relevance(self, op: LinearMap, x: torch.Tensor, r: torch.Tensor,
                  z: torch.Tensor | None = None) -> torch.Tensor:
        """Input relevance of a linear layer: each share's terms times ``R / stab(z)``.

        Parameters
        ----------
        op : LinearMap
            The layer, evaluated with modified weights / bias.
        x : torch.Tensor of shape ``(n, *in)``
            The layer input.
        r : torch.Tensor of shape ``(K, n, *out)``
            The relevance of the layer output, one slice per explained output ``K``.
        z : torch.Tensor of shape ``(n, *out)``, optional
            The layer output if already known (saves a forward pass).

        Returns
        -------
        torch.Tensor of shape ``(K, n, *in)``
            The relevance of the layer input.
        """
        eps = self.eps(x.dtype)
        total = None
        for share in self.shares():
            plain = share.terms == (PLAIN,)
            if z is None and (plain or share.outputs is not Outputs.ALL):
                z = op.fwd(x, KEEP, KEEP)
            inputs = [term.inputs(x) for term in share.terms]
            den = z if plain else _signed_sum(
                [op.fwd(i, t.weights, t.bias) for t, i in zip(share.terms, inputs)],
                share.terms)
            inv = stabilize(den, eps).reciprocal_()  # a fresh tensor: in place is safe
            s = r * (inv if share.outputs is Outputs.ALL else inv * share.outputs.mask(z))
            part = None
            for t, i in zip(share.terms, inputs):  # no ``0 +`` / ``1.0 *`` full-size passes
                c = (i if t.sign == 1.0 else t.sign * i) * op.bwd(s, t.weights)
                part = c if part is None else part + c
            if share.weight != 1.0:
                part = share.weight * part
            total = part if total is None else total + part
        return total


def _signed_sum(parts, terms: Sequence[Term]) -> torch.Tensor:
    """``sum(t.sign * p)`` without the ``0 +`` and ``1.0 *`` passes over full tensors."""
    total = None
    for t, p in zip(terms, parts):
        p = p if t.sign == 1.0 else t.sign * p
        total = p if total is None else total + p
    return total


class _Proportional(LinearRule):
    """LRP-0 family: the layer's own contributions; Add splits in proportion to summands."""

    def shares(self) -> tuple[Share, ...]:
        """One share: the layer's own terms ``x W + b``.

        Returns
        -------
        tuple of Share
            The shares whose weighted results add up to the input relevance.
        """
        return (Share((PLAIN,)),)

    def split_sum(self, summands: Sequence[torch.Tensor], z: torch.Tensor,
                  r: torch.Tensor) -> list[torch.Tensor]:
        """Relevance of each summand in proportion to its value: ``v * R / stab(z)``.

        Parameters
        ----------
        summands : sequence of torch.Tensor of shape ``(n, *shape)``
            The inputs of the ``Add`` node.
        z : torch.Tensor of shape ``(n, *shape)``
            Their sum, the node's output.
        r : torch.Tensor of shape ``(K, n, *shape)``
            The relevance of the output.

        Returns
        -------
        list of torch.Tensor of shape ``(K, n, *shape)``
            The relevance of each summand, in order.
        """
        s = r * torch.reciprocal(stabilize(z, self.eps(r.dtype)))
        return [v * s for v in summands]


class Simple(_Proportional):
    """LRP-0 (``"simple"``): ``z`` stabilised by a tiny epsilon only.

    Parameters
    ----------
    stabilizer : float, optional
        Added to the denominators; None uses :func:`tiny_eps`.

    Examples
    --------
    >>> from sknn_explain.rules import Simple
    >>> Simple()
    Simple(stabilizer=None)
    """

    name = "simple"


class Epsilon(_Proportional):
    """LRP-epsilon (``"epsilon"``): ``z + epsilon * sign(z)`` in the denominator.

    Parameters
    ----------
    epsilon : float, default=0.01
        Added to the denominators, ``z + epsilon * sign(z)`` (innsight's default).

    Examples
    --------
    >>> from sknn_explain.rules import Epsilon
    >>> Epsilon(0.1).epsilon
    0.1
    """

    name = "epsilon"
    param_name = "epsilon"

    def __init__(self, epsilon: float = 0.01) -> None:
        self.epsilon = check_number(epsilon, "epsilon", positive=True)

    def get_params(self) -> dict[str, object]:
        """The parameters, as passed to the constructor.

        Returns
        -------
        dict
            ``{"epsilon": epsilon}``.
        """
        return {"epsilon": self.epsilon}

    def eps(self, dtype: torch.dtype) -> float:
        """The stabiliser: ``epsilon``, whatever the dtype.

        Parameters
        ----------
        dtype : torch.dtype
            The dtype of the tensors the rule works on (not used).

        Returns
        -------
        float
            ``epsilon``.
        """
        return self.epsilon


#: ``x+ w+ + x- w-`` (bias ``b+``): the positive contributions
_POSITIVE_TERMS = (Term(POSITIVE, POSITIVE, POSITIVE), Term(NEGATIVE, NEGATIVE))
#: ``x+ w- + x- w+`` (bias ``b-``): the negative contributions
_NEGATIVE_TERMS = (Term(POSITIVE, NEGATIVE, NEGATIVE), Term(NEGATIVE, POSITIVE))


class AlphaBeta(LinearRule):
    """LRP-alpha-beta (``"alpha_beta"``) in innsight's parameterisation.

    Relevance is ``alpha * R+ - beta * R-`` with ``beta = alpha - 1`` (so the layer
    conserves relevance up to the bias). innsight's default ``alpha = 0.5`` gives
    ``0.5 R+ + 0.5 R-``. zennit's ``AlphaBeta(alpha=a, beta=a - 1)`` (which needs
    ``a >= 1``) is the same rule.

    Parameters
    ----------
    alpha : float, default=0.5
        Weight of the positive contributions; the negative ones get ``beta = alpha - 1``.
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
        self.alpha = check_number(alpha, "alpha")
        super().__init__(stabilizer)

    @property
    def beta(self) -> float:
        """``alpha - 1``, the weight of the negative contributions (conservation)."""
        return self.alpha - 1.0

    def shares(self) -> tuple[Share, ...]:
        """The positive contributions weighted ``alpha``, the negative ones ``-beta``.

        Returns
        -------
        tuple of Share
            The shares whose weighted results add up to the input relevance.
        """
        return (Share(_POSITIVE_TERMS, self.alpha), Share(_NEGATIVE_TERMS, -self.beta))


class ZPlus(LinearRule):
    """z+ rule (``"zplus"``): only positive contributions (alpha = 1, beta = 0).

    Parameters
    ----------
    stabilizer : float, optional
        Added to the denominators; None uses :func:`tiny_eps`.

    Examples
    --------
    >>> from sknn_explain.rules import ZPlus
    >>> ZPlus().name
    'zplus'
    """

    name = "zplus"

    def shares(self) -> tuple[Share, ...]:
        """One share: the positive contributions ``x+ w+ + x- w-`` (bias ``b+``).

        Returns
        -------
        tuple of Share
            The shares whose weighted results add up to the input relevance.
        """
        return (Share(_POSITIVE_TERMS),)


class Gamma(LinearRule):
    """Generalised gamma rule (``"gamma"``), favouring positive (same-sign) contributions.

    Parameters
    ----------
    gamma : float, default=0.25
        Weight of the added same-sign parts (zennit's default).
    stabilizer : float, optional
        Added to the denominators; None uses :func:`tiny_eps`.

    Examples
    --------
    >>> from sknn_explain.rules import Gamma
    >>> Gamma(0.5).gamma
    0.5
    """

    name = "gamma"
    param_name = "gamma"

    def __init__(self, gamma: float = 0.25, stabilizer: float | None = None) -> None:
        self.gamma = check_number(gamma, "gamma", positive=True)
        super().__init__(stabilizer)

    def shares(self) -> tuple[Share, ...]:
        """Gamma-boosted positive parts for ``z > 0``, negative parts for ``z < 0``.

        Returns
        -------
        tuple of Share
            The shares whose weighted results add up to the input relevance.
        """
        up, down = GammaBoost(self.gamma, True), GammaBoost(self.gamma, False)
        return (
            Share((Term(POSITIVE, up, up), Term(NEGATIVE, down)), outputs=Outputs.POSITIVE),
            Share((Term(POSITIVE, down, down), Term(NEGATIVE, up)), outputs=Outputs.NEGATIVE),
        )


class Flat(LinearRule):
    """Flat rule (``"flat"``): relevance spread uniformly over each receptive field.

    Parameters
    ----------
    stabilizer : float, optional
        Added to the denominators; None uses :func:`tiny_eps`.

    Examples
    --------
    >>> from sknn_explain.rules import Flat
    >>> Flat().name
    'flat'
    """

    name = "flat"

    def shares(self) -> tuple[Share, ...]:
        """One share: ones for the inputs and the weights, no bias.

        Returns
        -------
        tuple of Share
            The shares whose weighted results add up to the input relevance.
        """
        return (Share((Term(ONES, ONES),)),)


class WSquare(LinearRule):
    """w^2 rule (``"wsquare"``): relevance spread proportionally to squared weights.

    Parameters
    ----------
    stabilizer : float, optional
        Added to the denominators; None uses :func:`tiny_eps`.

    Examples
    --------
    >>> from sknn_explain.rules import WSquare
    >>> WSquare().name
    'wsquare'
    """

    name = "wsquare"

    def shares(self) -> tuple[Share, ...]:
        """One share: ones for the inputs, squared weights and bias.

        Returns
        -------
        tuple of Share
            The shares whose weighted results add up to the input relevance.
        """
        return (Share((Term(ONES, SQUARE, SQUARE),)),)


class ZBox(LinearRule):
    """z^B rule (``"zbox"``) for a layer whose inputs lie in ``[low, high]``.

    Parameters
    ----------
    low, high : float or array-like
        Bounds of the layer's input, broadcastable to its per-sample shape (e.g. per
        channel ``(C, 1, 1)`` for images). Use ``rule_param=(low, high)`` with the name.
    stabilizer : float, optional
        Added to the denominators; None uses :func:`tiny_eps`.

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
        """``low`` / ``high`` broadcast to one sample of ``like`` (``(n, *shape)``).

        Parameters
        ----------
        like : torch.Tensor of shape ``(n, *shape)``
            A layer input: gives the shape, dtype and device.

        Returns
        -------
        low, high : torch.Tensor
            The bounds, each of one sample's shape ``shape``.

        Raises
        ------
        ValueError
            If the bounds do not broadcast to ``shape``.
        """
        return Bound(self.low, "low")(like)[0], Bound(self.high, "high")(like)[0]

    def shares(self) -> tuple[Share, ...]:
        """One share: ``x w - low w+ - high w-`` (the biases cancel).

        Returns
        -------
        tuple of Share
            The shares whose weighted results add up to the input relevance.
        """
        # x w - l w+ - h w- (biases b - b+ - b- cancel)
        return (Share((PLAIN,
                       Term(Bound(self.low, "low"), POSITIVE, POSITIVE, -1.0),
                       Term(Bound(self.high, "high"), NEGATIVE, NEGATIVE, -1.0))),)


def _np(value: object) -> object:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    arr = np.asarray(value, dtype=np.float64)
    return float(arr) if arr.ndim == 0 else arr
