"""
Tabular data: perturbation methods and permutation importance
=============================================================

Methods that only call the model: FeatureAblation, Occlusion and ShapleyValueSampling
explain a scikit-learn MLP on breast_cancer by replacing features with a baseline (captum's
definitions, all classes from the same model calls). Permutation importance gives the global
view, through :class:`~sknn_explain.AttributionTransformer`. Deconvolution, a
modified-backward method, is shown for comparison.

Run from the repository root::

    python examples/perturbation_methods.py
"""

# %%
# Data and model
# --------------
# A ``StandardScaler`` and an ``MLPClassifier`` in one Pipeline; the explainers call the
# whole pipeline on the raw columns.

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import sknn_explain as skx

data = load_breast_cancer(as_frame=True)
X_train, X_test, y_train, y_test = train_test_split(
    data.data, data.target, test_size=0.25, random_state=0)
model = make_pipeline(StandardScaler(), MLPClassifier((16,), max_iter=400, random_state=0))
model.fit(X_train, y_train)
print(f"test accuracy {model.score(X_test, y_test):.3f}")
rows = X_test.iloc[:20]

# %%
# FeatureAblation: one feature (or group) at a time
# -------------------------------------------------
# ``R_i = f(x) - f(x with feature i at the baseline)``, here the training mean
# (``baselines="mean"`` takes the mean of ``X_ref``). ``feature_mask`` groups features: the
# "mean", "error" and "worst" variants of each measurement are ablated together.

ablation = skx.FeatureAblation(baselines="mean").fit(model, X_train)
single = ablation.explain(rows)
groups = np.arange(30) % 10  # column k, k + 10 and k + 20 describe the same measurement
grouped = skx.FeatureAblation(feature_mask=groups, baselines="mean").fit(model, X_train)
per_group = np.abs(grouped.explain(rows).values[:, :10, 0]).mean(0)  # one column per group
names = [name.replace("mean ", "") for name in X_train.columns[:10]]
print("measurements that matter most:", [names[k] for k in np.argsort(per_group)[::-1][:3]])
print("single features:", single.values.shape)

# %%
# Occlusion: a sliding window over neighbouring columns
# -----------------------------------------------------
# A window of 3 columns, stride 1, set to the mean; each feature gets the mean score drop of
# the windows that cover it.

occlusion = skx.Occlusion(sliding_window_shapes=(3,), strides=(1,), baselines="mean")
print(occlusion.fit(model, X_train).explain(rows).values.shape)

# %%
# ShapleyValueSampling: Shapley values from sampled permutations
# --------------------------------------------------------------
# The average marginal contribution of each feature over ``n_samples`` random orders
# (antithetic: each order also reversed). Efficiency holds exactly for every sample: the
# values add up to ``f(x) - f(baseline)``.

shapley = skx.ShapleyValueSampling(n_samples=20, antithetic=True, baselines="mean",
                                   random_state=0).fit(model, X_train)
sv = shapley.explain(rows)
baseline_row = X_train.mean().to_frame().T
f_baseline = shapley.explain(baseline_row).predictions[0]
print("max |sum - (f(x) - f(baseline))| =",
      float(np.abs(sv.values.sum(axis=1) - (sv.predictions - f_baseline)).max()))
sv.plot_global()

# %%
# Deconvolution for comparison
# ----------------------------
# A gradient with each ReLU's backward pass replaced by ``max(grad, 0)``; cheap (one
# backward pass for all classes) but not a decomposition of the output.

deconv = skx.Deconvolution().fit(model).explain(rows)
corr = np.corrcoef(np.abs(deconv.values).mean(0).ravel(),
                   np.abs(sv.values).mean(0).ravel())[0, 1]
print(f"correlation of mean |attribution|, Deconvolution vs Shapley: {corr:.2f}")

# %%
# Global: permutation importance
# ------------------------------
# ``importance="permutation"`` makes ``feature_importances_`` scikit-learn's permutation
# importance of the fitted model (the drop in accuracy when one column is shuffled).

transformer = skx.AttributionTransformer(model, skx.FeatureAblation(baselines="mean"),
                                         prefit=True, importance="permutation", n_repeats=3,
                                         random_state=0).fit(X_train, y_train)
top = np.argsort(transformer.feature_importances_)[::-1][:5]
print("top features by permutation importance:", list(X_train.columns[top]))
