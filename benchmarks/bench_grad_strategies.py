"""Benchmark: strategies for the gradients of k outputs on CNNs (issue #20, item 2).

For each model, one call computes ``d f_j / d x`` for ``k`` outputs of ``rows`` images:

* ``graph batched``: the converted graph, one forward and one ``is_grads_batched`` backward
  (what :func:`sknn_explain._batching.output_gradients` does),
* ``graph looped``: the graph, one forward and ``k`` backward passes (``retain_graph``),
* ``module batched`` / ``module looped``: the same on the private module copy,
* ``module looped, channels-last``: the module copy and the input in ``channels_last``,
* ``vmap(vjp)``: ``torch.func.vmap`` over the ``vjp`` of the module copy,
* ``captum``: ``Saliency`` with the inputs repeated once per target (the peer's fastest use).

Every strategy is checked against ``graph batched`` (max abs difference, float64 run).
Best of ``--repeats`` in one process, strategies interleaved round by round.

    python -m benchmarks.bench_grad_strategies [--threads 1] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch

from sknn_explain import Gradient
from sknn_explain._batching import output_gradients
from sknn_explain._model import as_model
from sknn_explain._output_selection import OutputSelection

from .suite.models import make_case


def _selection(k: int) -> OutputSelection:
    import numpy as np

    return OutputSelection([0], [np.arange(k)], [[f"Y{j + 1}" for j in range(k)]])


def _looped(forward, x, k):
    leaf = x.detach().requires_grad_(True)
    out = forward([leaf])[0][:, :k]
    grads = [torch.autograd.grad(out[:, j].sum(), leaf, retain_graph=j < k - 1)[0]
             for j in range(k)]
    return torch.stack(grads, -1)


def _vmap_vjp(module, x, k):
    out, vjp = torch.func.vjp(lambda t: module(t)[:, :k], x)
    eye = torch.eye(k, dtype=x.dtype)[:, None, :].expand(k, x.shape[0], k)
    return torch.movedim(torch.func.vmap(vjp)(eye)[0], 0, -1)


def _captum(module, x, k):
    from captum.attr import Saliency

    n = x.shape[0]
    targets = torch.arange(k).repeat_interleave(n)
    g = Saliency(module).attribute(x.repeat(k, *([1] * (x.ndim - 1))), target=targets,
                                   abs=False)
    return torch.movedim(g.reshape(k, *x.shape), 0, -1)


def strategies(case, k: int, dtype: torch.dtype):
    graph = Gradient(dtype="double" if dtype == torch.float64 else "float").fit(
        case.model, case.X_ref).model_
    module = as_model(case.model, ignore_last_act=True, dtype=dtype,
                      device=torch.device("cpu"))
    cl = as_model(case.model, ignore_last_act=True, dtype=dtype, device=torch.device("cpu"))
    cl.module = cl.module.to(memory_format=torch.channels_last)
    sel = _selection(k)
    return {
        "graph batched": lambda x: output_gradients(graph, [x], sel)[0][0],
        "graph looped": lambda x: _looped(graph, x, k),
        "module batched": lambda x: output_gradients(module, [x], sel)[0][0],
        "module looped": lambda x: _looped(module, x, k),
        "module looped, channels-last": lambda x: _looped(
            cl, x.contiguous(memory_format=torch.channels_last), k),
        "vmap(vjp)": lambda x: _vmap_vjp(module.module, x, k),
        "captum": lambda x: _captum(case.model.to(dtype), x, k),
    }


def run(name: str, k: int, rows: int | None, repeats: int) -> None:
    case = make_case(name)
    x = case.X if rows is None else case.X[:rows]
    # exactness in float64
    funcs = strategies(case, k, torch.float64)
    ref = funcs["graph batched"](x.double())
    diffs = {s: float((f(x.double()) - ref).abs().max()) for s, f in funcs.items()}
    case.model.float()
    funcs = strategies(case, k, torch.float32)
    best = {s: float("inf") for s in funcs}
    for f in funcs.values():
        f(x)
    for _ in range(repeats):  # interleaved: a drift of the machine hits every strategy
        for s, f in funcs.items():
            t0 = time.perf_counter()
            f(x)
            best[s] = min(best[s], time.perf_counter() - t0)
    print(f"\n{name}: {x.shape[0]} rows, {k} outputs (best of {repeats}, ms; float64 max diff "
          "vs graph batched)")
    for s in funcs:
        print(f"  {s:30s} {best[s] * 1e3:9.1f}   {diffs[s]:.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    run("ResNet 3x24x24 (BN, residual)", 10, None, args.repeats)
    run("CNN 3x64x64, 100 classes", 10, None, args.repeats)
    run("CNN 3x64x64, 100 classes", 100, None, args.repeats)


if __name__ == "__main__":
    main()
