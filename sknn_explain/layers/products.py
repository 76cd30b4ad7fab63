"""Products of two input-dependent tensors: element-wise (gating) and bilinear (attention).

Both are bilinear in their two inputs, which is what their propagation rules use
(:mod:`sknn_explain.propagation.products`): DeepLift's product rule splits
``Delta(a * b) = a_mean * Delta b + Delta a * b_mean`` exactly, AttnLRP's uniform rule gives
each factor half of the relevance of every product term.
"""

from __future__ import annotations

import torch

from .base import Layer

__all__ = ["MatMul", "Multiply", "check_batched_equation"]


class Multiply(Layer):
    """Element-wise product ``a * b`` of two same-shaped tensors (gated units, GLU)."""

    n_inputs = 2

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a * b


def check_batched_equation(equation: str) -> str:
    """Validate a two-operand einsum ``equation`` whose first index is the batch axis.

    The batch index must lead both operands and the output and appear nowhere else (no
    sample may mix with another); ellipses are not allowed. Returns the equation without
    spaces.

    Raises
    ------
    ValueError
        When the equation does not have that form.

    Examples
    --------
    >>> check_batched_equation("nqd, nkd -> nqk")
    'nqd,nkd->nqk'
    """
    eq = equation.replace(" ", "")
    if "..." in eq or "->" not in eq:
        raise ValueError(f"einsum {equation!r}: an explicit output ('->') and no '...' needed")
    lhs, out = eq.split("->")
    ops = lhs.split(",")
    if len(ops) != 2 or not all(ops) or not out:
        raise ValueError(f"einsum {equation!r}: exactly two operands and an output needed")
    n = ops[0][0]
    if ops[1][0] != n or out[0] != n or any(n in t[1:] for t in (*ops, out)):
        raise ValueError(
            f"einsum {equation!r}: the batch index must lead both operands and the output "
            "and appear nowhere else"
        )
    return eq


class MatMul(Layer):
    """Bilinear product ``scale * einsum(equation, a, b)`` (batched ``a @ b``, attention
    scores ``q k^T / sqrt(d)``, attention-weighted values).

    Parameters
    ----------
    equation : str
        Two-operand einsum equation whose first index is the batch axis in all three
        places (see :func:`check_batched_equation`), e.g. ``"nhqd,nhkd->nhqk"``.
    scale : float, default=1.0
        Constant factor of the product.
    """

    n_inputs = 2

    def __init__(self, equation: str, scale: float = 1.0) -> None:
        super().__init__()
        self.equation = check_batched_equation(equation)
        self.scale = float(scale)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        out = torch.einsum(self.equation, a, b)
        return out if self.scale == 1.0 else out * self.scale

    def extra_repr(self) -> str:
        return f"{self.equation!r}" + ("" if self.scale == 1.0 else f", scale={self.scale:g}")
