"""Faithfulness of coordinate-dependent methods through a scaler pipeline, by space.

    python benchmarks/space_faithfulness.py [network|raw]

Prints one markdown row per method: faithfulness correlation (60 rows of breast cancer)
through the pipeline and for the same MLP on the scaled data (docs/methods.md).
"""
import sys
import warnings

from sklearn.datasets import load_breast_cancer
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import sknn_explain as skx
from sknn_explain import metrics

warnings.simplefilter("ignore")
space = sys.argv[1] if len(sys.argv) > 1 else None
X, y = load_breast_cancer(return_X_y=True)
pipe = make_pipeline(StandardScaler(), MLPClassifier((32,), max_iter=500, random_state=0)).fit(X, y)
Xs = pipe[0].transform(X)
net = pipe[-1]
rows = X[:60]
kw = {} if space is None else {"space": space}
for name, make in [
    ("Gradient(times_input=True)", lambda **k: skx.Gradient(times_input=True, **k)),
    ("SmoothGrad(x input, noise 0.01)", lambda **k: skx.SmoothGrad(
        times_input=True, noise_level=0.01, random_state=0, **k)),
    ("IntegratedGradients()", lambda **k: skx.IntegratedGradients(**k)),
]:
    a_pipe = make(dtype="double", **kw).fit(pipe, X).explain(rows).values[..., 0]
    a_net = make(dtype="double").fit(net, Xs).explain(pipe[0].transform(rows)).values[..., 0]
    f_pipe = metrics.faithfulness_correlation(
        lambda Z: pipe.predict_proba(Z)[:, 1], rows, a_pipe, random_state=0)
    f_net = metrics.faithfulness_correlation(
        lambda Z: net.predict_proba(Z)[:, 1], pipe[0].transform(rows), a_net, random_state=0)
    print(f"| {name} | {f_pipe:.2f} | {f_net:.2f} |")
