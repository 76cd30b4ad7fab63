"""The README demo runs end to end (small: a few rows, no plots)."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_explains_with_every_method_once(tmp_path, capsys):
    demo = _load("demo")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        table = demo.main(str(tmp_path), n_rows=6, plots=False)
    assert len(table) == len(set(table.index)) == 10  # every method once
    assert (tmp_path / "attributions.csv").exists()
    assert "KernelSHAP" in table.index and "LIME" in table.index
    assert np.all(table["rows"] == 6)
    assert "test accuracy" in capsys.readouterr().out


def test_penguins_pipeline_example_explains_per_original_column(tmp_path):
    penguins = _load("penguins")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        summary = penguins.main(str(tmp_path))
    assert list(summary.index) == ["island", *penguins.NUMERIC, "sex"]
    assert list(summary.columns) == ["IntegratedGradients", "DeepSHAP", "KernelSHAP"]
    assert np.isfinite(summary.to_numpy()).all() and (summary.to_numpy() > 0).all()
    assert (tmp_path / "kernelshap_beeswarm.png").exists()


def test_tabular_transformer_example_explains_the_ft_transformer(tmp_path, capsys):
    import matplotlib.pyplot as plt

    example = _load("tabular_transformer")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        summary = example.main(str(tmp_path), n_rows=8)
    plt.close("all")
    assert summary.shape == (30, 3) and np.isfinite(summary.to_numpy()).all()
    assert (tmp_path / "top_features.png").exists()
    out = capsys.readouterr().out
    deeplift_gap = float(out.split("DeepLift")[1].split("= ")[1].split()[0])
    assert deeplift_gap < 1e-8  # summation-to-delta through the whole transformer


def test_text_sequence_example_finds_the_deciding_tokens():
    example = _load("text_sequence")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        hits = example.main(n_rows=20)
    assert set(hits) == {"DeepLift", "LRP (epsilon)"}
    assert min(hits.values()) >= 0.8
