"""Explainers: one estimator-like class per attribution method."""

from .base import Explainer
from .gradient import (
    ExpectedGradient,
    ExpectedGradients,
    Gradient,
    IntegratedGradient,
    IntegratedGradients,
    SmoothGrad,
)

__all__ = [
    "ExpectedGradient",
    "ExpectedGradients",
    "Explainer",
    "Gradient",
    "IntegratedGradient",
    "IntegratedGradients",
    "SmoothGrad",
]
