"""
Attributions as features inside a Pipeline
==========================================

``Pipeline(StandardScaler, AttributionTransformer(skorch net), LogisticRegression)``: the
network is trained on the scaled data inside every cross-validation fold, its Integrated
Gradients attributions of the "benign" logit (``target=1``: the same output for every
sample, so a feature's column means the same thing in every row) become the features of
a logistic regression. They sum to ``logit(x) - logit(mean)``, so the regression can
rebuild the network's decision from them.

Run from the repository root::

    python examples/pipeline_transformer.py
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from skorch import NeuralNetClassifier
from torch import nn

from sknn_explain import IntegratedGradients
from sknn_explain.transformer import AttributionTransformer, TabularMLP


def make_net(n_features: int) -> NeuralNetClassifier:
    """A small skorch classifier; AttributionTransformer clones and fits it per fold."""
    return NeuralNetClassifier(
        TabularMLP, module__n_features=n_features, module__n_outputs=2, module__hidden=16,
        criterion=nn.CrossEntropyLoss, optimizer=torch.optim.Adam, lr=0.01, max_epochs=40,
        batch_size=64, train_split=None, iterator_train__shuffle=True, verbose=0,
    )


# %%
# Two pipelines
# -------------
# The same cross-validation scores a logistic regression on the raw features and on
# the network's attributions.

data = load_breast_cancer(as_frame=True)
X, y = data.data, data.target
attribution_features = AttributionTransformer(
    make_net(X.shape[1]), IntegratedGradients(n=32), target=1, random_state=0,
)
pipe = make_pipeline(
    StandardScaler(), attribution_features, LogisticRegression(max_iter=1000)
)
baseline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))

# %%
# Cross-validated accuracy
# ------------------------
# Inside every fold the network is trained on the training part only.

cv = StratifiedKFold(5, shuffle=True, random_state=0)
for name, model in [("raw features", baseline), ("IG attributions", pipe)]:
    scores = cross_val_score(model, X, y, cv=cv)
    print(f"{name:>16}: accuracy {scores.mean():.3f} +- {scores.std():.3f}")

# %%
# Attributions as a DataFrame
# ---------------------------
# ``set_output(transform="pandas")`` keeps the column names.

# The transformer speaks pandas: column names survive, and "all" names the classes.
pipe.set_output(transform="pandas").fit(X, y)
features = pipe[:-1].transform(X.iloc[:3])
print("\nattribution features of 3 samples (first 4 columns):")
print(features.iloc[:, :4].round(3))

# %%
# Feature importances and explanation quality
# -------------------------------------------
# ``feature_importances_`` is the mean ``|attribution|`` on the training data; ``score``
# is an explanation-quality metric (by default the negative deletion AUC).

transformer = pipe.named_steps["attributiontransformer"]
top = np.argsort(transformer.feature_importances_)[::-1][:5]
print("\nmost important features (mean |IG| on the training data):")
for j in top:
    print(f"  {X.columns[j]:<24} {transformer.feature_importances_[j]:.3f}")
quality = transformer.score(pipe[0].transform(X))  # default scoring: -deletion AUC
print(f"\nexplanation quality (-deletion AUC, higher is better): {quality:.3f}")
