"""The documentation site's sources cover the public API (the site itself is built in CI)."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
from pathlib import Path

import pytest

import sknn_explain

ROOT = Path(__file__).resolve().parent.parent
API = ROOT / "docs" / "api"
SUBMODULES = ["metrics", "plotting", "rules", "convert", "functional", "dask"]


def _autosummary_entries(page: Path) -> dict[str, list[str]]:
    """Full names listed in the page's autosummary blocks, by whether they get a page."""
    module, entries = "", {"page": [], "link": []}
    lines = page.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if line.startswith(".. currentmodule::"):
            module = line.split("::")[1].strip()
        if line.strip() != ".. autosummary::":
            continue
        block = []
        for item in lines[i + 1:]:
            if item and not item.startswith("   "):
                break
            block.append(item.strip())
        kind = "page" if any(b.startswith(":toctree:") for b in block) else "link"
        for name in (b for b in block if b and not b.startswith(":")):
            name = name.lstrip("~")
            entries[kind].append(name if name.startswith("sknn_explain") else f"{module}.{name}")
    return entries


def _documented() -> dict[str, list[str]]:
    found = {"page": [], "link": []}
    for page in API.glob("*.rst"):
        for kind, names in _autosummary_entries(page).items():
            found[kind] += names
    return found


def test_every_public_name_has_its_own_api_page():
    pages = set(_documented()["page"])
    modules = {f"sknn_explain.{m}" for m in SUBMODULES}
    for name in sknn_explain.__all__:
        full = f"sknn_explain.{name}"
        if full in modules:  # a submodule: its own page docs/api/<name>.rst
            assert (API / f"{name}.rst").is_file(), name
        elif name == "convert":  # the function shares its name with the submodule
            assert "sknn_explain.convert.convert" in pages
        else:
            assert full in pages, f"{full} has no page in docs/api/"


@pytest.mark.parametrize("submodule", SUBMODULES)
def test_every_submodule_name_is_documented(submodule):
    module = importlib.import_module(f"sknn_explain.{submodule}")
    assert (API / f"{submodule}.rst").is_file()
    found = _documented()
    documented = set(found["page"]) | set(found["link"])
    top_level = set(sknn_explain.__all__)
    for name in module.__all__:
        # a name exported at top level is documented there once (no duplicate descriptions)
        where = f"sknn_explain.{name}" if name in top_level and name != "convert" \
            else f"sknn_explain.{submodule}.{name}"
        assert where in documented, f"{where} missing from docs/api/"
    assert not any("._" in name for name in documented), "private module path in docs/api/"


def test_each_name_gets_exactly_one_page():
    pages = _documented()["page"]
    assert len(pages) == len(set(pages))
    assert all(name in {*pages} for name in _documented()["link"]), "link to an undocumented name"


def test_every_example_is_a_gallery_script_with_a_title():
    for script in sorted((ROOT / "examples").glob("*.py")):
        doc = ast.get_docstring(ast.parse(script.read_text(encoding="utf-8")), clean=False)
        assert doc, script.name
        title, underline = doc.strip().splitlines()[:2]
        assert re.fullmatch(r"=+", underline) and len(underline) >= len(title), script.name


def test_index_toctree_lists_every_user_guide_page():
    index = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    for page in (ROOT / "docs").glob("*.md"):
        if page.stem != "index":
            assert re.search(rf"^{re.escape(page.stem)}$", index, flags=re.M), page.name
    assert "api/index" in index and "auto_examples/index" in index


def _docstring_gate():
    """docs/docstring_gate.py, the checks the site build runs (numpydoc validation)."""
    pytest.importorskip("numpydoc")
    path = ROOT / "docs" / "docstring_gate.py"
    spec = importlib.util.spec_from_file_location("docstring_gate", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_public_docstring_passes_the_numpydoc_gate():
    """Parameters / Returns / Examples and the rest of the gate's checks, on every public
    class, function, method and property (the backlog lists the findings not fixed yet)."""
    gate = _docstring_gate()
    found = gate.findings()
    new = {name: codes - gate.BACKLOG.get(name, set()) for name, codes in found.items()}
    assert not {name: codes for name, codes in new.items() if codes}, "numpydoc findings"
    fixed = {name: codes - found.get(name, set()) for name, codes in gate.BACKLOG.items()}
    assert not {name: codes for name, codes in fixed.items() if codes}, \
        "fixed: remove from docstring_gate.BACKLOG"


def test_docstring_gate_backlog_stays_empty():
    """Every public object passes the gate: a new public name comes with its docstring."""
    assert _docstring_gate().BACKLOG == {}


def test_docstring_gate_covers_methods_but_not_inherited_library_members():
    gate = _docstring_gate()
    names = {name for name, _, _ in gate.public_objects()}
    assert {"sknn_explain.Gradient", "sknn_explain.Attribution.to_frame",
            "sknn_explain.metrics.deletion_curve", "sknn_explain.dask.explain"} <= names
    assert not any(name.endswith((".get_params", ".set_output", ".fit_transform"))
                   for name in names if name.startswith("sknn_explain.Gradient"))
    excluded = re.compile("|".join(gate.foreign_member_patterns()))
    assert excluded.search("sknn_explain.Gradient.set_params")
    assert excluded.search("sknn_explain.AttributionTransformer.set_output")
    assert not excluded.search("sknn_explain.Gradient.explain")
    assert not excluded.search("sknn_explain.rules.Epsilon.get_params")  # ours there


def test_explainer_docstrings_name_only_public_modules():
    for name in sknn_explain.__all__:
        doc = getattr(sknn_explain, name).__doc__ or ""
        assert not re.search(r"sknn_explain(\.\w+)*\._\w+|sknn_explain\.explainers\b", doc), name
