"""
The README demo: every method on a skorch Pipeline
==================================================

Train a skorch MLP in a scikit-learn Pipeline on breast_cancer and explain it with each method.

The network is explained on its own (scaled) inputs and the attributions are reported per
original column, with the DataFrame's names (``space="network"``, the default).

Run from the repository root::

    python examples/demo.py [output_dir]

Explains the test set with each of the ten methods once (KernelSHAP and LIME, which call the
model many times per row, on its first rows), prints a table of the top features per method and
writes the long-form attributions as CSV and two PNG plots per method to ``output_dir``
(default ``output/demo``). The gallery shows the plots of Integrated Gradients and
Kernel SHAP.
"""

# %%
# The model
# ---------
# A ``StandardScaler`` and a skorch MLP in one scikit-learn ``Pipeline``.

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from skorch import NeuralNetClassifier
from torch import nn

import sknn_explain as skx


def train_model(X: pd.DataFrame, y: pd.Series) -> Pipeline:
    """StandardScaler + skorch MLP (float32 in, so the scaler keeps float32 for torch)."""
    torch.manual_seed(0)
    net = NeuralNetClassifier(
        nn.Sequential(nn.Linear(X.shape[1], 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(),
                      nn.Linear(16, 2)),
        criterion=nn.CrossEntropyLoss, optimizer=torch.optim.Adam, lr=1e-2, max_epochs=40,
        batch_size=64, train_split=None, verbose=0,
    )
    return make_pipeline(StandardScaler(), net).fit(X.astype(np.float32), y.to_numpy())


# %%
# The explainers
# --------------
# Every method once; the randomised ones with a seed.


def explainers() -> dict[str, skx.Explainer]:
    """Every method once, with innsight-like settings."""
    return {
        "Gradient x Input": skx.Gradient(times_input=True),
        "SmoothGrad": skx.SmoothGrad(n=50, noise_level=0.1, random_state=0),
        "IntegratedGradients": skx.IntegratedGradients(n=50),
        "ExpectedGradients": skx.ExpectedGradients(n=50, random_state=0),
        "LRP (epsilon)": skx.LRP(rule_name="epsilon"),
        "DeepLift": skx.DeepLift(),
        "DeepSHAP": skx.DeepSHAP(limit_ref=50, random_state=0),
        "ConnectionWeights": skx.ConnectionWeights(times_input=True),
        "KernelSHAP": skx.KernelSHAP(limit_ref=10, random_state=0),
        "LIME": skx.LIME(n_samples=1000, random_state=0),
    }


# %%
# Explain, tabulate, plot
# -----------------------
# ``X_train`` is the reference data: its mean is the baseline of Integrated Gradients and
# DeepLift, its rows the background of the SHAP methods.

#: model-agnostic methods cost (coalitions x background) model rows per explained row:
#: they explain the first rows of the test set only
AGNOSTIC_ROWS = 12


def main(out_dir: str = "output/demo", n_rows: int | None = None, plots: bool = True,
         show: tuple[str, ...] = ()) -> pd.DataFrame:
    """Train, explain the test set with every method, print a table, write CSV and plots.

    ``n_rows`` limits the explained test rows (all by default); ``plots=False`` skips the PNGs;
    the figures of the methods named in ``show`` stay open (the gallery renders them).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = load_breast_cancer(as_frame=True)
    X = data.data.astype(np.float32)  # the skorch net computes in float32: so does its input
    X_train, X_test, y_train, y_test = train_test_split(
        X, data.target, test_size=0.25, random_state=0, stratify=data.target
    )
    model = train_model(X_train, y_train)
    acc = (model.predict(X_test) == y_test.to_numpy()).mean()
    print(f"Pipeline(StandardScaler, skorch MLP) on breast_cancer: test accuracy {acc:.3f}\n")
    print(skx.convert(model, input_shape=(X_train.shape[1],)), "\n")
    X_test = X_test if n_rows is None else X_test[:n_rows]

    rows, frames = [], []
    for name, explainer in explainers().items():
        agnostic = isinstance(explainer, (skx.KernelSHAP, skx.LIME))
        X_explain = X_test[:AGNOSTIC_ROWS] if agnostic else X_test
        # X_train: baseline (its mean) / reference distribution; class 1 is "benign"
        result = explainer.fit(model, X_train).explain(X_explain, output_label=[1])
        importance = pd.Series(
            np.abs(result.values[..., 0]).mean(0), index=X_test.columns
        ).sort_values(ascending=False)
        rows.append({"method": name, "rows": len(X_explain),
                     **{f"top{i + 1}": f for i, f in enumerate(importance.index[:3])}})
        frame = result.to_frame()
        frame.insert(0, "method", name)
        frames.append(frame)
        if not plots:
            continue
        stem = "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")
        for kind, grid in (("global", result.plot_global(kind="beeswarm")),
                           ("local", result.plot(data_idx=[0, 1]))):
            grid.savefig(out / f"{stem}_{kind}.png", dpi=90)
            if name not in show:
                plt.close(grid.figure)
    table = pd.DataFrame(rows).set_index("method")
    print("Most important features for class 'benign' (mean |attribution| over the explained "
          "rows):")
    with pd.option_context("display.width", 140, "display.max_colwidth", 28):
        print(table.to_string(justify="left"))
    print("\nThe scaler runs before the network, and every method explains the network on its "
          "own (scaled) inputs,\nreported per original column (space='network', the default); "
          "space='raw' folds the scaler in and\nexplains raw units, where 'x Input' multiplies "
          "by raw values and large-scale features weigh more.")
    pd.concat(frames).to_csv(out / "attributions.csv", index=False)
    extra = f" and plots (beeswarm and two local explanations per method) to {out}/*.png" \
        if plots else ""
    print(f"\nlong-form attributions written to {out / 'attributions.csv'}{extra}")
    return table


# %%
# Run
# ---
# Prints the accuracy, the converted graph and the table of the top features per method.

if __name__ == "__main__":
    main(*sys.argv[1:2], show=("IntegratedGradients", "KernelSHAP"))
