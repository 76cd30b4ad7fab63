"""Sphinx configuration of the sknn_explain documentation site.

Build (gallery examples not executed, fast)::

    sphinx-build -W docs docs/_build/html

Build with the gallery executed (plots rendered into the example pages, a few minutes)::

    sphinx-build -W -D plot_gallery=1 docs docs/_build/html

The build needs no network: intersphinx only uses inventories found in ``docs/_intersphinx/``
(``<name>.inv``) or, with ``SKNN_DOCS_INTERSPHINX=1`` in the environment, downloads them.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))  # the checkout's package, also without `pip install -e`

import sphinx.ext.autosummary as _autosummary  # noqa: E402
from docutils import nodes  # noqa: E402
from sphinx.util import logging  # noqa: E402

import sknn_explain  # noqa: E402

sys.path.insert(0, str(DOCS))
import docstring_gate  # noqa: E402

project = "sknn_explain"
author = "The sknn_explain developers"
copyright = "The sknn_explain developers"  # noqa: A001
release = version = sknn_explain.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
html_static_path = ["_static"]
exclude_patterns = ["_build", "_intersphinx", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "**/sg_execution_times.rst"]

# --- API reference: one page per public name, by its public import path (docs/api/) ---
autosummary_generate = True
autosummary_imported_members = True
autodoc_typehints = "none"  # numpydoc's Parameters section states the types
numpydoc_show_class_members = False  # the class template lists the members
numpydoc_class_members_toctree = False

# --- the docstring quality gate (docs/docstring_gate.py; also run by tests/test_docs_site.py) ---
numpydoc_validation_checks = set(docstring_gate.CHECKS)
numpydoc_validation_exclude = {
    *docstring_gate.foreign_member_patterns(),  # scikit-learn's / torch's members: not ours
    *docstring_gate.data_patterns(),  # constants: numpydoc would check their type's docstring
    *(rf"^{re.escape(name)}$" for name in docstring_gate.BACKLOG),
}


def _aliases() -> dict[str, str]:
    """Public names that are a second name of another public object: name -> canonical name."""
    canonical: dict[int, str] = {}
    aliases = {}
    for name in sknn_explain.__all__:
        obj = getattr(sknn_explain, name)
        if getattr(obj, "__name__", name) == name:
            canonical[id(obj)] = name
    for name in sknn_explain.__all__:
        obj = getattr(sknn_explain, name)
        if getattr(obj, "__name__", name) != name and id(obj) in canonical:
            aliases[name] = canonical[id(obj)]
    return aliases


autosummary_context = {"alias_targets": _aliases()}

#: "ndarray of shape (n_features_in_,)": in reST a word ending in "_" is a link; numpydoc passes
#: type specs through as reST, so escape such words there (phase 2 of issue #17 reviews the
#: docstrings themselves).
_SHAPE_UNDERSCORE = re.compile(r"(?<=\w)_(?=[,)\]])")


def _escape_shape_underscores(app, what, name, obj, options, lines) -> None:
    for i, line in enumerate(lines):
        if "shape (" in line or "len(" in line:
            lines[i] = _SHAPE_UNDERSCORE.sub(r"\\_", line)


def _skip_generated_sklearn_members(app, what, name, obj, skip, options):
    """scikit-learn's metadata-routing methods (``set_<method>_request``) are generated per class
    by scikit-learn and documented there; their docstrings refer to its own user guide labels."""
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return None


def _summary_keeping_inline_markup(doc, settings) -> str:
    """Sphinx 9's autosummary cuts the summary at a period even inside an inline literal
    (its check parses the whole stanza instead of the cut sentence): then use the first
    paragraph whole."""
    summary = _extract_summary(doc, settings)
    if not any(_autosummary._parse_summary([summary], settings).findall(nodes.system_message)):
        return summary
    paragraph = "\n".join(line.strip() for line in doc).strip().split("\n\n")[0]
    return " ".join(paragraph.split())


_logger = logging.getLogger(__name__)
_extract_summary = _autosummary.extract_summary
_autosummary.extract_summary = _summary_keeping_inline_markup


def _require_examples(app, what, name, obj, options, lines) -> None:
    """The gate's checks for public classes and functions only (``TOP_LEVEL_CHECKS``: an
    Examples section); their methods are shown by the class's examples."""
    if what not in ("class", "exception", "function") or name in docstring_gate.BACKLOG:
        return
    if not any(line.strip() in ("Examples", ".. rubric:: Examples") for line in lines):
        _logger.warning("[numpydoc] %s: EX01 No examples section found", name)


def setup(app) -> None:
    app.connect("autodoc-process-docstring", _escape_shape_underscores, priority=400)
    app.connect("autodoc-process-docstring", _require_examples, priority=600)
    app.connect("autodoc-skip-member", _skip_generated_sklearn_members)

# --- user guide: the markdown pages of docs/ through MyST ---
myst_heading_anchors = 3
myst_enable_extensions = ["dollarmath", "amsmath"]

# --- example gallery from examples/ ---
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"\.py$",  # every example is executed (when the gallery is)
    "plot_gallery": "False",  # fast by default; `-D plot_gallery=1` executes the examples
    "abort_on_example_error": True,
    "doc_module": ("sknn_explain",),
    "backreferences_dir": "api/generated/backreferences",
    "min_reported_time": 1,
    "remove_config_comments": True,
    "matplotlib_animations": False,
    "capture_repr": (),  # no "<FacetGrid object at 0x...>" under each plot; print() still shows
}

# --- intersphinx: offline by default ---
_INVENTORIES = {
    "python": "https://docs.python.org/3/",
    "numpy": "https://numpy.org/doc/stable/",
    "pandas": "https://pandas.pydata.org/docs/",
    "sklearn": "https://scikit-learn.org/stable/",
    "torch": "https://docs.pytorch.org/docs/stable/",
    "matplotlib": "https://matplotlib.org/stable/",
    "seaborn": "https://seaborn.pydata.org/",
}
_ONLINE = os.environ.get("SKNN_DOCS_INTERSPHINX") == "1"
intersphinx_mapping = {
    name: (url, None if _ONLINE else str(DOCS / "_intersphinx" / f"{name}.inv"))
    for name, url in _INVENTORIES.items()
    if _ONLINE or (DOCS / "_intersphinx" / f"{name}.inv").is_file()
}
intersphinx_timeout = 10

# --- HTML ---
html_theme = "pydata_sphinx_theme"
html_title = f"sknn_explain {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "header_links_before_dropdown": 2,  # the user-guide titles are long: keep one header line
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
}
html_css_files = ["custom.css"]
