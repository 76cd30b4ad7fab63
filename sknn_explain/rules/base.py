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
    """

    def fwd(self, x: torch.Tensor, weights: Modifier = KEEP,
            bias: Modifier | None = None) -> torch.Tensor: ...

    def bwd(self, g: torch.Tensor, weights: Modifier = KEEP) -> torch.Tensor: ...


class ValueObject:
    """Parameters as plain attributes: ``get_params``, repr, equality, hash, copy on clone."""

    def get_params(self) -> dict[str, object]:
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
    """

    name: str = ""
    param_name: str | None = None

    def __init__(self, stabilizer: float | None = None) -> None:
        self.stabilizer = stabilizer
        if stabilizer is not None:
            check_number(stabilizer, "stabilizer", positive=True)

    def eps(self, dtype: torch.dtype) -> float:
        """Stabiliser added to denominators (``stabilizer``, or :func:`tiny_eps` if None)."""
        return tiny_eps(dtype) if self.stabilizer is None else float(self.stabilizer)

    def relevance(self, op: LinearMap, x: torch.Tensor, r: torch.Tensor,
                  z: torch.Tensor | None = None) -> torch.Tensor:
        """Input relevance ``(K, n, *in)`` of a linear layer ``op`` at input ``x`` ``(n, *in)``.

        ``r`` is the output relevance ``(K, n, *out)``; ``z`` the layer output if known.
        """
        raise TypeError(f"the LRP rule {self.name!r} does not apply to linear layers")

    def split_sum(self, summands: Sequence[torch.Tensor], z: torch.Tensor,
                  r: torch.Tensor) -> list[torch.Tensor]:
        """Relevance of each summand ``(n, *shape)`` of an ``Add`` with output ``z``."""
        raise TypeError(f"the LRP rule {self.name!r} does not apply to Add layers")
