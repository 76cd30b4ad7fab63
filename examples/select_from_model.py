"""
Feature selection: attribution vs permutation importance
========================================================

``SelectFromModel(AttributionTransformer(net, IntegratedGradients()))`` keeps the features
with the largest mean ``|attribution|`` on the training data (``feature_importances_``),
with no change to scikit-learn. We compare its choice with scikit-learn's
``permutation_importance`` of the same network on breast_cancer, and the accuracy of a
logistic regression on the features each method keeps.

Attribution importance costs one explanation pass over the training data; permutation
importance costs ``n_repeats x n_features`` prediction passes over held-out data and
measures something different: how much the held-out log-loss relies on a feature (it
ignores what correlated features can make up for), rather than how much each feature
moves the network's output.

Run from the repository root::

    python examples/select_from_model.py
"""

from __future__ import annotations

import time

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer
from sklearn.feature_selection import SelectFromModel
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from skorch import NeuralNetClassifier
from torch import nn

from sknn_explain import IntegratedGradients
from sknn_explain.transformer import AttributionTransformer, TabularMLP

N_KEEP = 8


# %%
# Data and network
# ----------------
# breast_cancer, standardised; a skorch MLP that ``SelectFromModel`` trains through
# ``AttributionTransformer``.

data = load_breast_cancer()
names = np.asarray(data.feature_names)
X_train, X_test, y_train, y_test = train_test_split(
    data.data, data.target, test_size=0.3, stratify=data.target, random_state=0
)
scaler = StandardScaler().fit(X_train)
X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)

net = NeuralNetClassifier(
    TabularMLP, module__n_features=X_train.shape[1], module__n_outputs=2,
    module__hidden=32, criterion=nn.CrossEntropyLoss, optimizer=torch.optim.Adam,
    lr=0.01, max_epochs=60, batch_size=64, train_split=None,
    iterator_train__shuffle=True, verbose=0,
)

# %%
# Select by attribution importance
# --------------------------------
# The eight features with the largest mean ``|IG|`` on the training data.

start = time.perf_counter()
selector = SelectFromModel(
    AttributionTransformer(net, IntegratedGradients(n=32), random_state=0),
    max_features=N_KEEP, threshold=-np.inf,
).fit(X_train, y_train)
t_attr = time.perf_counter() - start
fitted_net = selector.estimator_.estimator_
print(f"network test accuracy: {fitted_net.score(X_test.astype('float32'), y_test):.3f}")

# %%
# Permutation importance of the same network
# ------------------------------------------
# scikit-learn's ``permutation_importance`` on the held-out data.

start = time.perf_counter()
perm = permutation_importance(
    fitted_net, X_test.astype("float32"), y_test, scoring="neg_log_loss", n_repeats=10,
    random_state=0,
)
t_perm = time.perf_counter() - start
by_attr = np.argsort(selector.estimator_.feature_importances_)[::-1][:N_KEEP]
by_perm = np.argsort(perm.importances_mean)[::-1][:N_KEEP]

print(f"\ntop {N_KEEP} features")
print(f"{'attribution importance (IG)':<32}{'permutation importance':<32}")
for a, p in zip(by_attr, by_perm):
    print(f"{names[a]:<32}{names[p]:<32}")
overlap = len(set(by_attr) & set(by_perm))
print(f"\noverlap: {overlap}/{N_KEEP}; time incl. training: attribution {t_attr:.1f}s, "
      f"permutation (after training) {t_perm:.1f}s")
assert set(np.flatnonzero(selector.get_support())) == set(by_attr)

# %%
# Does the choice matter?
# -----------------------
# A logistic regression on the features each method keeps, against random choices.

def accuracy(columns) -> float:
    model = LogisticRegression(max_iter=1000).fit(X_train[:, columns], y_train)
    return model.score(X_test[:, columns], y_test)

rng = np.random.default_rng(0)
random_acc = np.mean([
    accuracy(rng.choice(X_train.shape[1], N_KEEP, replace=False)) for _ in range(20)
])
print("\nlogistic regression test accuracy")
for label, value in [
    (f"all {X_train.shape[1]} features", accuracy(slice(None))),
    (f"{N_KEEP} by attribution importance", accuracy(by_attr)),
    (f"{N_KEEP} by permutation importance", accuracy(by_perm)),
    (f"{N_KEEP} random features (mean of 20)", random_acc),
]:
    print(f"  {label:<36}{value:.3f}")
