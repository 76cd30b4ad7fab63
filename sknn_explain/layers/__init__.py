"""Graph layers: the small set of torch modules every converted model is made of.

Each layer is an ``nn.Module`` whose attributes fully describe it (weights, strides, kinds),
so the propagation methods (LRP, DeepLift, DeepSHAP, Connection Weights) can implement one
rule per layer class. Converters (:mod:`sknn_explain.convert`) map user models onto these.
"""

from .activation import (
    ACTIVATION_ALIASES,
    ACTIVATION_PARAMS,
    SKLEARN_ACTIVATIONS,
    TORCH_ACTIVATION_MODULES,
    Activation,
    torch_activation_modules,
)
from .attention import IdEqual, MaskedSoftmax, PaddedSoftmax
from .base import Layer
from .constant_ops import BroadcastAffine, ConstantConcat
from .conv import Conv
from .conv_transpose import ConvTranspose
from .dense import Dense
from .embedding import Embedding
from .layer_norm import LayerNorm, RMSNorm
from .merge import Add, Concat
from .normalization import BatchNorm, ElementwiseAffine
from .pooling import AdaptiveAvgPool, AdaptiveMaxPool, AvgPool, MaxPool
from .products import MatMul, Multiply
from .recurrent import Gather, Recurrent
from .reshape import Flatten, Pad, Reshape
from .tensor_ops import Index, Permute, Reduce

__all__ = [
    "ACTIVATION_ALIASES",
    "ACTIVATION_PARAMS",
    "SKLEARN_ACTIVATIONS",
    "TORCH_ACTIVATION_MODULES",
    "Activation",
    "AdaptiveAvgPool",
    "AdaptiveMaxPool",
    "Add",
    "AvgPool",
    "BatchNorm",
    "BroadcastAffine",
    "Concat",
    "ConstantConcat",
    "Conv",
    "ConvTranspose",
    "Dense",
    "ElementwiseAffine",
    "Embedding",
    "Flatten",
    "IdEqual",
    "Index",
    "Gather",
    "Layer",
    "LayerNorm",
    "MaskedSoftmax",
    "MatMul",
    "MaxPool",
    "Multiply",
    "Pad",
    "PaddedSoftmax",
    "Permute",
    "RMSNorm",
    "Reduce",
    "Recurrent",
    "Reshape",
    "torch_activation_modules",
]
