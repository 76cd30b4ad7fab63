"""
GridSearchCV over explainer parameters
======================================

The network is trained once; ``AttributionTransformer(net, ..., prefit=True)`` only fits
the explainer in every fold (``clone`` shares the fitted net), and each candidate is
judged on the held-out fold by how fast the prediction falls when its most relevant
features are replaced by the training mean (deletion AUC, lower is better, so the scorer
is ``neg_deletion_auc``), how fast it recovers when they are put back (insertion AUC) and
by faithfulness correlation. The grid covers SmoothGrad's ``noise_level`` and ``n``, LRP's
epsilon and Integrated Gradients' ``n``; the result is a tidy DataFrame.

Run from the repository root::

    python examples/gridsearch_explainer.py
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import torch
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.preprocessing import StandardScaler
from skorch import NeuralNetClassifier
from torch import nn

from sknn_explain import LRP, IntegratedGradients, SmoothGrad
from sknn_explain.metrics import get_explanation_scorer
from sknn_explain.transformer import AttributionTransformer, TabularMLP


def train_net(X, y) -> NeuralNetClassifier:
    net = NeuralNetClassifier(
        TabularMLP, module__n_features=X.shape[1], module__n_outputs=2, module__hidden=32,
        criterion=nn.CrossEntropyLoss, optimizer=torch.optim.Adam, lr=0.01, max_epochs=60,
        batch_size=64, train_split=None, iterator_train__shuffle=True, verbose=0,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return net.fit(X.astype("float32"), y)


# %%
# Train the network once
# ----------------------
# Standardised breast_cancer features and a skorch MLP.

X, y = load_breast_cancer(return_X_y=True)
X = StandardScaler().fit_transform(X)
net = train_net(X, y)

# %%
# The grid and the scorers
# ------------------------
# Three explainers with their hyperparameters; three explanation-quality scorers.

param_grid = [
    {
        "explainer": [SmoothGrad(times_input=True, random_state=0)],
        "explainer__noise_level": [0.02, 0.1, 0.3, 1.0],
        "explainer__n": [10, 50],
    },
    {
        "explainer": [LRP(rule_name="epsilon")],
        "explainer__rule_param": [0.001, 0.1, 1.0, 10.0],
    },
    {
        "explainer": [IntegratedGradients()],
        "explainer__n": [5, 50],
    },
]
scoring = {
    "deletion": get_explanation_scorer("neg_deletion_auc"),
    "insertion": get_explanation_scorer("insertion_auc"),
    "faithfulness": get_explanation_scorer("faithfulness_correlation"),
}

# %%
# Search
# ------
# ``refit="deletion"``: the best candidate by deletion AUC is refitted on all rows.

search = GridSearchCV(
    AttributionTransformer(net, IntegratedGradients(), prefit=True),
    param_grid, scoring=scoring, refit="deletion", cv=KFold(3, shuffle=True, random_state=0),
).fit(X)

# %%
# Results
# -------
# A tidy table, best first (lowest deletion AUC).

results = pd.DataFrame(search.cv_results_)
table = pd.DataFrame({
    "method": [type(p["explainer"]).__name__ for p in results["params"]],
    "hyperparameters": [
        ", ".join(f"{k.split('__')[1]}={v}" for k, v in p.items() if "__" in k)
        for p in results["params"]
    ],
    "deletion_auc": -results["mean_test_deletion"],
    "insertion_auc": results["mean_test_insertion"],
    "faithfulness": results["mean_test_faithfulness"],
}).sort_values("deletion_auc")
with pd.option_context("display.width", 120, "display.precision", 3):
    print(table.to_string(index=False))
best = search.best_estimator_.explainer_
print(f"\nbest by deletion AUC: {best!r}")

# %%
# The candidates at a glance
# --------------------------

labels = table["method"] + " " + table["hyperparameters"]
ax = table.assign(candidate=labels).plot.barh(x="candidate", y="deletion_auc", legend=False)
ax.invert_yaxis()  # best on top
ax.set_xlabel("deletion AUC (lower is better)")
ax.set_ylabel("")
plt.tight_layout()
plt.show()
