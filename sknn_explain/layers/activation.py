"""Element-wise activation functions (and softmax over an axis)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Layer

#: supported activation names and their parameters (with defaults)
ACTIVATION_PARAMS: dict[str, dict[str, object]] = {
    "identity": {},
    "relu": {},
    "leaky_relu": {"negative_slope": 0.01},
    "elu": {"alpha": 1.0},
    "tanh": {},
    "sigmoid": {},
    "softplus": {"beta": 1.0, "threshold": 20.0},
    "softmax": {"dim": -1},
    "log_softmax": {"dim": -1},
    "gelu": {"approximate": "none"},
    "silu": {},
    "exp": {},
}


class Activation(Layer):
    """Activation ``name`` with its parameters (see ``ACTIVATION_PARAMS``).

    Examples
    --------
    >>> import torch
    >>> Activation("leaky_relu", negative_slope=0.2)(torch.tensor([[-1.0, 2.0]]))
    tensor([[-0.2000,  2.0000]])
    """

    def __init__(self, name: str, **params: object) -> None:
        super().__init__()
        if name not in ACTIVATION_PARAMS:
            raise ValueError(
                f"unsupported activation {name!r}; supported: {sorted(ACTIVATION_PARAMS)}"
            )
        unknown = set(params) - set(ACTIVATION_PARAMS[name])
        if unknown:
            raise ValueError(f"activation {name!r} has no parameter(s) {sorted(unknown)}")
        self.name = name
        self.params = {**ACTIVATION_PARAMS[name], **params}

    @property
    def elementwise(self) -> bool:
        """Whether output i depends on input i only (False for softmax)."""
        return self.name not in ("softmax", "log_softmax")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.params
        if self.name == "identity":
            return x
        if self.name == "relu":
            return F.relu(x)
        if self.name == "leaky_relu":
            return F.leaky_relu(x, p["negative_slope"])
        if self.name == "elu":
            return F.elu(x, p["alpha"])
        if self.name == "tanh":
            return torch.tanh(x)
        if self.name == "sigmoid":
            return torch.sigmoid(x)
        if self.name == "softplus":
            return F.softplus(x, p["beta"], p["threshold"])
        if self.name == "softmax":
            return torch.softmax(x, dim=p["dim"])
        if self.name == "log_softmax":
            return torch.log_softmax(x, dim=p["dim"])
        if self.name == "exp":
            return torch.exp(x)
        if self.name == "gelu":
            return F.gelu(x, approximate=p["approximate"])
        return F.silu(x)

    def extra_repr(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.name}" + (f", {args}" if args else "")
