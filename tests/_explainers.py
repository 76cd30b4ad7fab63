"""The catalogue of explainers: every public explainer class with cheap constructor arguments.

One list for every test that needs "all explainers" (parameter constraints, common
parameters, ...). :data:`NEEDS_RELU` names the classes that refuse a model without ReLUs
(Guided Backprop, Deconvolution), so a test on a Tanh network can leave them out explicitly.
"""

from __future__ import annotations

from sknn_explain import (
    LIME,
    LRP,
    ConnectionWeights,
    Deconvolution,
    DeepLift,
    DeepSHAP,
    ExcitationBackprop,
    ExpectedGradients,
    Explainer,
    FeatureAblation,
    GradCAM,
    GradCAMPlusPlus,
    Gradient,
    GuidedBackprop,
    IntegratedGradients,
    KernelSHAP,
    LayerDeepLift,
    LayerGradient,
    LayerIntegratedGradients,
    LayerLRP,
    Occlusion,
    ShapleyValueSampling,
    SmoothGrad,
)

#: every explainer class with the constructor arguments that keep a test run cheap
EXPLAINER_CASES: list[tuple[type[Explainer], dict]] = [
    (Gradient, {}),
    (SmoothGrad, {"n": 2, "random_state": 0}),
    (IntegratedGradients, {"n": 2}),
    (ExpectedGradients, {"n": 2, "random_state": 0}),
    (LRP, {}),
    (DeepLift, {}),
    (DeepSHAP, {"limit_ref": 3, "random_state": 0}),
    (ConnectionWeights, {}),
    (KernelSHAP, {"limit_ref": 3, "random_state": 0}),
    (LIME, {"n_samples": 20, "random_state": 0}),
    (Occlusion, {"sliding_window_shapes": (2,)}),
    (FeatureAblation, {}),
    (ShapleyValueSampling, {"n_samples": 2, "random_state": 0}),
    (GuidedBackprop, {}),
    (Deconvolution, {}),
    (LayerGradient, {"layer": "0"}),
    (LayerIntegratedGradients, {"layer": "0", "n": 2}),
    (LayerDeepLift, {"layer": "0"}),
    (LayerLRP, {"layer": "0"}),
    (ExcitationBackprop, {}),
    (GradCAM, {"layer": "0"}),
    (GradCAMPlusPlus, {"layer": "0"}),
]

#: explainers that need ReLU activations in the model
NEEDS_RELU: frozenset[type[Explainer]] = frozenset({GuidedBackprop, Deconvolution})

#: explainers that need a convolutional layer (Grad-CAM weighs channels of a feature map)
NEEDS_FEATURE_MAP: frozenset[type[Explainer]] = frozenset({GradCAM, GradCAMPlusPlus})


def all_explainers(*, relu_free: bool = False) -> list[Explainer]:
    """Fresh instances of every explainer.

    ``relu_free=True`` keeps those that run on a small Tanh MLP: it leaves out
    :data:`NEEDS_RELU` and :data:`NEEDS_FEATURE_MAP`.
    """
    return [cls(**kwargs) for cls, kwargs in EXPLAINER_CASES
            if not (relu_free and cls in NEEDS_RELU | NEEDS_FEATURE_MAP)]


def explainer_id(explainer: Explainer) -> str:
    """Test id of an explainer instance: its class name."""
    return type(explainer).__name__
