"""sknn_explain: feature attributions for neural networks, the scikit-learn way.

The Python successor of the R package *innsight*: explainers are scikit-learn estimators
(``fit(model, X_ref)``, ``explain(X)``) that return an :class:`Attribution`.
"""

from . import (
    dask,  # noqa: F401 - lets explain() take dask collections (imports no dask)
    rules,
)
from .attribution import Attribution
from .convert import ConversionError, Graph, UnsupportedLayerError, convert
from .explainers import (
    LIME,
    LRP,
    ConnectionWeights,
    Deconvolution,
    DeepLift,
    DeepSHAP,
    ExcitationBackprop,
    ExpectedGradient,
    ExpectedGradients,
    Explainer,
    FeatureAblation,
    GradCAM,
    GradCAMPlusPlus,
    Gradient,
    GuidedBackprop,
    IntegratedGradient,
    IntegratedGradients,
    KernelSHAP,
    LayerDeepLift,
    LayerGradient,
    LayerIntegratedGradients,
    LayerLRP,
    Occlusion,
    ShapleyValueSampling,
    SmoothGrad,
    neuron_graph,
    neuron_index,
)
from .functional import torch_expgrad, torch_grad, torch_intgrad, torch_smoothgrad

__version__ = "0.1.0"

#: imported on first access (PEP 562): the scikit-learn integration and the metrics pull in
#: sklearn.neural_network / pipeline / model_selection pieces that most explain calls never use
_LAZY = {"AttributionTransformer": ("sknn_explain.transformer", "AttributionTransformer"),
         "metrics": ("sknn_explain.metrics", None)}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        module_name, attr = _LAZY[name]
        module = importlib.import_module(module_name)
        value = module if attr is None else getattr(module, attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sknn_explain' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

__all__ = [
    "LIME",
    "LRP",
    "KernelSHAP",
    "Attribution",
    "AttributionTransformer",
    "ConnectionWeights",
    "DeepLift",
    "DeepSHAP",
    "Deconvolution",
    "ExcitationBackprop",
    "metrics",
    "rules",
    "ConversionError",
    "Graph",
    "UnsupportedLayerError",
    "convert",
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
    "torch_expgrad",
    "torch_grad",
    "torch_intgrad",
    "torch_smoothgrad",
]
