"""Every ```python block in README.md and docs/*.md is a complete script, and it runs."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import matplotlib
import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _snippets() -> list:
    params = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for i, match in enumerate(re.finditer(r"```python\n(.*?)\n```", text, flags=re.S)):
            line = text[: match.start()].count("\n") + 2
            params.append(pytest.param(match.group(1), id=f"{page.name}:{line}-{i}"))
    return params


@pytest.mark.parametrize("code", _snippets())
def test_snippet_runs(code, tmp_path, monkeypatch):
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.chdir(tmp_path)  # snippets that write files write them here
    namespace = {"__name__": "__snippet__"}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence warnings of tiny demo fits
            exec(compile(code, "<snippet>", "exec"), namespace)  # noqa: S102
    finally:
        plt.close("all")


def test_every_page_was_scanned():
    assert len(_snippets()) >= 5  # README alone has five complete scripts
