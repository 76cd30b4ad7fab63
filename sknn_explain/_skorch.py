"""What sknn_explain knows about skorch nets, in one place.

* :func:`is_skorch_net` -- is the object a skorch ``NeuralNet``;
* :func:`check_skorch_fitted` -- the one "not fitted" check (``initialized_`` and ``module_``);
* :func:`skorch_activation` -- the one mapping of skorch's prediction nonlinearity
  (binary nets: ONE output unit, ``P(classes_[1])`` or its logit, named ``classes_[1]``, as
  scikit-learn's binary ``MLPClassifier``);
* :func:`skorch_classes` -- the net's class labels, when it has them.

skorch is imported where it is used, not at module level: importing it costs about a second
and most users of the package never pass a skorch net.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

__all__ = ["check_skorch_fitted", "is_skorch_net", "skorch_activation", "skorch_classes"]


def is_skorch_net(obj: object) -> bool:
    """Whether ``obj`` is a skorch ``NeuralNet`` (fitted or not)."""
    try:
        from skorch import NeuralNet  # lazy: import-time cost (see the module docstring)
    except ImportError:  # pragma: no cover - skorch is a dependency
        return False
    return isinstance(obj, NeuralNet)


def is_fitted_skorch_net(net: object) -> bool:
    """Whether the skorch net has been fitted (or initialised): it has a ``module_``."""
    return bool(getattr(net, "initialized_", False)) and hasattr(net, "module_")


def check_skorch_fitted(net: object) -> None:
    """Raise a ``ValueError`` naming the net unless it is fitted (or initialised)."""
    if not is_fitted_skorch_net(net):
        raise ValueError(
            f"the skorch {type(net).__name__} is not fitted; call net.fit(X, y) (or "
            "net.initialize()) before explaining it"
        )


def skorch_classes(net: object) -> list | None:
    """The net's ``classes_`` as a list, or None (regressors, nets fitted without ``y``)."""
    try:
        classes = getattr(net, "classes_", None)
    except AttributeError:  # skorch raises AttributeError from a property, past getattr
        classes = None
    return None if classes is None else np.asarray(classes).tolist()


def skorch_activation(net: object) -> tuple[str, object]:
    """The skorch net's prediction nonlinearity as ``(kind, detail)``; the only mapping.

    ``kind`` is ``"identity"``, ``"sigmoid"`` (``_sigmoid_then_2d``: the single output
    unit's probability, ``P(classes_[1])``; skorch's 2-column ``[1 - p, p]`` is not
    reproduced), ``"softmax"`` (``detail``: the dim) or ``"other"`` (``detail``: the
    callable). ``_make_2d_probs`` (a module that already outputs the probability) is
    ``"identity"``: the single unit is kept as it is.
    """
    from skorch import utils  # lazy: import-time cost (see the module docstring)

    fn = net._get_predict_nonlinearity()
    if fn is utils._identity or fn is utils._make_2d_probs:
        return "identity", None
    if fn is utils._sigmoid_then_2d:
        return "sigmoid", None
    if isinstance(fn, functools.partial) and fn.func in (
            torch.softmax, torch.nn.functional.softmax):
        return "softmax", int(fn.keywords.get("dim", -1))
    return "other", fn
