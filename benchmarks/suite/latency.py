"""Fixed costs: explaining one row end to end, and ``import sknn_explain``.

One row of a 30-feature MLP (30-64-64-2), IntegratedGradients n=50, zero baseline: our
``explain`` (fit excluded), ``fit`` + ``explain`` (fit included: the model is converted), and
captum's ``IntegratedGradients.attribute`` on the same row for scale. The import is timed in a
fresh interpreter (best of 3), next to ``import torch`` alone (which it includes).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

from .measure import best_seconds
from .models import mlp

REPO = Path(__file__).resolve().parents[2]
IMPORT = ("import time; t = time.perf_counter(); import {m}; "
          "print(time.perf_counter() - t)")


def import_seconds(module: str, repeats: int = 3) -> float:
    """Best wall time of ``import module`` in a fresh interpreter."""
    best = float("inf")
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", IMPORT.format(m=module)], check=True,
                             capture_output=True, text=True, cwd=REPO).stdout
        best = min(best, float(out.strip().splitlines()[-1]))
    return best


def run(quick: bool = False) -> dict:
    from captum.attr import IntegratedGradients as CaptumIG

    from sknn_explain import IntegratedGradients

    torch.manual_seed(0)
    model = mlp([30, 64, 64, 2]).eval()
    x = torch.randn(1, 30)
    base = torch.zeros(1, 30)
    repeats = 3 if quick else 20
    fitted = IntegratedGradients(n=50).fit(model, base)
    ours = fitted.explain(x, output_idx=[0]).values[..., 0]
    theirs = CaptumIG(model).attribute(x, baselines=base, target=0, n_steps=50,
                                       method="riemann_right").detach().numpy()
    return {
        "max_abs_diff": float(abs(ours - theirs).max()),
        "explain_s": best_seconds(lambda: fitted.explain(x, output_idx=[0]), repeats),
        "fit_explain_s": best_seconds(lambda: IntegratedGradients(n=50).fit(model, base).explain(
            x, output_idx=[0]), repeats),
        "captum_s": best_seconds(lambda: CaptumIG(model).attribute(
            x, baselines=base, target=0, n_steps=50, method="riemann_right"), repeats),
        "import_s": import_seconds("sknn_explain", 1 if quick else 3),
        "import_torch_s": import_seconds("torch", 1 if quick else 3),
    }
