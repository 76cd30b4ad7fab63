"""Deprecated alias of :mod:`sknn_explain.transformer` (the name shadowed the ``sklearn`` package).

.. deprecated:: 0.2
    Import :class:`~sknn_explain.transformer.AttributionTransformer`,
    :class:`~sknn_explain.transformer.TabularMLP` and
    :func:`~sknn_explain.transformer.default_estimator` from :mod:`sknn_explain.transformer`
    (or ``AttributionTransformer`` from :mod:`sknn_explain`). This module will be removed in
    0.3.
"""

import warnings

from .transformer import AttributionTransformer, TabularMLP, default_estimator

__all__ = ["AttributionTransformer", "TabularMLP", "default_estimator"]

warnings.warn(
    "sknn_explain.sklearn is deprecated and will be removed in 0.3: import "
    "AttributionTransformer, TabularMLP and default_estimator from sknn_explain.transformer",
    DeprecationWarning,
    stacklevel=2,
)
