"""Kernel SHAP at small budgets: our fixed cost next to the work itself and to shap.

At a few dozen coalitions both Kernel SHAP implementations are mostly fixed cost. This
script times, interleaved and best of ``--repeats`` (the machine's speed drifts by up to 2x
over seconds, so the three are timed round by round), on the matched-accuracy problem of
the suite (MLP M-32-32-1, 3 rows, 4 background rows, float32):

* **ours**: ``KernelSHAP(n_samples, sampling="stratified").fit(model, X_ref).explain(X)``;
* **work**: the computation any Kernel SHAP with our guarantees must do - a private copy of
  the model, its outputs on the background and on ``X``, the stratified coalitions, the
  model on every masked row, the constrained least-squares solve - written out bare (no
  validation, no standard errors, no result object);
* **shap**: ``shap.KernelExplainer(f, X_ref).shap_values(X, nsamples, l1_reg=False)``.

The calls alternate (shap, ours, shap, work, shap, ...), so ours and the work each run right
after a shap call, on caches that shap's call has filled.

``work / shap`` is the floor of the ratio at that budget; ``ours - work`` is what the
estimator API adds (checks of X and X_ref, output selection, non-finite checks, the
standard errors, the Attribution).

Usage: ``python -m benchmarks.bench_kernel_floor [--repeats 100] [--rows 3,30]``
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
import torch

from sknn_explain import KernelSHAP
from sknn_explain._module_copy import deepcopy_module
from sknn_explain.explainers.agnostic._coalitions import StratifiedCoalitions
from sknn_explain.explainers.agnostic._solvers import constrained_wls

from .suite.kernel_accuracy import shap_kernel
from .suite.models import mlp

M, BACKGROUND = 16, 4
#: explained rows: the suite's matched-accuracy problem explains 3; shap's time grows with
#: every row (one regression per row), ours mostly with the masked rows evaluated
ROWS = (3,)


def bare_kernel_shap(model, X: np.ndarray, background: np.ndarray, n_samples: int,
                     seed: int) -> np.ndarray:
    """The work alone: copy, three forwards, stratified coalitions, one constrained solve."""
    private = deepcopy_module(model).eval()
    x, b = torch.as_tensor(X), torch.as_tensor(background)
    n, m = X.shape
    with torch.inference_mode():
        e0 = private(b).double().mean(0)
        fx = private(x).double()
        z, w, _ = StratifiedCoalitions(m, n_samples, np.random.default_rng(seed)).take(
            n_samples)
        zt = torch.as_tensor(z)
        rows = torch.where(zt[None, :, None, :], x[:, None, None, :], b[None, None])
        v = private(rows.reshape(-1, m)).double().reshape(n, len(z), len(b), -1).mean(2)
    y = (v - e0).numpy().transpose(1, 0, 2).reshape(len(z), -1)
    return constrained_wls(z, w, y, (fx - e0).numpy().reshape(-1))


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rows", default=",".join(map(str, ROWS)),
                        help="explained rows, comma-separated (one table row each)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = mlp([M, 32, 32, 1]).eval()
    rng = np.random.default_rng(0)
    counts = [int(r) for r in args.rows.split(",")]
    pool = rng.normal(size=(max(counts), M)).astype(np.float32)
    background = np.random.default_rng(1).normal(size=(BACKGROUND, M)).astype(np.float32)
    rows = []
    for n_rows, ns in itertools.product(counts,
                                        (2 * M + 16, 2 * M + 64, 2 * M + 256, 2 * M + 512)):
        X = pool[:n_rows]
        calls = {
            "ours": lambda ns=ns, X=X: KernelSHAP(
                n_samples=ns, limit_ref=None, random_state=0, dtype="float",
                sampling="stratified").fit(model, background).explain(X),
            "work": lambda ns=ns, X=X: bare_kernel_shap(model, X, background, ns, 0),
            "shap": lambda ns=ns, X=X: shap_kernel(model, X, background, ns, 0),
        }
        for call in calls.values():
            call()
        best = dict.fromkeys(calls, float("inf"))
        # ours and the work each right after a shap call: on caches that shap's call has
        # filled (ours is 0.5 ms slower there at 48 coalitions than after our own calls), as
        # a user's single explanation would run
        for _ in range(args.repeats):
            for name in ("ours", "work"):
                for key in ("shap", name):
                    t0 = time.perf_counter()
                    calls[key]()
                    best[key] = min(best[key], time.perf_counter() - t0)
        rows.append({"rows": n_rows, "nsamples": ns, **best})
    print("| rows | nsamples | ours ms | work ms | shap ms | ours / shap | work / shap "
          "(floor) | ours - work ms |\n|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['rows']} | {r['nsamples']} | {1e3 * r['ours']:.2f} | "
              f"{1e3 * r['work']:.2f} | "
              f"{1e3 * r['shap']:.2f} | {r['ours'] / r['shap']:.2f} | "
              f"{r['work'] / r['shap']:.2f} | {1e3 * (r['ours'] - r['work']):.2f} |")
    return rows


if __name__ == "__main__":
    main()
