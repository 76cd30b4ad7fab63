"""Scaling of IntegratedGradients and DeepLift on a dask.distributed LocalCluster.

    python benchmarks/bench_dask.py [--rows 1000000] [--workers 1 2] [--chunk 50000]
                                    [--features 50] [--outputs 2] [--steps 20]

A synthetic table (``--rows`` x ``--features``, float32, generated chunk by chunk on the
workers) is explained by an MLP (``features -> 256 -> 128 -> 10``), ``--outputs`` output
nodes. Every run computes the same reduction, the mean ``|attribution|`` per feature and
output (one pass, nothing large kept), so the time is the attribution throughput:

* ``in-process``: ``explainer.explain`` on the whole array in this process (1 torch
  thread), then the reduction;
* ``dask, k workers``: ``explainer.explain(dask_array)`` on a LocalCluster of ``k`` worker
  processes x 1 thread (``OMP_NUM_THREADS=1`` on the workers).

Reported: rows/s, parallel efficiency ``t_in_process / (k * t_dask)`` (1.0 = perfect
scaling; target >= 0.77 for one worker, i.e. within 1.3x of in-process) and the peak
resident memory per worker process (sampled every 20 ms, includes torch) next to the
in-process peak, and the growth over the idle process (``peak - idle``), which should
depend on ``--chunk`` for the workers, not on ``--rows``.

Numbers are only meaningful on an otherwise idle machine with at least as many cores as
the largest ``--workers``; run it with a small ``--rows`` first to check the setup.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch
from torch import nn

import sknn_explain as skx


def model(features: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(features, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                         nn.Linear(128, 10)).eval()


def make_explainer(name: str, net: nn.Module, features: int, steps: int):
    ref = np.random.default_rng(1).normal(size=(256, features)).astype(np.float32)
    if name == "IntegratedGradients":
        return skx.IntegratedGradients(n=steps).fit(net, ref)
    return skx.DeepLift().fit(net, ref)


def _chunk(block_id: tuple, chunk: int, features: int, rows: int) -> np.ndarray:
    start = block_id[0] * chunk
    n = min(chunk, rows - start)
    return np.random.default_rng(start).normal(size=(n, features)).astype(np.float32)


def synthetic(rows: int, features: int, chunk: int):
    import dask.array as da

    chunks = (tuple(min(chunk, rows - s) for s in range(0, rows, chunk)), (features,))
    return da.map_blocks(
        lambda block_id=None: _chunk(block_id, chunk, features, rows),
        chunks=chunks, dtype=np.float32, meta=np.empty((0, 0), np.float32))


def start_sampler() -> float:
    """Sample this process's resident memory every 20 ms; returns the current RSS (MB).

    (``ru_maxrss`` would not do: a spawned worker inherits its parent's high-water mark.)
    """
    import sys
    import threading

    import psutil

    proc = psutil.Process()
    state = {"peak": proc.memory_info().rss, "run": True}

    def loop():
        while state["run"]:
            state["peak"] = max(state["peak"], proc.memory_info().rss)
            time.sleep(0.02)

    threading.Thread(target=loop, daemon=True).start()
    sys._sknn_rss = state
    return state["peak"] / 2**20


def stop_sampler() -> float:
    """Stop the sampler; the peak RSS (MB) since :func:`start_sampler`."""
    import sys

    state = sys._sknn_rss
    state["run"] = False
    return state["peak"] / 2**20


def in_process(explainer, X: np.ndarray, outputs: int) -> tuple[float, float, float]:
    torch.set_num_threads(1)
    idle = start_sampler()
    t0 = time.perf_counter()
    res = explainer.explain(X, output_idx=list(range(outputs)))
    np.abs(res.values).mean(axis=0)
    elapsed = time.perf_counter() - t0
    return elapsed, stop_sampler(), idle


def distributed_run(explainer, args, workers: int) -> tuple[float, float, float]:
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      host="127.0.0.1", dashboard_address=None, silence_logs=40) as cluster, \
            Client(cluster) as client:
        client.run(lambda: __import__("sknn_explain"))  # imports are not part of the time
        idle = client.run(start_sampler)
        X = synthetic(args.rows, args.features, args.chunk)
        t0 = time.perf_counter()
        lazy = explainer.explain(X, output_idx=list(range(args.outputs)))
        abs(lazy.values).mean(axis=0).compute()
        elapsed = time.perf_counter() - t0
        peaks = client.run(stop_sampler)
    worst = max(peaks, key=peaks.get)
    return elapsed, peaks[worst], idle[worst]


def main() -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--outputs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--chunk", type=int, default=50_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--methods", nargs="+", default=["IntegratedGradients", "DeepLift"])
    parser.add_argument("--default-malloc", action="store_true",
                        help="keep distributed's worker malloc settings (slower; see "
                             "sknn_explain.dask.WORKER_MALLOC_ENV)")
    args = parser.parse_args()
    if not args.default_malloc:
        from sknn_explain.dask import configure_workers

        configure_workers()

    net = model(args.features)
    X = synthetic(args.rows, args.features, args.chunk).compute(scheduler="sync")
    rows = []
    for method in args.methods:
        explainer = make_explainer(method, net, args.features, args.steps)
        t_local, rss_local, idle_local = in_process(explainer, X, args.outputs)
        rows.append({"method": method, "run": "in-process", "workers": 1,
                     "seconds": t_local, "rows/s": args.rows / t_local, "efficiency": 1.0,
                     "peak MB / process": rss_local, "peak - idle MB": rss_local - idle_local})
        for k in args.workers:
            t, rss, idle = distributed_run(explainer, args, k)
            rows.append({"method": method, "run": f"dask, {k} worker(s)", "workers": k,
                         "seconds": t, "rows/s": args.rows / t,
                         "efficiency": t_local / (k * t), "peak MB / process": rss,
                         "peak - idle MB": rss - idle})
    table = pd.DataFrame(rows)
    print(f"{args.rows} rows x {args.features} features, {args.outputs} outputs, "
          f"chunks of {args.chunk} rows")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    return table


if __name__ == "__main__":
    main()
