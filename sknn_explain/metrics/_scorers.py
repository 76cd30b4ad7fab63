"""scikit-learn scorers for explanation quality: ``scorer(estimator, X, y=None)``.

A scorer finds the :class:`~sknn_explain.transformer.AttributionTransformer` in the
estimator (itself, a Pipeline step, or a search's ``best_estimator_``), asks it for its
:class:`ExplainedRows` and applies one metric function to them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ._checks import check_weights, to_numpy
from ._curves import deletion_auc, insertion_auc
from ._evaluation import ExplainFn, PredictFn
from ._irof import irof
from ._model_free import completeness_error, sparseness
from ._perturbation import faithfulness_correlation, infidelity, max_sensitivity
from ._region_perturbation import aopc


@dataclass
class ExplainedRows:
    """Everything a scorer needs about a fitted transformer's explanations of ``X``.

    Produced by ``AttributionTransformer.explained_rows(X)``: one row per explained
    (sample, output) pair - one per sample for a single target, ``n_classes`` per sample
    for ``target="all"``. The parameters are also the attributes.

    Parameters
    ----------
    X : ndarray of shape (m, n_features)
        The sample of each row.
    values : ndarray of shape (m, n_features)
        Its attributions.
    target : ndarray of shape (m,)
        Column of ``predict_fn``'s output that the row explains.
    goal : ndarray of shape (m,) or None
        The method's decomposition goal (None if it has none).
    sample_index : ndarray of shape (m,)
        Index of the row's sample in the original ``X``.
    predict_fn : callable
        ``predict_fn(X) -> (m, n_columns)``: the explained outputs.
    explain_fn : callable
        ``explain_fn(X, target) -> (m, n_features)``.
    reference : ndarray of shape (n_features,)
        Replacement values for "removed" features.
    scale : ndarray of shape (n_features,)
        Per-feature scale for noise / robustness perturbations.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.neural_network import MLPClassifier
    >>> from sknn_explain import AttributionTransformer, Gradient
    >>> X, y = load_iris(return_X_y=True)
    >>> mlp = MLPClassifier(hidden_layer_sizes=(4,), max_iter=20, random_state=0).fit(X, y)
    >>> tr = AttributionTransformer(mlp, Gradient(), prefit=True).fit(X, y)
    >>> rows = tr.explained_rows(X[:5])
    >>> rows.X.shape, rows.values.shape, rows.sample_index.tolist(), rows.goal
    ((5, 4), (5, 4), [0, 1, 2, 3, 4], None)
    """

    X: np.ndarray
    values: np.ndarray
    target: np.ndarray
    goal: np.ndarray | None
    sample_index: np.ndarray
    predict_fn: PredictFn
    explain_fn: ExplainFn
    reference: np.ndarray
    scale: np.ndarray


def _completeness_from_rows(rows: ExplainedRows, w: np.ndarray, **kwargs) -> float:
    goal = rows.goal
    if goal is None:  # methods without a goal: measured against f(x) - f(reference)
        out = to_numpy(rows.predict_fn(np.vstack([rows.X, rows.reference[None, :]])))
        m = rows.X.shape[0]
        goal = out[np.arange(m), rows.target] - out[m, rows.target]
    return completeness_error(rows.values, goal, sample_weight=w, **kwargs)


def _with_predict(func: Callable[..., float], *, uses_scale: bool = False):
    """Evaluator of a metric ``func(predict_fn, X, attributions, ...)`` on explained rows.

    The reference (and for ``uses_scale`` the perturbation scale) default to the
    transformer's.
    """

    def run(rows: ExplainedRows, w: np.ndarray, **kwargs) -> float:
        kwargs.setdefault("reference", rows.reference)
        if uses_scale:
            kwargs.setdefault("scale", rows.scale)
        return func(
            rows.predict_fn, rows.X, rows.values, target=rows.target, sample_weight=w, **kwargs
        )

    return run


def _sensitivity_from_rows(rows: ExplainedRows, w: np.ndarray, **kwargs) -> float:
    kwargs.setdefault("scale", rows.scale)
    return max_sensitivity(
        rows.explain_fn, rows.X, rows.values, target=rows.target, sample_weight=w, **kwargs
    )


def _sparseness_from_rows(rows: ExplainedRows, w: np.ndarray, **kwargs) -> float:
    return sparseness(rows.values, sample_weight=w, **kwargs)


def _irof_from_rows(rows: ExplainedRows, w: np.ndarray, **kwargs) -> float:
    kwargs.setdefault("perturbation", "reference")  # a row's own mean means nothing tabular
    return _with_predict(irof)(rows, w, **kwargs)


def _aopc_from_rows(rows: ExplainedRows, w: np.ndarray, **kwargs) -> float:
    if kwargs.get("order", "morf") != "morf":  # LeRF AOPC is lower-is-better
        raise ValueError("the 'aopc' scorer is MoRF AOPC (higher is better); order must be "
                         "'morf'")
    return _with_predict(aopc)(rows, w, **kwargs)


#: metric name -> (evaluator, greater_is_better, uses random_state)
_METRICS: dict[str, tuple[Callable[..., float], bool, bool]] = {
    "completeness_error": (_completeness_from_rows, False, False),
    "deletion_auc": (_with_predict(deletion_auc), False, False),
    "insertion_auc": (_with_predict(insertion_auc), True, False),
    "faithfulness_correlation": (_with_predict(faithfulness_correlation), True, True),
    "infidelity": (_with_predict(infidelity, uses_scale=True), False, True),
    "max_sensitivity": (_sensitivity_from_rows, False, True),
    "sparseness": (_sparseness_from_rows, True, False),
    "aopc": (_aopc_from_rows, True, True),
    "irof": (_irof_from_rows, True, True),
}


def _locate(estimator: object, X: object) -> tuple[object, object]:
    """The AttributionTransformer in ``estimator`` and ``X`` as that step receives it."""
    if hasattr(estimator, "explained_rows"):
        return estimator, X
    steps = getattr(estimator, "steps", None)
    if isinstance(steps, list):
        for i, (_, step) in enumerate(steps):
            if hasattr(step, "explained_rows"):
                return step, (estimator[:i].transform(X) if i > 0 else X)
    best = getattr(estimator, "best_estimator_", None)
    if best is not None:
        return _locate(best, X)
    raise TypeError(
        f"explanation scorers need a fitted AttributionTransformer or a Pipeline containing "
        f"one, got {type(estimator).__name__}"
    )


class ExplanationScorer:
    """A scikit-learn scorer ``scorer(estimator, X, y=None)`` for explanation quality.

    Use :func:`make_explanation_scorer` or :func:`get_explanation_scorer` to build one.
    ``estimator`` is a fitted :class:`~sknn_explain.transformer.AttributionTransformer`, a
    Pipeline containing one (``X`` is passed through the steps before it) or a fitted
    search whose ``best_estimator_`` is one of those. ``y`` is ignored: the metrics judge
    the explanation of the model, not the model. Returns ``sign * metric`` so that higher
    is better.

    Parameters
    ----------
    metric : str
        A metric name accepted by :func:`make_explanation_scorer`.
    sign : {1, -1}
        -1 for metrics where lower is better.
    kwargs : dict
        Keyword arguments of the metric function.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.neural_network import MLPClassifier
    >>> from sknn_explain import AttributionTransformer, Gradient
    >>> from sknn_explain.metrics import make_explanation_scorer
    >>> X, y = load_iris(return_X_y=True)
    >>> mlp = MLPClassifier(hidden_layer_sizes=(4,), max_iter=20, random_state=0).fit(X, y)
    >>> tr = AttributionTransformer(mlp, Gradient(), prefit=True).fit(X, y)
    >>> scorer = make_explanation_scorer("deletion_auc")
    >>> scorer
    ExplanationScorer('neg_deletion_auc')
    >>> isinstance(scorer(tr, X[:10]), float)
    True
    """

    def __init__(self, metric: str, sign: int, kwargs: dict) -> None:
        self.metric = metric
        self.sign = sign
        self.kwargs = kwargs

    def __call__(
        self, estimator: object, X: object, y: object = None, sample_weight: object = None
    ) -> float:
        transformer, Xt = _locate(estimator, X)
        rows = transformer.explained_rows(Xt)
        n = int(rows.sample_index.max()) + 1 if rows.sample_index.size else 0
        w = check_weights(sample_weight, n)[rows.sample_index]
        func = _METRICS[self.metric][0]
        return self.sign * func(rows, w, **self.kwargs)

    def __repr__(self) -> str:
        args = "".join(f", {k}={v!r}" for k, v in self.kwargs.items())
        prefix = "" if self.sign > 0 else "neg_"
        return f"ExplanationScorer('{prefix}{self.metric}'{args})"


def make_explanation_scorer(metric: str, **kwargs: object) -> ExplanationScorer:
    """Build a scorer for an explanation-quality metric.

    Parameters
    ----------
    metric : str
        ``"completeness_error"``, ``"deletion_auc"``, ``"insertion_auc"``,
        ``"faithfulness_correlation"``, ``"infidelity"``, ``"max_sensitivity"``,
        ``"sparseness"``, ``"aopc"`` (MoRF region perturbation) or ``"irof"``.
        The reference (default: the transformer's ``reference_``, the mean
        of its training data) and the perturbation scale (its ``scale_``) come from the
        transformer unless given.
    **kwargs
        Keyword arguments of the metric function (e.g. ``n_steps=10``,
        ``perturbation="noise"``). For the random metrics ``random_state`` defaults to 0,
        so every candidate of a grid search is judged on the same perturbations.

    Returns
    -------
    ExplanationScorer
        Returns the metric for "higher is better" metrics and its negative otherwise.

    Examples
    --------
    >>> from sknn_explain.metrics import make_explanation_scorer
    >>> make_explanation_scorer("deletion_auc", n_steps=10)
    ExplanationScorer('neg_deletion_auc', n_steps=10)
    """
    if metric not in _METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {sorted(_METRICS)}")
    _, greater, random = _METRICS[metric]
    if random:
        kwargs.setdefault("random_state", 0)
    for bad in ("target", "sample_weight", "explain_fn", "predict_fn", "X", "attributions"):
        if bad in kwargs:
            raise TypeError(f"{bad} is set by the scorer and cannot be given")
    return ExplanationScorer(metric, 1 if greater else -1, dict(kwargs))


def get_explanation_scorer_names() -> list[str]:
    """Names accepted by :func:`get_explanation_scorer` and ``AttributionTransformer(scoring=)``.

    Returns
    -------
    list of str
        The names, sorted; ``neg_`` marks metrics where lower is better (negated).

    Examples
    --------
    >>> from sknn_explain.metrics import get_explanation_scorer_names
    >>> "neg_deletion_auc" in get_explanation_scorer_names()
    True
    """
    return sorted(name if greater else f"neg_{name}" for name, (_, greater, _) in
                  _METRICS.items())


def get_explanation_scorer(name: str | ExplanationScorer) -> ExplanationScorer:
    """A scorer by its scikit-learn-style name (``"neg_deletion_auc"``, ``"insertion_auc"``...).

    Parameters
    ----------
    name : str or ExplanationScorer
        One of :func:`get_explanation_scorer_names`; a scorer is returned unchanged.

    Returns
    -------
    ExplanationScorer

    Examples
    --------
    >>> from sknn_explain.metrics import get_explanation_scorer
    >>> get_explanation_scorer("faithfulness_correlation")
    ExplanationScorer('faithfulness_correlation', random_state=0)
    """
    if isinstance(name, ExplanationScorer):
        return name
    if not isinstance(name, str):
        raise TypeError(f"scorer name must be a string, got {type(name).__name__}")
    names = get_explanation_scorer_names()
    if name not in names:
        raise ValueError(f"unknown explanation scorer {name!r}; choose one of {names}")
    metric = name[4:] if name.startswith("neg_") else name
    return make_explanation_scorer(metric)

