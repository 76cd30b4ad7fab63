"""Gradient family vs captum, side by side in one run: time ratio ours / captum.

    python benchmarks/bench_gradient.py [--device cpu|cuda] [--repeats 3]

Models: a tabular MLP (50 features, 10 classes) and a small CNN (3x32x32, 10 classes).
"All 10" explains every class (captum: one call per target, its documented usage);
"1 class" explains class 0. Ratios < 1 mean sknn_explain is faster. Absolute times on
shared machines are noisy; compare the ratios.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch
from captum.attr import GradientShap, InputXGradient, NoiseTunnel, Saliency
from captum.attr import IntegratedGradients as CaptumIG
from torch import nn

import sknn_explain as skx


def models(device: str):
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(50, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                        nn.Linear(128, 10))
    cnn = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 8 * 8, 64), nn.ReLU(), nn.Linear(64, 10),
    )
    return {
        "MLP (1000x50)": (mlp.to(device).eval(), torch.randn(1000, 50, device=device),
                          torch.randn(200, 50, device=device)),
        "CNN (64x3x32x32)": (cnn.to(device).eval(), torch.randn(64, 3, 32, 32, device=device),
                             torch.randn(32, 3, 32, 32, device=device)),
    }


def best_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return min(times)


def cases(model, X, X_ref, n_steps: int, device: str):
    base = X_ref[:1]
    sd = 0.1 * float(X.max() - X.min())
    ours = {
        "Saliency": skx.Gradient(device=device).fit(model),
        "InputXGradient": skx.Gradient(times_input=True, device=device).fit(model),
        "IntegratedGradients": skx.IntegratedGradients(n=n_steps, device=device).fit(model, base),
        "SmoothGrad": skx.SmoothGrad(n=n_steps, random_state=0, device=device).fit(model),
        "ExpectedGradients/GradientShap": skx.ExpectedGradients(
            n=n_steps, random_state=0, device=device).fit(model, X_ref),
    }
    theirs = {
        "Saliency": lambda t: Saliency(model).attribute(X, target=t, abs=False),
        "InputXGradient": lambda t: InputXGradient(model).attribute(X, target=t),
        "IntegratedGradients": lambda t: CaptumIG(model).attribute(
            X, baselines=base, target=t, n_steps=n_steps, method="riemann_right",
            internal_batch_size=4096),
        "SmoothGrad": lambda t: NoiseTunnel(Saliency(model)).attribute(
            X, nt_type="smoothgrad", nt_samples=n_steps, stdevs=sd, target=t, abs=False,
            nt_samples_batch_size=max(1, 4096 // X.shape[0])),
        "ExpectedGradients/GradientShap": lambda t: GradientShap(model).attribute(
            X, baselines=X_ref, target=t, n_samples=n_steps, stdevs=0.0),
    }
    for name in ours:
        yield name, ours[name], theirs[name]


def main() -> pd.DataFrame:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    rows = []
    for model_name, (model, X, X_ref) in models(args.device).items():
        for method, ours, captum_fn in cases(model, X, X_ref, args.steps, args.device):
            for label, targets in (("all 10", list(range(10))), ("1 class", [0])):
                t_ours = best_time(
                    lambda e=ours, x=X, t=targets: e.explain(x, output_idx=t), args.repeats)
                t_captum = best_time(
                    lambda f=captum_fn, ts=targets: [f(t) for t in ts], args.repeats)
                rows.append({"model": model_name, "method": method, "outputs": label,
                             "ours_s": t_ours, "captum_s": t_captum,
                             "ratio": t_ours / t_captum})
                print(f"{model_name:18s} {method:31s} {label:8s} ours {t_ours:7.3f}s  "
                      f"captum {t_captum:7.3f}s  ratio {t_ours / t_captum:5.2f}", flush=True)
    table = pd.DataFrame(rows)
    print("\nratio ours/captum (< 1: faster; targets <= 0.5 for 10 classes, <= 1.0 for one)")
    print(table.pivot_table(index=["model", "method"], columns="outputs", values="ratio")
          .round(2).to_string())
    return table


if __name__ == "__main__":
    main()
