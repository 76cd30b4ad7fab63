"""Element-wise functions beyond the classic activations: SELU, CELU, Mish, Hardtanh / ReLU6,
Hardswish, Hardsigmoid, LogSigmoid, Softsign, Tanhshrink, PReLU, ``clamp`` and ``pow`` with
a constant exponent.

They are :class:`~sknn_explain.layers.Activation` s (``Activation("selu")``): every
propagation method treats them as the other element-wise activations (LRP passes relevance
through position-wise, DeepLift uses the rescale rule, Connection Weights the identity).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = ["ELEMENTWISE_FUNCTIONS", "ELEMENTWISE_PARAMS"]

#: name -> parameters (with defaults)
ELEMENTWISE_PARAMS: dict[str, dict[str, object]] = {
    "selu": {}, "celu": {"alpha": 1.0}, "mish": {}, "relu6": {},
    "hardtanh": {"min_val": -1.0, "max_val": 1.0}, "hardswish": {}, "hardsigmoid": {},
    "logsigmoid": {}, "softsign": {}, "tanhshrink": {},
    # PReLU's slopes as a tuple of floats: one shared slope, or one per channel (axis 1)
    "prelu": {"weight": (0.25,)},
    "clamp": {"min": None, "max": None},
    "pow": {"exponent": 2.0},
}


def _prelu(x: torch.Tensor, weight: tuple[float, ...]) -> torch.Tensor:
    return F.prelu(x, torch.tensor(weight, dtype=x.dtype, device=x.device))


#: name -> ``f(x, **params)``
ELEMENTWISE_FUNCTIONS: dict[str, Callable[..., torch.Tensor]] = {
    "selu": lambda x: F.selu(x),
    "celu": lambda x, alpha: F.celu(x, alpha),
    "mish": lambda x: F.mish(x),
    "relu6": lambda x: F.relu6(x),
    "hardtanh": lambda x, min_val, max_val: F.hardtanh(x, min_val, max_val),
    "hardswish": lambda x: F.hardswish(x),
    "hardsigmoid": lambda x: F.hardsigmoid(x),
    "logsigmoid": lambda x: F.logsigmoid(x),
    "softsign": lambda x: F.softsign(x),
    "tanhshrink": lambda x: F.tanhshrink(x),
    "prelu": _prelu,
    "clamp": lambda x, min, max: torch.clamp(x, min, max),  # noqa: A006 - torch's names
    "pow": lambda x, exponent: torch.pow(x, exponent),
}
