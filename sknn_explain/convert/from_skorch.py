"""Fitted skorch nets (``NeuralNetClassifier`` / ``NeuralNetRegressor`` / ...).

The fitted ``module_`` is converted like any torch module; skorch's prediction nonlinearity
(``predict_nonlinearity='auto'``: softmax after ``CrossEntropyLoss``, sigmoid after
``BCEWithLogitsLoss``) becomes the graph's last activation, so ``ignore_last_act=True`` explains
the logits and ``ignore_last_act=False`` explains ``predict_proba``. Output names come from
``classes_``. Binary nets expose their single unit, named ``classes_[1]`` (skorch's 2-column
``predict_proba`` is ``[1 - p, p]`` of it).
"""

from __future__ import annotations

import torch

from .._skorch import check_skorch_fitted, is_skorch_net, skorch_activation, skorch_classes
from ..layers import Activation
from .errors import ConversionError
from .torch import TorchSource

__all__ = ["SkorchSource", "is_skorch_net"]


def _post_activation(net: object) -> Activation | None:
    kind, detail = skorch_activation(net)  # the one mapping, shared with the fallback
    if kind == "identity":
        return None
    if kind == "sigmoid":
        return Activation("sigmoid")
    if kind == "softmax":
        return Activation("softmax", dim=detail)
    raise ConversionError(
        f"the skorch net's predict_nonlinearity {getattr(detail, '__name__', detail)!r} cannot "
        "be expressed as a graph layer (supported: 'auto', None)"
    )


class SkorchSource(TorchSource):
    """A fitted skorch net: its ``module_`` plus the prediction nonlinearity."""

    def __init__(self, net: object, dtype: torch.dtype, device: torch.device) -> None:
        check_skorch_fitted(net)
        super().__init__(net.module_, dtype, device, post=_post_activation(net),
                         class_names=skorch_classes(net),
                         description=f"skorch {type(net).__name__}")
