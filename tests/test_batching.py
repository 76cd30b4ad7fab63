"""Memory stays bounded: a large explain with ``batch_size`` set costs the result plus a constant.

Torch allocates outside Python's allocator (tracemalloc does not see it), so the peak resident
set size (``ru_maxrss``) of a fresh subprocess is measured before and after ``explain``.

The bound, for ``n`` rows of ``p`` features and ``k`` selected outputs, ``dtype="float"``
(4-byte values) and the data given as a float64 array, is::

    extra peak <= 2 * (4 n p k       # the attributions (the result)
                       + 4 n p       # the float32 copy of X the model runs on
                       + 8 n k)      # predictions and decomposition goal (float32, kept)
                  + 150 MB           # chunk working set, allocator slack, torch scratch

(the float64 X is the caller's array; :class:`~sknn_explain.Attribution` keeps a reference to
it, not a copy). Run this file as a script to measure one configuration::

    python tests/test_batching.py --rows 1000000 --features 50 --outputs 10 --method ig
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

import sknn_explain as sx
from sknn_explain import Gradient
from sknn_explain._batching import auto_batch_size

MB = 2**20

_SCRIPT = r"""
import json, resource, sys, time
import numpy as np
import torch
torch.set_num_threads(1)
import sknn_explain as sx

rows, feats, outs, method, n, batch_size = sys.argv[1:7]
rows, feats, outs, n = int(rows), int(feats), int(outs), int(n)
batch_size = None if batch_size == "none" else int(batch_size)
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Linear(feats, 16), torch.nn.Tanh(), torch.nn.Linear(16, outs))
X = np.random.default_rng(0).standard_normal((rows, feats))
if method == "ig":
    ex = sx.IntegratedGradients(n=n, batch_size=batch_size).fit(net)
else:
    ex = sx.Gradient(batch_size=batch_size).fit(net)
ex.explain(X[:4])  # warm up: imports, lazy conversion, allocator pools
def resident():  # now, bytes
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize()
before = resident()
t0 = time.perf_counter()
res = ex.explain(X)
seconds = time.perf_counter() - t0
with open("/proc/self/status") as fh:  # peak RSS of this process: VmHWM, not ru_maxrss,
    # which also counts the parent's RSS at fork (a big pytest process inflated "extra")
    after = 1024 * int(next(l for l in fh if l.startswith("VmHWM")).split()[1])
assert res.values.shape == (rows, feats, outs)
print(json.dumps({"before": before, "after": after, "extra": after - before,
                  "result_bytes": res.values.nbytes, "seconds": seconds}))
"""


def measure(rows: int, features: int, outputs: int, method: str = "ig", n: int = 20,
            batch_size: int | None = None) -> dict:
    """Run one explain in a fresh interpreter and return its peak-RSS figures (bytes)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    args = [str(rows), str(features), str(outputs), method, str(n),
            "none" if batch_size is None else str(batch_size)]
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, *args], capture_output=True, text=True, env=env,
        cwd=root, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bound(rows: int, features: int, outputs: int) -> int:
    """The documented bound on the extra peak memory of ``explain`` (float32), bytes."""
    need = 4 * rows * features * outputs + 4 * rows * features + 8 * rows * outputs
    return 2 * need + 150 * MB


linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads /proc/self/statm and ru_maxrss in KiB"
)


@linux_only
@pytest.mark.parametrize("method", ["ig", "gradient"])
def test_explain_200k_rows_stays_within_the_documented_bound(method):
    rows, features, outputs = 200_000, 16, 4
    r = measure(rows, features, outputs, method, n=20, batch_size=8192)
    limit = bound(rows, features, outputs)
    assert r["result_bytes"] == 4 * rows * features * outputs
    assert r["extra"] <= limit, (
        f"{method}: explain took {r['extra'] / MB:.0f} MB over the baseline, bound "
        f"{limit / MB:.0f} MB (result {r['result_bytes'] / MB:.0f} MB)"
    )


@linux_only
def test_intgrad_makes_no_full_size_copy_besides_the_float32_data():
    """IG used to hold ``X - x_ref`` for all rows next to the float32 copy of X and the
    result: with 250 features and one output that copy is as large as the result."""
    rows, features = 200_000, 250
    r = measure(rows, features, 1, "ig", n=2, batch_size=4096)
    values = 4 * rows * features  # the result, and likewise the float32 copy of X
    assert r["result_bytes"] == values
    tight = 2 * values + 120 * MB  # result + float32 X + chunks, not a third copy
    assert r["extra"] <= tight, (
        f"explain took {r['extra'] / MB:.0f} MB over the baseline; result + float32 copy of "
        f"X = {2 * values / MB:.0f} MB"
    )


class _Sum(torch.nn.Module):
    def forward(self, x):
        return x.sum(1, keepdim=True)


@pytest.mark.parametrize("method", ["ig", "gradient"])
def test_chunked_accumulation_handles_broadcast_gradients(method):
    """autograd returns the gradient of a sum as an expanded (stride-0) tensor; saving memory
    by multiplying gradients in place must not write into it."""
    X = np.arange(12.0).reshape(4, 3)
    if method == "ig":
        ex = sx.IntegratedGradients(n=4, batch_size=3, dtype="double")
    else:
        ex = sx.Gradient(times_input=True, batch_size=3, dtype="double")
    res = ex.fit(_Sum()).explain(X)
    np.testing.assert_allclose(res.values[..., 0], X, rtol=1e-12)
    np.testing.assert_allclose(res.decomp_sum, res.decomp_goal, rtol=1e-12)


if __name__ == "__main__":  # pragma: no cover - manual measurement
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--outputs", type=int, default=10)
    parser.add_argument("--method", choices=["ig", "gradient"], default="ig")
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=None)
    a = parser.parse_args()
    r = measure(a.rows, a.features, a.outputs, a.method, a.n, a.batch_size)
    r["bound"] = bound(a.rows, a.features, a.outputs)
    print(json.dumps({k: (round(v / MB, 1) if k != "seconds" else round(v, 1))
                      for k, v in r.items()}))


# ---------------------------------------------------------------- auto batch size (QA finding)
# non-regression: foundation QA finding (named by the test)
def test_auto_batch_size_is_bounded_for_many_outputs():
    """Gradients of a chunk hold K values per input value: a chunk sized for the input alone
    needed 16 GB for 1000 outputs of a 3x16x16 image."""
    shapes = [(3, 16, 16)]
    assert auto_batch_size(shapes) == auto_batch_size(shapes, n_outputs=16)  # defaults kept
    rows = auto_batch_size(shapes, n_outputs=1000)
    assert rows * 3 * 16 * 16 * 1000 <= 16 * 2**22
    assert auto_batch_size([(5,)], n_outputs=100_000) >= 1
    big = nn.Sequential(nn.Linear(4, 300))
    X = np.random.default_rng(0).normal(size=(9, 4))
    res = Gradient(dtype="double").fit(big).explain(X, output_idx=np.arange(300)[::-1])
    np.testing.assert_allclose(res.values[3, :, 0], big[0].weight[299].detach().double())
    np.testing.assert_allclose(res.values[5], big[0].weight.detach().double().numpy()[::-1].T)


# ------------------------------------------------- forward-only chunks on CPU (issue #20)
def test_forward_batch_size_keeps_cpu_chunks_cache_sized():
    """Forward-only calls on CPU get about CPU_FORWARD_SET input values (2.5-3x faster than
    2^22 on the benchmark CNNs); other devices keep auto_batch_size."""
    from sknn_explain._batching import CPU_FORWARD_SET, forward_batch_size

    assert forward_batch_size([(3, 32, 32)], "cpu") == CPU_FORWARD_SET // 3072
    assert forward_batch_size([(3, 32, 32)], "cuda") == auto_batch_size([(3, 32, 32)])
    assert forward_batch_size([(10,)], "cpu") == min(auto_batch_size([(10,)]),
                                                     CPU_FORWARD_SET // 10)
    assert forward_batch_size([(3, 1024, 1024)], "cpu") == 1  # never below one row


@pytest.mark.parametrize("name", ["Occlusion", "FeatureAblation", "ShapleyValueSampling",
                                  "KernelSHAP", "LIME"])
def test_forward_only_methods_chunk_by_the_cpu_working_set_and_match_one_chunk(name):
    """The default chunks of the forward-only methods on CPU hold CPU_FORWARD_SET input
    values; chunking changes only speed: the attributions equal those of one big chunk."""
    import sknn_explain as skx
    from sknn_explain._batching import CPU_FORWARD_SET

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 32 * 32, 3)).double().eval()
    X = torch.randn(6, 3, 32, 32, dtype=torch.float64)
    kwargs = {"Occlusion": dict(sliding_window_shapes=(3, 8, 8), strides=(3, 8, 8)),
              "FeatureAblation": dict(feature_mask=np.arange(16).reshape(4, 4).repeat(
                  8, 0).repeat(8, 1)[None].repeat(3, 0)),
              "ShapleyValueSampling": dict(n_samples=2, random_state=0, feature_mask=np.arange(
                  16).reshape(4, 4).repeat(8, 0).repeat(8, 1)[None].repeat(3, 0)),
              "KernelSHAP": dict(n_samples=64, segment_size=8, random_state=0),
              "LIME": dict(n_samples=64, segment_size=8, random_state=0)}[name]
    cls = getattr(skx, name)
    ref = X[:2] if name in ("KernelSHAP", "LIME") else None
    chunked = cls(**kwargs).fit(model, ref)
    assert chunked._batch_size([(3, 32, 32)]) == CPU_FORWARD_SET // 3072  # 85 rows
    whole = cls(**kwargs, batch_size=100_000).fit(model, ref)
    a = chunked.explain(X, output_idx=[0, 2])  # 6 rows x 16 or more perturbations: > 85
    b = whole.explain(X, output_idx=[0, 2])
    np.testing.assert_allclose(a.values, b.values, rtol=1e-12, atol=1e-12)


def test_one_backward_per_output_keeps_its_chunk_with_many_outputs():
    """With one backward pass per output (images on CPU) a pass works on its chunk's rows
    only: the automatic chunk holds CPU_PASS_SET input values whatever the number of
    outputs (100 outputs of a 3x64x64 image cut it to one row before: twice the passes),
    and the gradients equal those of one-row chunks."""
    from sknn_explain import Gradient
    from sknn_explain._batching import CPU_PASS_SET
    from sknn_explain._output_selection import resolve_outputs
    from sknn_explain.explainers.gradient import _rows

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4),
                          nn.Flatten(), nn.Linear(64, 100)).double().eval()
    X = torch.randn(12, 3, 64, 64, dtype=torch.float64)
    auto = Gradient(dtype="double").fit(model)
    res = auto.explain(X, output_idx=list(range(100)))
    sel = resolve_outputs(list(range(100)), None, auto.model_.output_names([100]))
    xs = [X.contiguous()]
    assert _rows(auto, xs, sel, 10**6) == CPU_PASS_SET // (3 * 64 * 64)  # 10 rows, not 1
    one = Gradient(dtype="double", batch_size=1).fit(model).explain(
        X, output_idx=list(range(100)))
    np.testing.assert_allclose(res.values, one.values, rtol=1e-10, atol=1e-12)


def test_gradient_batch_size_per_strategy_and_layer_methods_match_one_row_chunks():
    """The chunk rule is shared by the input-gradient and the layer methods: one backward
    pass per output (images) keeps CPU_PASS_SET values per pass, one batched pass (dense)
    keeps rows x width x outputs cache-sized; Grad-CAM and LayerIntegratedGradients with
    100 outputs give the numbers of one-row chunks."""
    from sknn_explain import GradCAM, LayerIntegratedGradients
    from sknn_explain._batching import CPU_PASS_SET, CPU_WORKING_SET, gradient_batch_size

    def forward(xs):
        return xs

    assert gradient_batch_size(forward, [torch.zeros(2, 16, 32, 32)], 100) == \
        CPU_PASS_SET // (16 * 32 * 32)
    assert gradient_batch_size(forward, [torch.zeros(2, 300)], 100) == \
        auto_batch_size([(300,)], n_outputs=100, device_type="cpu") == \
        CPU_WORKING_SET // (300 * 100)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3),
                          nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                          nn.Linear(32, 100)).double().eval()
    X = torch.randn(5, 3, 40, 40, dtype=torch.float64)
    out = list(range(100))
    for make in (lambda **kw: GradCAM(layer="3", dtype="double", **kw).fit(model),
                 lambda **kw: LayerIntegratedGradients(layer="3", n=3, dtype="double",
                                                       **kw).fit(model, X[:1] * 0)):
        auto, one = make().explain(X, output_idx=out), make(batch_size=1).explain(
            X, output_idx=out)
        np.testing.assert_allclose(auto.values, one.values, rtol=1e-10, atol=1e-12)
    from sknn_explain.functional import torch_grad  # the functional API: the same rule

    np.testing.assert_allclose(
        torch_grad(model, X, output_idx=out).detach().numpy(),
        torch_grad(model, X, output_idx=out, batch_size=1).detach().numpy(),
        rtol=1e-10, atol=1e-12)
