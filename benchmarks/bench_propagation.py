"""Propagation methods vs the reference libraries, all 10 outputs of a classifier.

* LRP (epsilon) vs zennit (``Epsilon`` hooks, one backward per output),
* DeepLift (rescale) vs captum ``DeepLift`` (one call per target),
* DeepSHAP vs captum ``DeepLiftShap`` and ``shap.DeepExplainer``,

on an MLP and a CNN, float32, CPU. sknn_explain propagates all outputs in one pass; the
others need one backward pass per output. Times are the best of ``--repeat`` runs of the
explain step (the models are converted / hooked before timing). Run::

    OMP_NUM_THREADS=1 python benchmarks/bench_propagation.py [--threads 1] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import time
import types
import warnings

import numpy as np
import torch
from torch import nn

from sknn_explain.explainers.deeplift import DeepLift, DeepSHAP
from sknn_explain.explainers.lrp import LRP

N_OUT = 10


def load_zennit_rules():
    """zennit imports torchvision at import time; stub it (not installed) for the import."""
    stubbed = []
    try:
        import torchvision  # noqa: F401
    except ImportError:
        tv, tvm, tvr = (types.ModuleType(n) for n in
                        ("torchvision", "torchvision.models", "torchvision.models.resnet"))

        class _Block(nn.Module):
            pass

        tvr.Bottleneck = tvr.BasicBlock = _Block
        tv.models, tvm.resnet = tvm, tvr
        for mod in (tv, tvm, tvr):
            sys.modules[mod.__name__] = mod
            stubbed.append(mod.__name__)
    try:
        import zennit.rules as zrules
    except Exception as err:  # noqa: BLE001
        print(f"zennit not importable ({err}); skipping the LRP comparison")
        return None
    finally:
        for name in stubbed:
            sys.modules.pop(name, None)
    return zrules


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def make_models():
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(32, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
                        nn.Linear(128, N_OUT)).eval()
    cnn = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 8 * 8, N_OUT),
    ).eval()
    return {
        "MLP 32-128-128-10": (mlp, (32,), 1000, 100, 20),
        "CNN 3x32x32": (cnn, (3, 32, 32), 64, 16, 10),
    }


def zennit_lrp(model, x, zr, eps=0.01):
    handles = []
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            handles.append(zr.Epsilon(eps).register(m))
        elif isinstance(m, nn.ReLU):
            handles.append(zr.Pass().register(m))
    try:
        rels = []
        for k in range(N_OUT):
            xg = x.clone().requires_grad_(True)
            out = model(xg)
            seed = torch.zeros_like(out)
            seed[:, k] = out[:, k].detach()
            (g,) = torch.autograd.grad(out, xg, seed)
            rels.append(g)
        return torch.stack(rels, -1)
    finally:
        for h in handles:
            h.remove()


def row(model_name, label, n, ours, theirs, check=None):
    extra = "" if check is None else f"   max|diff| {check:.1e}"
    print(f"{model_name:<20} {label:<28} {n:>5} {ours:>9.4f} {theirs:>9.4f} "
          f"{theirs / ours:>6.1f}x{extra}")


def bench_model(name, model, shape, n, n_shap, n_ref, *, zr, shap, repeat):
    from captum.attr import DeepLift as CaptumDeepLift
    from captum.attr import DeepLiftShap as CaptumDeepLiftShap

    torch.manual_seed(1)
    x = torch.randn(n, *shape)
    ref = torch.randn(1, *shape)
    refs = torch.randn(n_ref, *shape)
    targets = list(range(N_OUT))

    # LRP epsilon vs zennit
    lrp = LRP(rule_name="epsilon", rule_param=0.01).fit(model, x[:1])
    t_ours = best_of(lambda: lrp.explain(x, output_idx=targets), repeat)
    if zr is not None:
        t_z = best_of(lambda: zennit_lrp(model, x, zr), repeat)
        diff = np.abs(lrp.explain(x, output_idx=targets).values
                      - zennit_lrp(model, x, zr).numpy()).max()
        row(name, "LRP epsilon vs zennit", n, t_ours, t_z, diff)

    # DeepLift vs captum
    dl = DeepLift().fit(model, ref)
    cdl = CaptumDeepLift(model)
    t_ours = best_of(lambda: dl.explain(x, output_idx=targets), repeat)
    t_c = best_of(lambda: [cdl.attribute(x, baselines=ref, target=k) for k in targets], repeat)
    row(name, "DeepLift vs captum", n, t_ours, t_c)

    # DeepSHAP vs captum DeepLiftShap and shap DeepExplainer
    xs = x[:n_shap]
    ds = DeepSHAP(limit_ref=n_ref).fit(model, refs)
    cds = CaptumDeepLiftShap(model)
    t_ours = best_of(lambda: ds.explain(xs, output_idx=targets), repeat)
    t_c = best_of(lambda: [cds.attribute(xs, baselines=refs, target=k) for k in targets],
                  repeat)
    row(name, f"DeepSHAP vs captum ({n_ref} refs)", n_shap, t_ours, t_c)
    if shap is not None:
        explainer = shap.DeepExplainer(model, refs)
        t_s = best_of(lambda: explainer.shap_values(xs, check_additivity=False), 1)
        row(name, f"DeepSHAP vs shap ({n_ref} refs)", n_shap, t_ours, t_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    zr = load_zennit_rules()
    try:
        import shap
    except ImportError:  # pragma: no cover
        shap = None
    print(f"torch {torch.__version__}, {args.threads} thread(s), float32, {N_OUT} outputs, "
          f"best of {args.repeat}\n")
    header = f"{'model':<20} {'method':<28} {'n':>5} {'ours s':>9} {'theirs s':>9} {'ratio':>7}"
    print(header)
    print("-" * len(header))

    for name, spec in make_models().items():
        bench_model(name, *spec, zr=zr, shap=shap, repeat=args.repeat)
    print("\nratio = their time / our time (> 1: sknn_explain is faster)")


if __name__ == "__main__":
    main()
