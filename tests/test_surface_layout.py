"""Layout of the result / report surface: metrics package, transformer module, plotting.

Pins what the refactor of issue #19 (item 3) promised: public names kept, the deprecated
``sknn_explain.sklearn`` alias warns, docstrings are written at definition time, and the
plotting package reads results by their interface without importing ``Attribution`` back.
"""

from __future__ import annotations

import importlib
import inspect
import sys

import pytest

import sknn_explain
from sknn_explain import metrics, transformer

METRIC_FUNCTIONS = [
    "completeness_error",
    "deletion_auc",
    "deletion_curve",
    "faithfulness_correlation",
    "infidelity",
    "insertion_auc",
    "insertion_curve",
    "max_sensitivity",
    "sparseness",
]


# ---------------------------------------------------------------------------------- metrics
def test_metrics_public_names_unchanged():
    assert sorted(metrics.__all__) == sorted([
        *METRIC_FUNCTIONS, "ExplainedRows", "ExplanationScorer", "get_explanation_scorer",
        "get_explanation_scorer_names", "make_explanation_scorer",
    ])
    for name in metrics.__all__:
        assert getattr(metrics, name) is getattr(importlib.import_module("sknn_explain.metrics"),
                                                 name)


@pytest.mark.parametrize("name", METRIC_FUNCTIONS)
def test_metric_docstrings_are_written_in_place(name):
    """Each metric documents its parameters in its own ``def`` (no ``__doc__ = f"..."``)."""
    func = getattr(metrics, name)
    source = inspect.getsource(inspect.getmodule(func))
    assert "__doc__ =" not in source
    doc = inspect.getdoc(func)
    assert "Parameters" in doc and "Returns" in doc and "Examples" in doc
    for param in inspect.signature(func).parameters:
        assert param in doc, f"{name} does not document {param}"


def test_scorer_table_covers_every_metric_name():
    names = metrics.get_explanation_scorer_names()
    bare = sorted(n.removeprefix("neg_") for n in names)
    assert bare == sorted(set(METRIC_FUNCTIONS) - {"deletion_curve", "insertion_curve"})


# ---------------------------------------------------------------------------------- transformer
def test_transformer_module_holds_the_transformer():
    assert sknn_explain.AttributionTransformer is transformer.AttributionTransformer
    assert transformer.AttributionTransformer.__module__ == "sknn_explain.transformer"
    for name in ("AttributionTransformer", "TabularMLP", "default_estimator"):
        assert name in transformer.__all__


def test_sklearn_module_is_a_deprecated_alias():
    sys.modules.pop("sknn_explain.sklearn", None)
    with pytest.warns(DeprecationWarning, match="sknn_explain.transformer"):
        alias = importlib.import_module("sknn_explain.sklearn")
    assert alias.__all__ == ["AttributionTransformer", "TabularMLP", "default_estimator"]
    for name in alias.__all__:
        assert getattr(alias, name) is getattr(transformer, name)
