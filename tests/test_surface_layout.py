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
    # issue #15: evaluation from the literature (functions only, aopc / irof also scorers)
    "aopc", "irof", "irof_curve", "model_parameter_randomisation", "noisy_linear_imputation",
    "randomisable_layers", "region_perturbation_curve", "road_curve", "spearman_similarity",
    "ssim_similarity",
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
    assert bare == sorted(set(METRIC_FUNCTIONS) - {"deletion_curve", "insertion_curve"} - {
        n for n in METRIC_FUNCTIONS[9:] if n not in ("aopc", "irof")})


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


# ---------------------------------------------------------------------------------- plotting
PLOTTING_MEMBERS = (
    "method", "input_names", "output_names", "output_layers", "output_idx", "channels_first",
    "raw_values", "inputs", "predictions", "decomp_goal", "decomp_sum", "n_samples", "n_inputs",
)


class _PublicView:
    """Only the public members of an Attribution (no private attributes to reach into)."""

    def __init__(self, attr):
        for name in PLOTTING_MEMBERS:
            setattr(self, name, getattr(attr, name))


def _result(n_out: int = 2):
    import torch

    from sknn_explain import IntegratedGradients

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, n_out))
    X = torch.randn(12, 4)
    return IntegratedGradients(n=8).fit(net, X).explain(X, output_idx=list(range(n_out)))


def test_plotting_does_not_import_the_result_class():
    """attribution -> plotting is the only arrow between them (the circle is gone)."""
    import ast
    import pathlib

    import sknn_explain.plotting as plotting

    for path in pathlib.Path(plotting.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert "attribution" not in (node.module or ""), f"{path.name} imports it"


@pytest.mark.parametrize("builder", ["local", "global", "waterfall"])
def test_plots_read_only_the_public_interface(builder):
    """A view with only the public members draws the same panels as the Attribution."""
    from sknn_explain.plotting import global_panels, local_panels

    res = _result()
    build = {
        "local": lambda a: local_panels(a, data_idx=[0, 3]),
        "global": lambda a: global_panels(a, output_idx=[0, 1], kind="bar"),
        "waterfall": lambda a: local_panels(a, data_idx=2, kind="waterfall"),
    }[builder]
    ours, view = build(res), build(_PublicView(res))
    assert len(ours) == len(view) > 0
    for a, b in zip(ours, view):
        assert (a.kind, a.title, a.row, a.col) == (b.kind, b.title, b.row, b.col)
        assert a.frame.equals(b.frame) and a.features == b.features


def test_plots_refuse_other_objects_by_name():
    from sknn_explain.plotting import plot_local

    with pytest.raises(TypeError, match="expected an sknn_explain.Attribution.*ndarray"):
        plot_local(_result().to_numpy())


def test_plot_is_plot_local():
    from sknn_explain import Attribution

    assert Attribution.plot is Attribution.plot_local


def test_import_keeps_matplotlib_seaborn_and_plotly_out():
    """Attribution imports the plotting package at module level; its renderers stay lazy."""
    import subprocess

    code = (
        "import sys, sknn_explain; "
        "print([m for m in ('matplotlib', 'seaborn', 'plotly') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
