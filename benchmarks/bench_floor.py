"""Benchmark: the floor of the gradient family with k outputs, measured per model (issue #20).

Ours runs one forward pass ``F`` and one input-gradient backward pass ``B`` per output on
the ``n`` explained rows: ``F + k B``. The peer's fastest use (captum with the inputs
repeated once per target) runs one forward and one backward pass over ``k n`` rows (fed in
chunks of about 2^19 input values, as the suite's batched way, ``peers.chunk_rows``). So
``(F + k B) / peer`` is the lowest ratio ours can reach with the passes it runs; this
script measures ``F`` and ``B`` on the converted graph as ``explain`` runs it (BatchNorm
merged, channels-last) and the peer's pass over the repeated rows (module as given), each
the best of ``--repeats`` steady-state calls, at the suite's standard sizes, for
``k = 10`` (``--k 100 --models "CNN 3x64x64, 100 classes"`` for the 100-output cells).

    OMP_NUM_THREADS=2 python -m benchmarks.bench_floor [--threads 2] [--repeats 15] [--k 10]
        [--method gradient|guided|deconv]

Only quote numbers from an otherwise idle machine.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch

from sknn_explain import Deconvolution, Gradient, GuidedBackprop
from sknn_explain.explainers.guided import ModifiedReLUForward
from sknn_explain.layers.base import to_channels_last

from .suite.measure import best_seconds
from .suite.models import make_case
from .suite.peers import chunk_rows

CONV_MODELS = ("CNN 3x32x32", "ResNet 3x24x24 (BN, residual)", "signal 1D-CNN 4x256",
               "CNN 3x64x64, 100 classes")


def best_ms(fn: Callable[[], object], repeats: int) -> float:
    """The fastest of ``repeats`` calls after three warm-up calls, in milliseconds."""
    return best_seconds(fn, repeats, warmup=3) * 1e3


#: ``--method``: ours (explainer, ReLU rule of the backward pass or None) and the peer's call
METHODS = {"gradient": (Gradient, None), "guided": (GuidedBackprop, "guided"),
           "deconv": (Deconvolution, "deconv")}


def floor_row(name: str, k: int, repeats: int, method: str = "gradient") -> dict:
    """``F``, ``B``, ``F + k B`` (ours) and the peer's repeated-rows pass for one model.

    ``method="guided"`` / ``"deconv"``: ours with the modified ReLU backward as
    ``GuidedBackprop`` / ``Deconvolution`` run it, the peer captum's ``GuidedBackprop`` /
    ``Deconvolution`` on the chunks of repeated rows (its own hooks included: that is its
    fastest call).
    """
    case = make_case(name)
    X = case.X
    cls, rule = METHODS[method]
    explainer = cls().fit(case.model)
    explainer.explain(X, output_idx=[0])  # finishes the conversion
    if rule is None:
        graph = explainer.model_.executed_graph([X])
        run = lambda x: graph(x)[0]  # noqa: E731
    else:
        modified = ModifiedReLUForward(explainer.model_, rule, cls.__name__)
        run = lambda x: modified([x])[0]  # noqa: E731

    def forward():
        return run(to_channels_last(X).requires_grad_(True))

    def forward_backward():
        x = to_channels_last(X).requires_grad_(True)
        torch.autograd.grad(run(x)[:, 0].sum(), x)

    repeated = X.repeat_interleave(k, 0)
    targets = torch.arange(k).repeat(X.shape[0])[:, None]
    step = chunk_rows(X.shape[1:])  # the suite's batched way: chunks of repeated rows
    if rule is None:
        def attribute(x, t):
            x = x.clone().requires_grad_(True)
            torch.autograd.grad(case.model(x).gather(1, t).sum(), x)
    else:
        from captum import attr

        peer_cls = {"guided": attr.GuidedBackprop, "deconv": attr.Deconvolution}[rule]

        def attribute(x, t):
            peer_cls(case.model).attribute(x, target=t[:, 0])

    def peer():
        for s in range(0, len(repeated), step):
            attribute(repeated[s:s + step], targets[s:s + step])

    f = best_ms(forward, repeats)
    b = best_ms(forward_backward, repeats) - f
    p = best_ms(peer, repeats)
    return {"model": name, "rows": X.shape[0], "F": f, "B": b, "ours": f + k * b, "peer": p,
            "floor": (f + k * b) / p}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--method", choices=sorted(METHODS), default="gradient")
    parser.add_argument("--models", default="",
                        help="model names, separated by ';' (default: the four conv models)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"| model | rows | F ms | B ms | F + {args.k} B ms | peer, {args.k} x rows, ms | "
          "floor (F + k B) / peer |")
    print("|---|---|---|---|---|---|---|")
    rows = []
    for name in args.models.split(";") if args.models else CONV_MODELS:
        r = floor_row(name, args.k, args.repeats, args.method)
        rows.append(r)
        print(f"| {r['model']} | {r['rows']} | {r['F']:.2f} | {r['B']:.2f} | {r['ours']:.1f} | "
              f"{r['peer']:.1f} | {r['floor']:.2f} |", flush=True)
    return rows


if __name__ == "__main__":
    main()
