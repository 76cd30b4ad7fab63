"""The docstring quality gate (issue #17): which public objects, which numpydoc checks.

Shared by ``docs/conf.py`` (numpydoc validation in the Sphinx build, warnings are errors) and
``tests/test_docs_site.py`` (the same checks in the unit tests, without building the site).

The public objects are the classes and functions in ``sknn_explain.__all__`` and in the
public submodules' ``__all__``, and the public methods and properties those classes define
themselves (members inherited from scikit-learn, torch or ``Exception`` are documented
there, not here).
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Iterator

from numpydoc.validate import get_doc_object, validate

import sknn_explain

SUBMODULES = ["metrics", "plotting", "rules", "convert", "functional", "dask", "transformer"]

#: numpydoc checks run on every public object: GL06 unknown section, GL07 section order,
#: GL08 no docstring, PR01 parameter not documented, PR02 unknown parameter, RT01 no Returns,
#: YD01 no Yields, SS01 no summary, SS03 summary without a final period
CHECKS = {"GL06", "GL07", "GL08", "PR01", "PR02", "RT01", "YD01", "SS01", "SS03"}

#: checked on public classes and functions only (their methods are shown by the class's
#: Examples): EX01 no Examples section
TOP_LEVEL_CHECKS = {"EX01"}

#: Findings not fixed yet, by full name. It is empty and must stay empty: every public
#: object passes the gate, and a new public name comes with its full docstring. (The
#: build excludes the names listed here from its validation, and the unit test fails on a
#: new finding and on a listed one that is fixed; ``docs/conf.py`` reads this name.)
BACKLOG: dict[str, set[str]] = {}


def _ours(cls: type) -> bool:
    return cls.__module__.split(".")[0] == "sknn_explain"


def public_objects() -> Iterator[tuple[str, object, str]]:
    """Yield ``(full name, object, kind)`` of each public object, kind "top" or "member"."""
    seen: set[int] = set()
    items = [(f"sknn_explain.{n}", getattr(sknn_explain, n)) for n in sknn_explain.__all__]
    for sub in SUBMODULES:
        module = importlib.import_module(f"sknn_explain.{sub}")
        items += [(f"{module.__name__}.{n}", getattr(module, n)) for n in module.__all__]
    for path, obj in items:
        if not (inspect.isclass(obj) or inspect.isfunction(obj)) or id(obj) in seen:
            continue
        if obj.__name__ != path.rsplit(".", 1)[1]:  # a second name (innsight's spelling)
            continue
        seen.add(id(obj))
        yield path, obj, "top"
        if inspect.isclass(obj):
            for name, member in _own_members(obj):
                yield f"{path}.{name}", member, "member"


def _own_members(cls: type) -> Iterator[tuple[str, object]]:
    for name in sorted(dir(cls)):
        if name.startswith("_"):
            continue
        owner = next((k for k in cls.__mro__ if name in vars(k)), None)
        if owner is None or not _ours(owner):
            continue
        raw = vars(owner)[name]
        if inspect.isfunction(raw) or isinstance(raw, (property, classmethod, staticmethod)):
            yield name, getattr(cls, name)


def foreign_member_patterns() -> list[str]:
    """Regexes of the public classes' members inherited from outside sknn_explain."""
    patterns = []
    for _, obj, kind in public_objects():
        if kind != "top" or not inspect.isclass(obj):
            continue
        foreign = sorted(
            name for name in dir(obj)
            if not name.startswith("_") and name not in dict(_own_members(obj))
            and not any(name in vars(k) for k in obj.__mro__ if _ours(k))
        )
        if foreign:
            patterns.append(rf"^sknn_explain\.(?:\w+\.)?{obj.__name__}\.(?:{'|'.join(foreign)})$")
    return patterns


def data_patterns() -> list[str]:
    """Regexes of public constants and class attributes: numpydoc would validate the
    docstring of their value's type (``str``, ``dict``, ``None``), not ours (``#:``)."""
    names = []
    modules = [sknn_explain, *(importlib.import_module(f"sknn_explain.{m}") for m in SUBMODULES)]
    for module in modules:
        for name in module.__all__:
            obj = getattr(module, name)
            if not (inspect.ismodule(obj) or inspect.isclass(obj) or callable(obj)):
                names.append(f"{module.__name__}.{name}")
    for path, obj, kind in public_objects():
        if kind == "top" and inspect.isclass(obj):
            for name in dir(obj):
                raw = next((vars(k)[name] for k in obj.__mro__ if name in vars(k)), None)
                if name.startswith("_") or callable(raw) or isinstance(
                        raw, (property, classmethod, staticmethod)):
                    continue
                names.append(f"{path}.{name}")
    return [rf"^{re.escape(name)}$" for name in names]


def findings() -> dict[str, set[str]]:
    """The gate's findings for every public object: full name -> failed check codes."""
    found = {}
    for path, obj, kind in public_objects():
        checks = CHECKS | (TOP_LEVEL_CHECKS if kind == "top" else set())
        codes = {code for code, _ in validate(get_doc_object(obj))["errors"]} & checks
        if codes:
            found[path] = codes
    return found
