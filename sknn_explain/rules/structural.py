"""LRP rules that need no weights: pass-through (shape-keeping layers) and the equal Add split."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .base import LinearMap, ParameterlessRule

__all__ = ["EqualSplit", "Pass"]


class Pass(ParameterlessRule):
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

    def relevance(self, op: LinearMap, x: torch.Tensor, r: torch.Tensor,
                  z: torch.Tensor | None = None) -> torch.Tensor:
        """The output relevance, unchanged (the layer keeps the shape).

        Parameters
        ----------
        op : LinearMap
            The layer (not used).
        x : torch.Tensor of shape ``(n, *shape)``
            The layer input (not used).
        r : torch.Tensor of shape ``(K, n, *shape)``
            The relevance of the layer output.
        z : torch.Tensor of shape ``(n, *shape)``, optional
            The layer output (not used).

        Returns
        -------
        torch.Tensor of shape ``(K, n, *shape)``
            ``r`` itself.
        """
        return r


class EqualSplit(ParameterlessRule):
    """``"equal"``: an ``Add`` node gives every summand ``R / n_summands`` (innsight).

    Examples
    --------
    >>> from sknn_explain.rules import EqualSplit
    >>> EqualSplit().name
    'equal'
    """

    name = "equal"

    def split_sum(self, summands: Sequence[torch.Tensor], z: torch.Tensor,
                  r: torch.Tensor) -> list[torch.Tensor]:
        """``R / n_summands`` for every summand, whatever their values.

        Parameters
        ----------
        summands : sequence of torch.Tensor of shape ``(n, *shape)``
            The inputs of the ``Add`` node (only their number is used).
        z : torch.Tensor of shape ``(n, *shape)``
            Their sum (not used).
        r : torch.Tensor of shape ``(K, n, *shape)``
            The relevance of the output.

        Returns
        -------
        list of torch.Tensor of shape ``(K, n, *shape)``
            The relevance of each summand, in order.
        """
        return [r / len(summands)] * len(summands)
