"""The base class of LRP rules: parameters, equality, pickling and the messages a rule sends."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from numbers import Real
from typing import Protocol

import numpy as np
import torch

from .modifiers import KEEP, Modifier, tiny_eps

__all__ = ["LinearMap", "Rule", "ValueObject", "check_number"]


def check_number(value: object, name: str, *, positive: bool = False) -> float:
    """``value`` as a float; ValueError unless a finite real number (``>= 0`` if positive)."""
    if isinstance(value, bool) or not isinstance(value, (Real, np.number)) or not np.isfinite(
        float(value)
    ):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if positive and float(value) < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return float(value)


class LinearMap(Protocol):
    """A linear layer ``x -> x W' (+ b')`` under weight / bias modifiers (``propagation``).

    ``fwd`` evaluates the layer on ``(n, *in)`` with modified weights and bias (None: no
    bias); ``bwd`` applies the transpose of the modified weights to ``(K, n, *out)``.

    Parameters
    ----------
    *args, **kwargs
        Not used: a protocol is not instantiated. The propagation code passes its own
        implementations (one per Dense / Conv / BatchNorm / pooling layer) to
        :meth:`Rule.relevance`.

    Examples
    --------
    A dense layer ``x -> x W'`` written as a :class:`LinearMap`:

    >>> import torch
    >>> from sknn_explain.rules import Simple
    >>> from sknn_explain.rules.modifiers import KEEP
    >>> class Dense:
    ...     def __init__(self, w):
    ...         self.w = w
    ...     def fwd(self, x, weights=KEEP, bias=None):
    ...         return x @ weights(self.w).T
    ...     def bwd(self, g, weights=KEEP):
    ...         return g @ weights(self.w)
    >>> op = Dense(torch.tensor([[1.0, 3.0]]))
    >>> x, r = torch.tensor([[1.0, 1.0]]), torch.tensor([[[4.0]]])
    >>> Simple().relevance(op, x, r)
    tensor([[[1.0000, 3.0000]]])
    """

    def fwd(self, x: torch.Tensor, weights: Modifier = KEEP,
            bias: Modifier | None = None) -> torch.Tensor:
        """The layer's output on ``x`` with modified weights and bias.

        Parameters
        ----------
        x : torch.Tensor of shape ``(n, *in)``
            The layer input (or a modified input, e.g. its positive part).
        weights : Modifier, default=KEEP
            Applied to the weights before the layer is evaluated.
        bias : Modifier or None, default=None
            Applied to the bias; None evaluates the layer without its bias.

        Returns
        -------
        torch.Tensor of shape ``(n, *out)``
            ``x weights(W)' (+ bias(b))``.
        """
        ...

    def bwd(self, g: torch.Tensor, weights: Modifier = KEEP) -> torch.Tensor:
        """The transpose of the modified weights applied to ``g``.

        Parameters
        ----------
        g : torch.Tensor of shape ``(K, n, *out)``
            A message per output (e.g. relevance divided by the denominator).
        weights : Modifier, default=KEEP
            Applied to the weights before transposing.

        Returns
        -------
        torch.Tensor of shape ``(K, n, *in)``
            ``g weights(W)`` (the vector-Jacobian product with modified weights).
        """
        ...


class ValueObject:
    """Parameters as plain attributes: ``get_params``, repr, equality, hash, copy on clone."""

    def get_params(self) -> dict[str, object]:
        """The parameters, as passed to the constructor.

        Returns
        -------
        dict
            Parameter name -> value; ``type(self)(**get_params())`` is an equal object.
        """
        return dict(vars(self))

    def __sklearn_clone__(self):
        """A copy for :func:`sklearn.base.clone` (rules are values, not estimators)."""
        return copy.deepcopy(self)

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


class Rule(ValueObject):
    """Base class of LRP rules.

    Subclasses set ``name`` (the registry key) and ``param_name`` (which argument a scalar
    ``rule_param`` maps to, or None), and implement the messages they can send:
    :meth:`relevance` for layers with a linear form (Dense, Conv, BatchNorm, scalers,
    pooling) and :meth:`split_sum` for ``Add``. Rules compare equal when their type and
    parameters are equal, and pickle (plain attributes only).

    Parameters
    ----------
    stabilizer : float, optional
        Added to the denominators (``z + stabilizer * sign(z)``); None uses
        :func:`tiny_eps` of the tensors' dtype.

    Examples
    --------
    >>> import torch
    >>> from sknn_explain.rules import Rule, Simple
    >>> isinstance(Simple(), Rule)
    True
    >>> Simple(stabilizer=0.5).eps(torch.float32)
    0.5
    >>> Simple() == Simple(stabilizer=None)
    True
    """

    name: str = ""
    param_name: str | None = None

    def __init__(self, stabilizer: float | None = None) -> None:
        self.stabilizer = stabilizer
        if stabilizer is not None:
            check_number(stabilizer, "stabilizer", positive=True)

    def eps(self, dtype: torch.dtype) -> float:
        """Stabiliser added to denominators (``stabilizer``, or :func:`tiny_eps` if None).

        Parameters
        ----------
        dtype : torch.dtype
            The dtype of the tensors the rule works on.

        Returns
        -------
        float
            The value added to denominators, ``z + eps * sign(z)``.
        """
        return tiny_eps(dtype) if self.stabilizer is None else float(self.stabilizer)

    def relevance(self, op: LinearMap, x: torch.Tensor, r: torch.Tensor,
                  z: torch.Tensor | None = None) -> torch.Tensor:
        """Input relevance ``(K, n, *in)`` of a linear layer ``op`` at input ``x`` ``(n, *in)``.

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

        Raises
        ------
        TypeError
            If the rule does not apply to linear layers (the base class's behaviour).
        """
        raise TypeError(f"the LRP rule {self.name!r} does not apply to linear layers")

    def split_sum(self, summands: Sequence[torch.Tensor], z: torch.Tensor,
                  r: torch.Tensor) -> list[torch.Tensor]:
        """Relevance of each summand ``(n, *shape)`` of an ``Add`` with output ``z``.

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

        Raises
        ------
        TypeError
            If the rule does not apply to ``Add`` layers (the base class's behaviour).
        """
        raise TypeError(f"the LRP rule {self.name!r} does not apply to Add layers")


class ParameterlessRule(Rule):
    """Base of the rules without parameters (``Pass``, ``EqualSplit``, the softmax rules):
    no-argument constructor and empty ``get_params`` (internal, not exported)."""

    def __init__(self) -> None:
        pass

    def get_params(self) -> dict[str, object]:
        """The parameters: none.

        Returns
        -------
        dict
            ``{}``.
        """
        return {}
