"""Import zennit (or a package that imports it) without torchvision.

zennit imports ``torchvision`` at import time, and torchvision is never installed here (it
would pull a multi-GB CUDA torch). :func:`import_without_torchvision` stubs the three
torchvision modules zennit touches for the duration of the import only, and skips the calling
test when the import still fails.
"""

from __future__ import annotations

import importlib
import sys
import types

import pytest
from torch import nn


def import_without_torchvision(*names: str) -> tuple[types.ModuleType, ...]:
    """The modules ``names`` (e.g. ``"zennit.rules"``), imported with torchvision stubbed."""
    stubbed = []
    if "torchvision" not in sys.modules:
        try:
            import torchvision  # noqa: F401
        except ImportError:
            tv, tvm, tvr = (types.ModuleType(n) for n in
                            ("torchvision", "torchvision.models", "torchvision.models.resnet"))
            tvr.Bottleneck = tvr.BasicBlock = type("_Block", (nn.Module,), {})
            tv.models, tvm.resnet = tvm, tvr
            for mod in (tv, tvm, tvr):
                sys.modules[mod.__name__] = mod
                stubbed.append(mod.__name__)
    try:
        return tuple(importlib.import_module(name) for name in names)
    except Exception as err:  # noqa: BLE001 - any import problem: skip the comparison
        pytest.skip(f"{names[0].split('.')[0]} cannot be imported: {err}")
    finally:
        for name in stubbed:
            sys.modules.pop(name, None)
