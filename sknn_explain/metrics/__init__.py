"""Explanation-quality metrics and scikit-learn scorers.

Two layers:

* **Functions on arrays** (:func:`deletion_auc`, :func:`insertion_auc`,
  :func:`faithfulness_correlation`, :func:`infidelity`, :func:`max_sensitivity`,
  :func:`completeness_error`, :func:`sparseness`, plus the raw :func:`deletion_curve` /
  :func:`insertion_curve`). They take tabular data ``X`` ``(n, p)``, attributions ``(n, p)``
  and a prediction function ``predict_fn(X) -> (m,) or (m, k)`` (e.g. a fitted model's
  ``predict_proba`` or :meth:`AttributionTransformer.explained_output`), and call the model on
  all perturbed rows in a few large batches: no Python loop over samples, steps or
  perturbations.
* **Scorers** (:func:`get_explanation_scorer`, :func:`make_explanation_scorer`):
  ``scorer(estimator, X, y=None)`` for a fitted
  :class:`~sknn_explain.transformer.AttributionTransformer` or a Pipeline containing one, so
  ``GridSearchCV(..., scoring=get_explanation_scorer("neg_deletion_auc"))`` tunes explainer
  hyperparameters. As in scikit-learn, higher is always better: metrics where lower is
  better are negated and named ``neg_*``.

Definitions (``f`` is the explained output, ``r`` the reference, ``a`` the attributions):

* **deletion / insertion** (Petsiuk et al., 2018; Samek et al., 2017): features are
  replaced by ``r`` (deletion) or restored from ``r`` to ``x`` (insertion), most relevant
  first: in order of decreasing attribution when ``f(x) >= f(r)`` (the usual case for the
  predicted class), of increasing attribution when ``f(x) < f(r)``. The area under ``f``
  over the fraction of features changed is normalised by ``f(x) - f(r)``, so deletion
  runs from 1 to 0 and insertion from 0 to 1. Lower deletion AUC and higher insertion AUC
  are better; exact attributions of a linear model attain the best possible values.
* **completeness error**: ``sum_i |sum_j a_ij - goal_i| / sum_i |goal_i|`` where the goal
  is the method's decomposition goal (e.g. ``f(x) - f(x_ref)``).
* **faithfulness correlation** (Bhatt et al., 2020): Pearson correlation, over random
  feature subsets ``S``, between ``sum_{j in S} a_j`` and ``f(x) - f(x_S <- r_S)``.
* **infidelity** (Yeh et al., 2019): ``E[(I . a - (f(x) - f(x - I)))^2]`` with ``I`` a
  random subset of ``x - r`` (``perturbation="reference"``, for attributions that sum to
  an output difference: IG, DeepLift, SHAP, LRP, Gradient x Input) or Gaussian noise
  (``perturbation="noise"``, for plain gradients).
* **max-sensitivity** (Yeh et al., 2019): ``max ||a(y) - a(x)|| / ||a(x)||`` over ``y``
  drawn uniformly from an L-infinity ball around ``x``.
* **sparseness** (Chalasani et al., 2020): Gini index of ``|a|`` per sample, 0 for equal
  attributions, ``(p - 1) / p`` when one feature gets everything.

Evaluation on inputs of any rank (tabular ``(n, p)``, signals ``(n, C, L)``, images
``(n, C, H, W)``, channels first; ``predict_fn`` receives batches of that shape):

* **region perturbation / pixel flipping** (Bach et al., 2015; Samek et al., 2017):
  :func:`region_perturbation_curve` removes regions (grid cells of ``region_size`` or
  ``segments``) cumulatively, MoRF / LeRF / random, replaced by a reference, the sample's
  mean or uniform noise; :func:`aopc` is the area over that curve.
* **ROAD** (Rong et al., 2022): :func:`road_curve` imputes the removed positions with
  :func:`noisy_linear_imputation` instead of a constant (signals and images).
* **IROF** (Rieger & Hansen, 2020): :func:`irof_curve` / :func:`irof` remove segments by
  mean relevance; the area over ``f(x^(k)) / f(x)``.
* **MPRT** (Adebayo et al., 2018): :func:`model_parameter_randomisation` re-initialises a
  private copy's layers from the output down and reports the Spearman rank correlation
  (:func:`spearman_similarity`) and / or SSIM (:func:`ssim_similarity`) of the attributions
  per layer and sample as a tidy DataFrame (plot it with
  :func:`sknn_explain.plotting.plot_randomisation`; curves with
  :func:`sknn_explain.plotting.plot_perturbation_curves`).

Modules: ``_checks`` (input checks), ``_evaluation`` (batched model calls), ``_curves``
(deletion / insertion), ``_perturbation`` (faithfulness, infidelity, max-sensitivity),
``_model_free`` (completeness, sparseness), ``_regions`` (inputs of any rank, regions and
their removal), ``_region_perturbation`` (region perturbation, AOPC), ``_road``, ``_irof``,
``_randomisation`` (MPRT), ``_scorers`` (the scikit-learn scorers).
"""

from ._curves import deletion_auc, deletion_curve, insertion_auc, insertion_curve
from ._irof import irof, irof_curve
from ._model_free import completeness_error, sparseness
from ._perturbation import faithfulness_correlation, infidelity, max_sensitivity
from ._randomisation import (
    model_parameter_randomisation,
    randomisable_layers,
    spearman_similarity,
    ssim_similarity,
)
from ._region_perturbation import aopc, region_perturbation_curve
from ._road import noisy_linear_imputation, road_curve
from ._scorers import (
    ExplainedRows,
    ExplanationScorer,
    get_explanation_scorer,
    get_explanation_scorer_names,
    make_explanation_scorer,
)

__all__ = [
    "ExplainedRows",
    "ExplanationScorer",
    "aopc",
    "completeness_error",
    "deletion_auc",
    "deletion_curve",
    "faithfulness_correlation",
    "get_explanation_scorer",
    "get_explanation_scorer_names",
    "infidelity",
    "insertion_auc",
    "insertion_curve",
    "irof",
    "irof_curve",
    "make_explanation_scorer",
    "max_sensitivity",
    "model_parameter_randomisation",
    "noisy_linear_imputation",
    "randomisable_layers",
    "region_perturbation_curve",
    "road_curve",
    "sparseness",
    "spearman_similarity",
    "ssim_similarity",
]
