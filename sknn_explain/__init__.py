"""sknn_explain: feature attributions for neural networks, the scikit-learn way.

The Python successor of the R package *innsight*: explainers are scikit-learn estimators
(``fit(model, X_ref)``, ``explain(X)``) that return an :class:`Attribution`.
"""

from . import metrics, rules
from .attribution import Attribution
from .convert import ConversionError, Graph, UnsupportedLayerError, convert
from .explainers import (
    LIME,
    LRP,
    ConnectionWeights,
    DeepLift,
    DeepSHAP,
    ExpectedGradient,
    ExpectedGradients,
    Explainer,
    Gradient,
    IntegratedGradient,
    IntegratedGradients,
    KernelSHAP,
    SmoothGrad,
)
from .functional import torch_expgrad, torch_grad, torch_intgrad, torch_smoothgrad
from .sklearn import AttributionTransformer

__version__ = "0.1.0"

__all__ = [
    "LIME",
    "LRP",
    "KernelSHAP",
    "Attribution",
    "AttributionTransformer",
    "ConnectionWeights",
    "DeepLift",
    "DeepSHAP",
    "metrics",
    "rules",
    "ConversionError",
    "Graph",
    "UnsupportedLayerError",
    "convert",
    "ExpectedGradient",
    "ExpectedGradients",
    "Explainer",
    "Gradient",
    "IntegratedGradient",
    "IntegratedGradients",
    "SmoothGrad",
    "torch_expgrad",
    "torch_grad",
    "torch_intgrad",
    "torch_smoothgrad",
]
