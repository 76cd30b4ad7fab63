"""Model-agnostic explainers: :class:`LIME` and :class:`KernelSHAP`.

Both only *evaluate* the model, so they explain torch modules, skorch nets, converted graphs,
any fitted scikit-learn estimator (``predict_proba`` / ``decision_function`` / ``predict``,
neural or not) and plain prediction functions alike.

Interpretable features
    Tabular columns, or grid segments of signals / images (see
    :mod:`sknn_explain._segmentation`; custom label arrays via ``segments``). A binary vector
    ``z`` switches features on (value of the explained sample ``x``) or off (value of a
    reference). A feature's attribution is spread evenly over its input elements, so the
    attributions keep the input shape and summing them over a segment gives the feature's
    value.

Kernel SHAP (Lundberg & Lee, 2017)
    ``v(z) = mean_b f(z * x + (1 - z) * b)`` over the background rows ``b`` (interventional
    expectation), solved as a weighted least-squares problem with the Shapley kernel weights
    and the efficiency constraint ``sum(phi) = link(f(x)) - link(mean f(X_ref))`` enforced
    exactly by eliminating one variable (as ``shap`` does). All ``2^M - 2`` coalitions are
    enumerated when ``M <= 12`` (``n_samples="auto"``) or when ``n_samples >= 2^M - 2``; the
    result then *is* the exact Shapley value. Otherwise coalition sizes are enumerated or
    sampled with complement pairs exactly like ``shap.KernelExplainer`` (``sampling="shap"``),
    or (``sampling="stratified"``) complement pairs are drawn without replacement within each
    subset size, the budget split by the sizes' exact kernel mass: lower error for the same
    evaluations, a delta-method standard error per attribution, and ``tol`` to stop early.

LIME (Ribeiro et al., 2016)
    Perturbations ``z`` switch off a uniformly drawn number (``1..M``) of random features;
    the first perturbation is ``x`` itself. Off features take the mean of ``X_ref``
    (``baseline="mean"``) or the values of one random row of ``X_ref`` per perturbation
    (``baseline="sample"``). Kernel ``pi(z) = exp(-d(z)^2 / (2 kernel_width^2))`` (lime's
    ``sqrt(exp(-d^2 / w^2))``) on the cosine distance ``d(z) = 1 - sqrt(|z| / M)`` between
    ``z`` and the all-on vector (lime's image / text distance). The surrogate is
    ``sklearn.linear_model.Ridge(alpha).fit(z, f, sample_weight=pi)``, computed in closed
    form for all samples and outputs at once.

Mixed-type DataFrames
    Fitted on a scikit-learn estimator / Pipeline (or a prediction function) with a pandas
    DataFrame ``X_ref`` holding text, ``category``, datetime or missing values (anything a
    float array cannot hold exactly), both explainers work on the raw columns: each column
    is coded by its distinct values over ``X_ref`` and ``X`` (a missing value is a value of
    its own), coalitions swap codes, and every model call gets a DataFrame with the user's
    columns, column order and dtypes (same categories, bools stay bool, NaN stays NaN), so
    the pipeline does its own encoding and imputation. One attribution per original column.
    ``X`` must then be a DataFrame with the same columns in the same order; values unseen in
    ``X_ref`` are allowed as far as the pipeline accepts them (a pipeline that refuses an
    unknown category raises a ValueError naming the column and value).
    ``Attribution.inputs`` holds the raw values (an object array). LIME needs
    ``baseline="sample"`` there (a mean of text has no meaning).

Both explainers draw one set of coalitions / perturbations per ``explain`` call and use it
for every sample, so one weighted least-squares solve serves all samples and outputs, and a
sample's attributions do not depend on which other samples are explained with it (for an
int ``random_state``).

Layout: :mod:`._coalitions` draws the coalitions / perturbations and their kernel weights,
:mod:`._masking` evaluates the model on masked inputs, :mod:`._solvers` solves the weighted
regressions, :mod:`._estimator` holds what both estimators share (model adapter, reference
data, interpretable features) and :mod:`._kernel_shap` / :mod:`._lime` the estimators.
"""

from ._coalitions import kernel_shap_coalitions, lime_perturbations
from ._kernel_shap import KernelSHAP
from ._lime import LIME
from ._masking import masked_outputs
from ._solvers import constrained_wls, weighted_ridge

__all__ = [
    "KernelSHAP",
    "LIME",
    "constrained_wls",
    "kernel_shap_coalitions",
    "lime_perturbations",
    "masked_outputs",
    "weighted_ridge",
]
