"""
Tabular transformer: an FT-Transformer explained with IG, DeepLift and AttnLRP
==============================================================================

An FT-Transformer-style model (Gorishniy et al., 2021) on scikit-learn's breast cancer data
(no download): a feature tokenizer turns each standardised feature ``x_f`` into a token
``x_f * W_f + b_f``, a learned CLS token is prepended, two transformer encoder layers
(multi-head attention + feed-forward, LayerNorm first) mix the tokens, and a linear head
reads the CLS token. skorch trains it in a few seconds.

The converter turns the whole model into the layer graph (the tokenizer, the CLS
concatenation and ``nn.TransformerEncoderLayer`` included, verified against the module), so
the propagation methods apply:

* Integrated Gradients against the all-zero row (the training mean);
* DeepLift against the same reference: its attributions add up to ``f(x) - f(0)``
  exactly (summation-to-delta), which we check;
* LRP with the epsilon rule and AttnLRP's rules for LayerNorm, softmax and the attention
  products (Achtibat et al., 2024). The CLS token is a constant: the relevance that flows
  into it is absorbed, like a bias's share.

Run from the repository root::

    python examples/tabular_transformer.py
"""

# %%
# Data and model
# --------------

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from skorch import NeuralNetClassifier
from torch import nn

import sknn_explain as skx


class FTTransformer(nn.Module):
    """Feature tokenizer + CLS token + transformer encoder layers + head on the CLS token."""

    def __init__(self, n_features: int, dim: int = 16, n_blocks: int = 2,
                 n_classes: int = 2) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_features, dim) / dim ** 0.5)
        self.bias = nn.Parameter(torch.zeros(n_features, dim))
        self.cls = nn.Parameter(torch.randn(1, 1, dim) / dim ** 0.5)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(dim, 2, 2 * dim, dropout=0.0, activation="gelu",
                                       batch_first=True, norm_first=True)
            for _ in range(n_blocks))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.unsqueeze(-1) * self.weight + self.bias          # (n, features, dim)
        tokens = torch.cat([self.cls.expand(x.shape[0], -1, -1), tokens], dim=1)
        for block in self.blocks:
            tokens = block(tokens)
        return self.head(self.norm(tokens[:, 0]))                    # the CLS token


def train(seed: int = 0):
    """Standardised breast cancer data and a trained skorch FT-Transformer."""
    data = load_breast_cancer()
    X_train, X_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=0.25, random_state=seed, stratify=data.target)
    scaler = StandardScaler().fit(X_train)
    X_train = scaler.transform(X_train).astype(np.float32)
    X_test = scaler.transform(X_test).astype(np.float32)
    torch.manual_seed(seed)
    net = NeuralNetClassifier(
        FTTransformer, module__n_features=X_train.shape[1], criterion=nn.CrossEntropyLoss,
        optimizer=torch.optim.AdamW, lr=3e-3, max_epochs=15, batch_size=64,
        train_split=None, verbose=0,
    ).fit(X_train, y_train.astype(np.int64))
    print(f"test accuracy {(net.predict(X_test) == y_test).mean():.3f}")
    return net, X_train, X_test, list(data.feature_names)


# %%
# Explain the "benign" score
# --------------------------
# ``output_idx=[1]`` explains the logit of class 1 (benign). Each method gets the same 40
# test rows; the table ranks the features by mean absolute attribution.


def main(out_dir: str = "output/tabular_transformer", n_rows: int = 40,
         plots: bool = True) -> pd.DataFrame:
    """Train, explain with three methods, print the top features and the completeness
    checks, and save a bar plot of the top features to ``out_dir``."""
    net, X_train, X_test, names = train()
    X = X_test[:n_rows]
    reference = np.zeros((1, X.shape[1]), dtype=np.float32)  # the training mean
    explainers = {
        "IntegratedGradients": skx.IntegratedGradients(n=256, dtype="double"),
        "DeepLift": skx.DeepLift(dtype="double"),
        "LRP (AttnLRP, epsilon)": skx.LRP(rule_name="epsilon", dtype="double"),
    }
    table = {}
    for name, explainer in explainers.items():
        ref = None if name.startswith("LRP") else reference
        result = explainer.fit(net, ref).explain(X, output_idx=[1])
        values = result.values[..., 0]                               # (rows, features)
        table[name] = pd.Series(np.abs(values).mean(0), index=names)
        goal = result.decomp_goal[:, 0]
        if name.startswith("LRP"):  # the goal is the score itself
            share = float(np.median(values.sum(1) / goal))
            print(f"{name:24s} median share of the score reaching the features = {share:.2f}"
                  " (the rest is absorbed by biases, the CLS token and the softmax)")
        else:
            gap = float(np.max(np.abs(values.sum(1) - goal)))
            print(f"{name:24s} max |sum of attributions - (f(x) - f(0))| = {gap:.2g}"
                  + ("  (Riemann error of n steps)" if name == "IntegratedGradients" else ""))
    summary = pd.DataFrame(table)
    summary = summary.loc[summary["DeepLift"].sort_values(ascending=False).index]
    print("\ntop features by mean |attribution| (DeepLift order):")
    print(summary.head(8).round(3).to_string())
    if plots:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        top = summary.head(10) / summary.head(10).max()
        ax = top.iloc[::-1].plot.barh(figsize=(7, 5))
        ax.set_xlabel("mean |attribution| (scaled to each method's maximum)")
        ax.set_title("FT-Transformer on breast cancer: top features")
        plt.tight_layout()
        plt.savefig(out / "top_features.png", dpi=90)
        print(f"\nplot written to {out}/top_features.png")
    return summary


# %%
# Run
# ---
# IG's sum differs from ``f(x) - f(0)`` by its Riemann-sum error; DeepLift's is exact.

if __name__ == "__main__":
    main(*sys.argv[1:2])
    plt.show()
