"""Element-wise activation functions (and softmax over an axis), and the one table of what
counts as an activation in torch, scikit-learn and innsight model dicts."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import Layer
from .elementwise import ELEMENTWISE_FUNCTIONS, ELEMENTWISE_PARAMS

__all__ = [
    "ACTIVATION_ALIASES", "ACTIVATION_PARAMS", "Activation", "SKLEARN_ACTIVATIONS",
    "TORCH_ACTIVATION_MODULES", "torch_activation_modules",
]

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
    **ELEMENTWISE_PARAMS,
}

#: torch activation modules -> graph activation name. None: an activation without a graph
#: layer (the converter refuses it), still "the last activation" that ``ignore_last_act``
#: removes from an unconverted ``nn.Sequential``
TORCH_ACTIVATION_MODULES: dict[type[nn.Module], str | None] = {
    nn.ReLU: "relu", nn.LeakyReLU: "leaky_relu", nn.ELU: "elu", nn.Tanh: "tanh",
    nn.Sigmoid: "sigmoid", nn.Softplus: "softplus", nn.GELU: "gelu", nn.SiLU: "silu",
    nn.Softmax: "softmax", nn.Softmax2d: "softmax", nn.LogSoftmax: "log_softmax",
    nn.Softmin: None,
    # element-wise functions of .elementwise
    nn.SELU: "selu", nn.CELU: "celu", nn.Mish: "mish", nn.ReLU6: "relu6",
    nn.Hardtanh: "hardtanh", nn.Hardswish: "hardswish", nn.Hardsigmoid: "hardsigmoid",
    nn.LogSigmoid: "logsigmoid", nn.Softsign: "softsign", nn.Tanhshrink: "tanhshrink",
    nn.PReLU: "prelu",
}

#: scikit-learn MLP activation names (``activation``, ``out_activation_``) -> graph
#: activation name (None: no node)
SKLEARN_ACTIVATIONS: dict[str, str | None] = {
    "identity": None, "relu": "relu", "tanh": "tanh", "logistic": "sigmoid",
    "softmax": "softmax", "exp": "exp",
}

#: other spellings in innsight model dicts -> graph activation name (None: no node)
ACTIVATION_ALIASES: dict[object, str | None] = {
    "linear": None, "identity": None, None: None, "logistic": "sigmoid",
}


def torch_activation_modules(convertible: bool = False) -> tuple[type[nn.Module], ...]:
    """The torch activation module classes (``convertible``: only those with a graph layer).

    Examples
    --------
    >>> nn.ReLU in torch_activation_modules(convertible=True)
    True
    >>> nn.Softmin in torch_activation_modules(convertible=True)
    False
    """
    return tuple(cls for cls, name in TORCH_ACTIVATION_MODULES.items()
                 if name is not None or not convertible)


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
        if self.name in ELEMENTWISE_FUNCTIONS:
            return ELEMENTWISE_FUNCTIONS[self.name](x, **p)
        return F.silu(x)

    def extra_repr(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.name}" + (f", {args}" if args else "")
