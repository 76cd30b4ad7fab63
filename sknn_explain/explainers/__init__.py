"""Explainers: one estimator-like class per attribution method."""

from .agnostic import LIME, KernelSHAP
from .base import Explainer
from .connection_weights import ConnectionWeights
from .deeplift import DeepLift, DeepSHAP
from .excitation import ExcitationBackprop
from .gradcam import GradCAM, GradCAMPlusPlus
from .gradient import (
    ExpectedGradient,
    ExpectedGradients,
    Gradient,
    IntegratedGradient,
    IntegratedGradients,
    SmoothGrad,
)
from .guided import Deconvolution, GuidedBackprop
from .layer import LayerDeepLift, LayerGradient, LayerIntegratedGradients, LayerLRP
from .lrp import LRP
from .neuron import neuron_graph, neuron_index
from .perturbation import FeatureAblation, Occlusion, ShapleyValueSampling

__all__ = [
    "LIME",
    "LRP",
    "KernelSHAP",
    "ConnectionWeights",
    "DeepLift",
    "DeepSHAP",
    "Deconvolution",
    "ExcitationBackprop",
    "ExpectedGradient",
    "ExpectedGradients",
    "Explainer",
    "FeatureAblation",
    "GradCAM",
    "GradCAMPlusPlus",
    "Gradient",
    "GuidedBackprop",
    "IntegratedGradient",
    "IntegratedGradients",
    "LayerDeepLift",
    "LayerGradient",
    "LayerIntegratedGradients",
    "LayerLRP",
    "Occlusion",
    "ShapleyValueSampling",
    "SmoothGrad",
    "neuron_graph",
    "neuron_index",
]
