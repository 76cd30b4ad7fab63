"""Benchmark: sknn_explain.KernelSHAP vs shap.KernelExplainer on a tabular MLP.

Both explainers get the same torch MLP (float32, CPU), the same background rows, the same
samples and the same number of coalitions per sample (``nsamples``); shap runs with
``l1_reg=False`` so that both solve the same unregularised constrained weighted
least-squares problem (shap's default ``"num_features(10)"`` adds a LARS feature
selection on top). Both evaluate ``nsamples x n_background`` model rows per sample; the
difference is the bookkeeping around the model calls and the regression. Reported: wall
time of each (best of ``--repeats`` runs, fit included), the time ratio ours / shap (< 1:
ours is faster), the speed-up shap / ours and the mean absolute difference of the
attributions relative to their mean magnitude (sampling noise of two different random
coalition sets in the sampled regime; ~1e-7 float32 rounding when both enumerate all
coalitions).

Run::

    OMP_NUM_THREADS=1 python benchmarks/bench_agnostic.py [--quick]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def make_mlp(n_features: int, hidden: tuple[int, ...] = (64, 64), seed: int = 0):
    """Tabular MLP ``n_features -> hidden... -> 3`` with ReLU activations (random weights)."""
    torch.manual_seed(seed)
    layers, width = [], n_features
    for h in hidden:
        layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
        width = h
    return torch.nn.Sequential(*layers, torch.nn.Linear(width, 3)).eval()


def run_case(
    n_features: int, hidden: tuple[int, ...], n_background: int, n_explain: int,
    nsamples: int, seed: int = 0, repeats: int = 3,
):
    import shap

    from sknn_explain.explainers.agnostic import KernelSHAP

    rng = np.random.default_rng(seed)
    net = make_mlp(n_features, hidden, seed)
    background = rng.normal(size=(n_background, n_features))
    X = rng.normal(size=(n_explain, n_features))

    def f(a: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return net(torch.as_tensor(a, dtype=torch.float32)).numpy()

    t_shap = t_ours = np.inf
    for _ in range(repeats):  # best of `repeats`: the machine may be shared
        np.random.seed(seed)  # noqa: NPY002 - shap draws from the global numpy state
        t0 = time.perf_counter()
        explainer = shap.KernelExplainer(f, background)
        theirs = np.asarray(
            explainer.shap_values(X, nsamples=nsamples, l1_reg=False, silent=True)
        )
        t_shap = min(t_shap, time.perf_counter() - t0)

        t0 = time.perf_counter()
        ours_expl = KernelSHAP(
            n_samples=nsamples, limit_ref=None, random_state=seed, dtype="float"
        ).fit(net, background)
        ours = ours_expl.explain(X, output_idx=[0, 1, 2]).values
        t_ours = min(t_ours, time.perf_counter() - t0)
    if theirs.shape[0] == 3 and theirs.shape[1] == n_explain:  # old shap: list per output
        theirs = np.moveaxis(theirs, 0, -1)
    scale = np.abs(theirs).mean()
    diff = np.abs(ours - theirs).mean() / scale
    return t_shap, t_ours, diff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small cases only")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.quick:
        cases = [(8, (64, 64), 50, 10, 254), (16, (64, 64), 50, 10, 512)]
    else:
        cases = [  # features, hidden layers, background rows, explained rows, nsamples
            (8, (64, 64), 100, 20, 254),     # exact: all 2^8 - 2 coalitions
            (12, (64, 64), 100, 20, 4094),   # exact: all 2^12 - 2 coalitions
            (16, (64, 64), 100, 20, 512),
            (16, (64, 64), 100, 20, 2080),   # shap's "auto": 2 M + 2048
            (32, (64, 64), 100, 20, 2112),   # shap's "auto"
            (16, (64, 64), 20, 20, 2080),    # small (k-means style) background
            (16, (32,), 100, 20, 2080),      # smaller MLP
            (16, (32,), 20, 20, 2080),
        ]
    header = (f"{'features':>8} {'hidden':>8} {'backgr.':>7} {'samples':>7} {'nsamples':>8} "
              f"{'shap [s]':>9} {'ours [s]':>9} {'ours/shap':>9} {'speed-up':>9} {'rel. diff':>9}")
    print(f"torch threads: {torch.get_num_threads()}, best of {args.repeats} runs")
    print(header)
    print("-" * len(header))
    for n_features, hidden, n_background, n_explain, nsamples in cases:
        t_shap, t_ours, diff = run_case(
            n_features, hidden, n_background, n_explain, nsamples, repeats=args.repeats
        )
        hid = "-".join(map(str, hidden))
        print(f"{n_features:>8} {hid:>8} {n_background:>7} {n_explain:>7} {nsamples:>8} "
              f"{t_shap:>9.2f} {t_ours:>9.2f} {t_ours / t_shap:>9.2f} {t_shap / t_ours:>8.1f}x "
              f"{diff:>9.2e}")


if __name__ == "__main__":
    main()
