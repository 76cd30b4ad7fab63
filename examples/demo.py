"""sknn_explain demo: train a skorch MLP in a scikit-learn Pipeline on breast_cancer, explain it.

The StandardScaler is folded into the converted graph, so attributions are for the original
(unscaled) features and carry their names.

Run from the repository root::

    python examples/demo.py [output_dir]

Prints a table of the top features per method and writes CSV (and PNG plots when the
plotting module is available) to ``output_dir`` (default ``output/demo``).
"""

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


def explainers() -> dict[str, skx.Explainer]:
    """Every method available, with innsight-like settings."""
    return {
        "Gradient": skx.Gradient(),
        "Gradient x Input": skx.Gradient(times_input=True),
        "SmoothGrad": skx.SmoothGrad(n=50, noise_level=0.1, random_state=0),
        "IntegratedGradients": skx.IntegratedGradients(n=50),
        "ExpectedGradients": skx.ExpectedGradients(n=50, random_state=0),
        "LRP (epsilon)": skx.LRP(rule_name="epsilon"),
        "LRP (alpha_beta)": skx.LRP(rule_name="alpha_beta", rule_param=1),
        "DeepLift": skx.DeepLift(),
        "DeepSHAP": skx.DeepSHAP(limit_ref=50, random_state=0),
        "ConnectionWeights (x input)": skx.ConnectionWeights(times_input=True),
    }


def main(out_dir: str = "output/demo") -> pd.DataFrame:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = load_breast_cancer(as_frame=True)
    X_train, X_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=0.25, random_state=0, stratify=data.target
    )
    model = train_model(X_train, y_train)
    acc = (model.predict(X_test.astype(np.float32)) == y_test.to_numpy()).mean()
    print(f"Pipeline(StandardScaler, skorch MLP) on breast_cancer: test accuracy {acc:.3f}\n")
    print(skx.convert(model, input_shape=(X_train.shape[1],)), "\n")

    rows, frames = [], []
    for name, explainer in explainers().items():
        # X_train: baseline (its mean) / reference distribution; class 1 is "benign"
        result = explainer.fit(model, X_train).explain(X_test, output_label=[1])
        print(f"{name:22s} {result!r}")
        importance = pd.Series(
            np.abs(result.values[..., 0]).mean(0), index=X_test.columns
        ).sort_values(ascending=False)
        rows.append({"method": name, **{f"top{i + 1}": f for i, f in
                                        enumerate(importance.index[:3])}})
        frame = result.to_frame()
        frame.insert(0, "method", name)
        frames.append(frame)
        stem = "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")
        for kind, grid in (("global", result.plot_global(kind="beeswarm")),
                           ("local", result.plot(data_idx=[0, 1]))):
            grid.savefig(out / f"{stem}_{kind}.png", dpi=90)
            plt.close(grid.figure)
    table = pd.DataFrame(rows).set_index("method")
    print("\nMost important features for class 'benign' (mean |attribution| on the test set):")
    print(table.to_string())
    pd.concat(frames).to_csv(out / "attributions.csv", index=False)
    print(f"\nlong-form attributions written to {out / 'attributions.csv'}, plots (beeswarm "
          f"summary and two local explanations per method) to {out}/*.png")
    return table


if __name__ == "__main__":
    main(*sys.argv[1:2])
