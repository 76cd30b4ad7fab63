"""
Converting torch, skorch, scikit-learn and dict models
======================================================

Every explainer works on one layer graph, built by :func:`sknn_explain.convert.convert` from a
torch module (traced with ``torch.fx``), a skorch net, a scikit-learn MLP or Pipeline, or
innsight's "model as list" dictionary. This example converts each kind and explains it.

Run from the repository root::

    python examples/convert_models.py
"""

# %%
# A non-sequential torch model
# ----------------------------
# A residual block, two inputs (an image and a table), a concatenation and two output
# layers.

import warnings

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.datasets import load_breast_cancer
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from sknn_explain import Gradient, IntegratedGradients
from sknn_explain.convert import UnsupportedLayerError, convert


class ResidualNet(nn.Module):
    """A non-sequential torch model: residual block, two inputs, concatenation, two outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)
        self.conv2 = nn.Conv2d(3, 3, 3, padding=1)
        self.tab = nn.Linear(4, 5)
        self.cls = nn.Linear(3 + 5, 2)
        self.reg = nn.Linear(3 + 5, 1)

    def forward(self, img, tab):
        h = img + self.conv2(F.relu(self.bn(self.conv1(img))))  # x + f(x)
        h = torch.cat([h.mean((2, 3)), torch.tanh(self.tab(tab))], dim=1)
        return torch.softmax(self.cls(h), dim=1), self.reg(h)


# %%
# Convert and explain it
# ----------------------
# ``input_shape`` gives one shape per input (without the batch axis); the graph prints
# its layers. ``output_idx`` selects nodes per output layer.

torch.manual_seed(0)
net = ResidualNet().eval()
graph = convert(net, input_shape=[(3, 8, 8), (4,)])
print(graph, end="\n\n")
img, tab = torch.randn(2, 3, 8, 8), torch.randn(2, 4)
res = Gradient().fit(net, [img, tab]).explain([img, tab], output_idx=[[0, 1], [0]])
print("gradient shapes:", [[v.shape for v in layer] for layer in res.values], end="\n\n")

# %%
# A scikit-learn Pipeline
# -----------------------
# ``convert()`` folds the scaler into the graph; the explainers run it first and explain the
# network's inputs, per DataFrame column.

data = load_breast_cancer(as_frame=True)
X, y = data.data.iloc[:, :8], data.target.map({0: "malignant", 1: "benign"})
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    pipe = make_pipeline(StandardScaler(), MLPClassifier((16,), max_iter=300,
                                                         random_state=0)).fit(X, y)
print(convert(pipe), end="\n\n")
ig = IntegratedGradients(n=64).fit(pipe, X).explain(X.iloc[:3], output_label="malignant")
top = pd.Series(np.abs(ig.values[..., 0]).mean(0), index=X.columns)
print("mean |IG| for 'malignant' (binary MLP: one output unit, classes_[1]):")
print(top.sort_values(ascending=False).head(4).round(4), end="\n\n")

# %%
# innsight's "model as list"
# --------------------------
# A graph turns into a plain dictionary and back; the round trip computes the same.

d = graph.to_dict()
print("dict layer types:", [layer["type"] for layer in d["layers"]])
again = convert(d)
with torch.no_grad():
    diff = max(float((a - b).abs().max()) for a, b in zip(graph(img, tab), again(img, tab)))
print(f"round trip max difference: {diff:.1e}\n")

# %%
# Unsupported layers
# ------------------
# They are named with their position in the error; the gradient family still works on
# the module itself.

lstm = nn.Sequential(nn.LSTM(4, 4))
try:
    convert(lstm, input_shape=(5, 4))
except UnsupportedLayerError as err:
    print("UnsupportedLayerError:", str(err).split(". The gradient")[0])
