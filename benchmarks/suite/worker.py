"""Run every method on one model in this process; one JSON line per cell on stdout.

    python -m benchmarks.suite.worker "MLP 100-256-256-10" [--quick] [--methods A,B]

The suite starts one worker per model, so a model's memory never inflates another's baseline.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
import warnings
from functools import partial

import numpy as np
import torch

from .measure import measure_group
from .methods import ALL_OUTPUTS, agnostic_rows, explain_ours, methods_for
from .models import make_case


def compare(ours: np.ndarray, theirs: np.ndarray, kind: str) -> dict:
    """How far apart the two sides are (see ``methods`` for ``exact`` / ``stat``)."""
    theirs = np.asarray(theirs, dtype=np.float64)
    ours = np.asarray(ours, dtype=np.float64)
    if ours.shape != theirs.shape:
        return {"check": f"shape {ours.shape} vs {theirs.shape}", "ok": False}
    scale = float(np.abs(theirs).max()) or 1.0
    max_abs = float(np.abs(ours - theirs).max())
    rel_mean = float(np.abs(ours - theirs).mean() / (np.abs(theirs).mean() or 1.0))
    if kind == "exact":
        return {"check": f"max|d| {max_abs:.1e}", "ok": max_abs <= 1e-4 * max(1.0, scale),
                "max_abs": max_abs, "rel_mean": rel_mean}
    return {"check": f"rel {rel_mean:.2f} ({kind})", "ok": None, "max_abs": max_abs,
            "rel_mean": rel_mean}


def run_model(name: str, quick: bool, repeats: int, only: set[str] | None,
              full: bool = False):
    case = make_case(name, quick=quick, full=full)
    all_outputs: dict = {}
    for method in methods_for(case):
        if only and method.name not in only:
            continue
        explainer = method.ours(case)
        for k in case.outputs:
            targets = list(range(k))
            row = {"model": name, "method": method.name, "outputs": k,
                   "rows": len(case.X[:agnostic_rows(case, method.rows)])}
            started = time.perf_counter()  # the cell's wall time, for the suite's budget
            try:
                ours_call = partial(explain_ours, explainer, case, targets, method.rows)
                peers = method.peers(case, targets)
                # ours and every peer way timed together, interleaved; a peer call that
                # explains every output at once (way ALL_OUTPUTS) is the same call for every
                # output count: measured with the first count, then reused
                calls = {"ours": ours_call}
                for peer, ways in peers.items():
                    for way, call in ways.items():
                        key = (method.name, peer, way)
                        if way != ALL_OUTPUTS or key not in all_outputs:
                            calls[key] = call
                rivals = {key: key[1] for key in calls if key != "ours"}
                measured = measure_group(calls, repeats, rivals)
                ours = measured.pop("ours")
                for key, m in measured.items():
                    if key[-1] == ALL_OUTPUTS:
                        all_outputs[key] = m
                row.update(ours_s=ours.seconds, ours_mib=ours.peak_mib)
                for peer, ways in peers.items():
                    timed = {way: measured.get((method.name, peer, way))
                             or all_outputs[(method.name, peer, way)] for way in ways}
                    way = min(timed, key=lambda w: timed[w].seconds)
                    best = timed[way]
                    theirs = best.value
                    if way == ALL_OUTPUTS and np.shape(theirs)[-1] != k:
                        theirs = np.asarray(theirs)[..., targets]
                    yield {**row, "wall_s": time.perf_counter() - started,
                           "peer": peer, "way": way, "peer_s": best.seconds,
                           "peer_mib": best.peak_mib, "ratio": ours.seconds / best.seconds,
                           "other_ways": {w: m.seconds for w, m in timed.items() if w != way},
                           **compare(ours.value, theirs, method.check)}
            except Exception as err:  # noqa: BLE001 - report the cell, keep the suite going
                traceback.print_exc(file=sys.stderr)
                yield {**row, "error": f"{type(err).__name__}: {err}"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--methods", default="")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    only = set(filter(None, args.methods.split(","))) or None
    for row in run_model(args.model, args.quick, args.repeats, only, args.full):
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
