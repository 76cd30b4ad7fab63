"""
Mixed data: the penguin pipeline, per original column
=====================================================

Explain a whole scikit-learn pipeline on mixed data, per original column (innsight's
penguin example, in Python).

The Palmer penguins table (``palmerpenguins`` ships the CSV) has numeric measurements with
missing values and two string columns. A ``ColumnTransformer`` imputes and scales the
measurements, imputes and one-hot encodes ``island`` and ``sex``; a skorch MLP predicts the
species. Every explainer takes the raw DataFrame:

* Integrated Gradients and DeepSHAP explain the network on the encoded features and sum them
  back per original column (``island`` = the sum over its one-hot block), so completeness
  still holds;
* Kernel SHAP swaps raw values (strings, NaN and all) between rows and calls the whole
  pipeline: exact Shapley values of the pipeline per column.

Run from the repository root::

    python examples/penguins.py [output_dir]

Prints the mean ``|attribution|`` per column and method, and writes plots to ``output_dir``
(default ``output/penguins``). The gallery shows the plots of Kernel SHAP.
"""

# %%
# Data and pipeline
# -----------------
# Measurements with missing values and two string columns, straight from the CSV.

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from palmerpenguins import load_penguins
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from skorch import NeuralNetClassifier
from torch import nn

import sknn_explain as skx

NUMERIC = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
CATEGORICAL = ["island", "sex"]


def load() -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    """Features (island, four measurements, sex; NaN kept) and species codes."""
    df = load_penguins()
    X = df[["island", *NUMERIC, "sex"]]
    species = df["species"].astype("category")
    return X, species.cat.codes.to_numpy().astype(np.int64), list(species.cat.categories)


def make_model(species: list[str]) -> Pipeline:
    """Impute + scale / one-hot encode, then a skorch MLP (float32, as torch wants)."""
    preprocess = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(), StandardScaler()), NUMERIC),
        ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"),
                              OneHotEncoder(handle_unknown="ignore")), CATEGORICAL),
    ], sparse_threshold=0)
    net = NeuralNetClassifier(
        nn.Sequential(nn.Linear(9, 16), nn.ReLU(), nn.Linear(16, 3)),
        criterion=nn.CrossEntropyLoss, optimizer=torch.optim.Adam, lr=0.05, max_epochs=60,
        train_split=None, verbose=0, classes=species,
    )
    to_float32 = FunctionTransformer(np.float32, feature_names_out="one-to-one")
    return make_pipeline(preprocess, to_float32, net)


# %%
# Explain per original column
# ---------------------------
# Each explainer takes the raw DataFrame; ``island`` and ``sex`` get one attribution each.


def main(out_dir: str = "output/penguins", show: tuple[str, ...] = ()) -> pd.DataFrame:
    """Train, explain with three methods, print the summary and write plots to ``out_dir``.

    The figures of the methods named in ``show`` stay open (the gallery renders them).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    X, y, species = load()
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0,
                                                        stratify=y)
    torch.manual_seed(0)
    model = make_model(species).fit(X_train, y_train)
    print(f"penguins: test accuracy {(model.predict(X_test) == y_test).mean():.3f}\n")

    explainers = {
        "IntegratedGradients": skx.IntegratedGradients(n=200, dtype="double"),
        "DeepSHAP": skx.DeepSHAP(limit_ref=50, random_state=0, dtype="double"),
        "KernelSHAP": skx.KernelSHAP(limit_ref=25, random_state=0),
    }
    rows = {"KernelSHAP": X_test[:12]}  # it calls the whole pipeline many times per row
    table = {}
    for name, explainer in explainers.items():
        data = rows.get(name, X_test)
        result = explainer.fit(model, X_train).explain(data)
        gap = np.nanmax(np.abs(result.decomp_sum - result.decomp_goal))
        print(f"{name:20s} rows={len(data):3d}  max |sum - goal| = {gap:.2g}"
              + ("  (Riemann error of n steps)" if name == "IntegratedGradients" else ""))
        table[name] = pd.Series(np.abs(result.values).mean(axis=(0, 2)),
                                index=result.input_names[0][0])
        stem = name.lower()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            result.plot(data_idx=0).savefig(out / f"{stem}_local.png", dpi=90)
            result.plot_global(kind="beeswarm", output_idx=[0]).savefig(
                out / f"{stem}_beeswarm.png", dpi=90)
        if name not in show:
            plt.close("all")
        if name == "IntegratedGradients":
            encoded = result.to_frame(level="encoded")
            print("  one-hot view:", sorted(set(encoded["feature"].astype(str)))[:4], "...")
    summary = pd.DataFrame(table)
    print("\nmean |attribution| per original column (all species; IG and DeepSHAP explain "
          "the logits,\nKernelSHAP the pipeline's predict_proba, hence the smaller scale):")
    print(summary.round(3).to_string())
    print(f"\nplots written to {out}/*.png")
    return summary


# %%
# Run
# ---

if __name__ == "__main__":
    main(*sys.argv[1:2], show=("KernelSHAP",))
