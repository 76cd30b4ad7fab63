"""Smoke test of the benchmark suite at tiny sizes: the table is produced (no timings checked)."""

from __future__ import annotations

import numpy as np
import torch

from benchmarks.suite import __main__ as suite
from benchmarks.suite import kernel_accuracy, report
from benchmarks.suite.models import mlp


def test_suite_writes_its_table_between_the_markers(tmp_path):
    page = tmp_path / "benchmarks.md"
    page.write_text(f"# Benchmarks\n\nhand-written\n\n{report.START}\nold\n{report.END}\n\ntail\n")
    results = suite.main(["--quick", "--inline", "--repeats", "1", "--threads", "1",
                          "--models", "0", "--methods", "Gradient,DeepLift", "--no-kernel",
                          "--no-latency", "--out", str(page)])
    cells = results["cells"]
    assert {(c["method"], c["outputs"]) for c in cells} == {
        ("Gradient", 1), ("Gradient", 10), ("DeepLift", 1), ("DeepLift", 10)}
    assert all("error" not in c for c in cells)
    assert all(c["ok"] for c in cells)  # both sides computed the same thing
    assert {c["way"] for c in cells if c["outputs"] == 10} <= {"batched", "looped"}
    assert all(c["other_ways"] for c in cells if c["outputs"] == 10)  # both ways were timed
    text = page.read_text()
    assert text.startswith("# Benchmarks\n\nhand-written\n") and text.endswith("\ntail\n")
    assert "old" not in text and text.count(report.START) == 1
    assert "| MLP 100-256-256-10 | DeepLift | captum (" in text


def test_brute_force_shapley_values_are_exact_for_a_linear_model():
    torch.manual_seed(0)
    model = mlp([4, 1]).double()
    rng = np.random.default_rng(0)
    X, background = rng.normal(size=(2, 4)), rng.normal(size=(3, 4))
    phi = kernel_accuracy.exact_shapley(model, X, background, chunk=5)
    w = model[0].weight.detach().numpy()[0]
    np.testing.assert_allclose(phi[..., 0], w * (X - background.mean(0)), atol=1e-12)


def test_matched_error_picks_our_cheapest_point_at_least_as_accurate():
    points = [{"nsamples": 10, "ours_err": 0.5, "shap_err": 0.4, "ours_s": 1.0, "shap_s": 2.0},
              {"nsamples": 20, "ours_err": 0.3, "shap_err": 0.35, "ours_s": 2.0, "shap_s": 4.0}]
    matched = kernel_accuracy.matched_error(points)
    assert matched[0]["ours_nsamples"] == 20 and matched[0]["ratio"] == 2.0 / 2.0
    assert matched[1]["ours_nsamples"] == 20 and matched[1]["ratio"] == 2.0 / 4.0


def test_a_peer_call_for_all_outputs_is_timed_once_and_sliced_per_output_count():
    from benchmarks.suite import worker

    cells = list(worker.run_model("MLP 100-256-256-10", quick=True, repeats=1,
                                  only={"KernelSHAP"}))
    assert [c["outputs"] for c in cells] == [1, 10]
    assert all("error" not in c and c["way"] == "all outputs" for c in cells)
    assert cells[0]["peer_s"] == cells[1]["peer_s"]  # one measurement, reused
    # the comparison used the peer's values of the selected outputs only (shapes agree)
    assert all(c["check"].startswith("rel ") for c in cells)
