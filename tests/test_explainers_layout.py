"""The explainers' house: module layout, deprecated aliases, the Dask hand-off, shared init."""

from __future__ import annotations

import ast
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.base import clone

import sknn_explain as skx
from sknn_explain import _random
from sknn_explain.explainers import agnostic, base
from sknn_explain.explainers.agnostic import _coalitions, _masking, _solvers

PACKAGE = Path(skx.__file__).parent


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 2))


def _imports(path: Path) -> set[str]:
    """Modules a file imports anywhere (top level or inside functions), relative resolved."""
    tree = ast.parse(path.read_text())
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                anchor = ".".join(parts[: len(parts) - node.level + 1])
                found.add(f"{anchor}.{node.module}" if node.module else anchor)
            else:
                found.add(node.module or "")
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("alias, target", [("IntegratedGradient", "IntegratedGradients"),
                                           ("ExpectedGradient", "ExpectedGradients")])
def test_innsight_aliases_warn_but_work_like_their_class(alias, target):
    cls, new = getattr(skx, alias), getattr(skx, target)
    with pytest.warns(DeprecationWarning, match=f"{alias}.*deprecated.*use {target}"):
        explainer = cls(n=7, random_state=0) if target == "ExpectedGradients" else cls(n=7)
    assert isinstance(explainer, new)
    assert explainer.get_params() == new(**explainer.get_params()).get_params()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert type(clone(explainer)) is cls
        assert type(pickle.loads(pickle.dumps(explainer))) is cls
        X = torch.randn(5, 4)
        ref = torch.randn(10, 4)
        old = explainer.fit(_net(), ref).explain(X).values
    current = new(**explainer.get_params()).fit(_net(), ref).explain(X).values
    np.testing.assert_array_equal(old, current)


def test_the_current_names_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        skx.IntegratedGradients(n=3)
        skx.ExpectedGradients(n=3)


def test_common_parameters_are_stored_by_the_base_class_verbatim():
    for cls in (skx.Gradient, skx.SmoothGrad, skx.Occlusion, skx.KernelSHAP, skx.LIME,
                skx.GuidedBackprop):
        device = torch.device("cpu")
        est = cls(ignore_last_act=False, channels_first=False, dtype="double", device=device,
                  batch_size=3, verbose=True)
        params = est.get_params()
        assert params["device"] is device
        assert (params["ignore_last_act"], params["channels_first"], params["dtype"],
                params["batch_size"], params["verbose"]) == (False, False, "double", 3, True)


def test_explainers_base_imports_neither_dask_nor_explainer_classes():
    imported = _imports(PACKAGE / "explainers" / "base.py")
    assert not {m for m in imported if m.split(".")[0] == "dask" or m.endswith(".dask")}
    assert not {m for m in imported if m.startswith("sknn_explain.explainers.")
                and not m.endswith(".base")}


def test_dask_module_names_no_explainer_class():
    imported = _imports(PACKAGE / "dask.py")
    assert "sknn_explain.explainers.gradient" not in imported
    assert skx.SmoothGrad._uses_data_range and not skx.IntegratedGradients._uses_data_range


def test_row_randomness_lives_in_a_bottom_floor_module():
    imported = _imports(PACKAGE / "_random.py")
    assert not {m for m in imported if m.startswith("sknn_explain")}
    # still importable from the explainers' base module, where it lived before
    assert base.row_keys is _random.row_keys and base.random_streams is _random.random_streams


def test_dask_collections_are_handed_on_by_registration():
    from sknn_explain import dask as sk_dask

    assert (base.is_dask_collection, sk_dask.explain) in base._LAZY_EXPLAIN
    before = list(base._LAZY_EXPLAIN)
    base.register_lazy_explain(base.is_dask_collection, sk_dask.explain)  # idempotent
    assert base._LAZY_EXPLAIN == before


def test_a_registered_lazy_explain_receives_matching_inputs(monkeypatch):
    class Marker(np.ndarray):
        pass

    calls = []

    def lazy(explainer, X, output_idx=None, output_label=None):
        calls.append((explainer, output_idx))
        return "lazy"

    monkeypatch.setattr(base, "_LAZY_EXPLAIN",
                        [*base._LAZY_EXPLAIN, (lambda X: isinstance(X, Marker), lazy)])
    explainer = skx.Gradient().fit(_net())
    assert explainer.explain(np.zeros((2, 4)).view(Marker), output_idx=[1]) == "lazy"
    assert calls == [(explainer, [1])]
    assert explainer.explain(np.zeros((2, 4))).values.shape == (2, 4, 2)  # others compute


def test_agnostic_package_keeps_its_public_names():
    assert set(agnostic.__all__) == {"KernelSHAP", "LIME", "constrained_wls",
                                     "kernel_shap_coalitions", "lime_perturbations",
                                     "masked_outputs", "weighted_ridge"}
    assert agnostic.KernelSHAP is skx.KernelSHAP and agnostic.LIME is skx.LIME
    assert agnostic.kernel_shap_coalitions is _coalitions.kernel_shap_coalitions
    assert agnostic.weighted_ridge is _solvers.weighted_ridge
    assert agnostic.masked_outputs is _masking.masked_outputs


def test_agnostic_helpers_do_not_import_the_estimators():
    folder = PACKAGE / "explainers" / "agnostic"
    for helper in ("_coalitions.py", "_solvers.py", "_masking.py"):
        imported = _imports(folder / helper)
        assert not {m for m in imported if "explainers" in m}, helper


def test_kernel_shap_budget_cap_is_the_named_constant():
    rng = np.random.default_rng(0)
    m = _coalitions.MAX_ENUMERATED_FEATURES + 1
    z, w, exact = _coalitions.kernel_shap_coalitions(m, 200, rng)
    assert not exact and z.shape == (200, m) and np.isclose(w.sum(), 1.0)
    with pytest.raises(ValueError, match=f"cannot determine {m} feature attributions"):
        skx.KernelSHAP(n_samples=m - 1, random_state=0)._budget(m)
