"""AttributionTransformer: attributions of a network as features, importances and scores.

:class:`AttributionTransformer` fits a network (a skorch net, a scikit-learn MLP or a
Pipeline of scalers + MLP) together with an explainer, and turns data into attributions.
It is a regular scikit-learn transformer, so

* ``Pipeline(StandardScaler(), AttributionTransformer(net), LogisticRegression())`` learns
  on attributions,
* ``SelectFromModel(AttributionTransformer(net))`` keeps the features with the largest mean
  ``|attribution|`` (``feature_importances_``),
* ``GridSearchCV(AttributionTransformer(net, SmoothGrad(), prefit=True),
  {"explainer__noise_level": [...]})`` tunes explainer hyperparameters by an
  explanation-quality ``score`` (see :mod:`sknn_explain.metrics`).
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, MetaEstimatorMixin, TransformerMixin, clone
from sklearn.frozen import FrozenEstimator
from sklearn.utils import check_random_state, get_tags
from sklearn.utils.validation import (
    _check_feature_names_in,
    check_array,
    check_consistent_length,
    check_is_fitted,
    validate_data,
)

from ._batching import auto_batch_size
from ._default_network import TabularMLP, default_estimator
from ._model import call_forward, predict
from ._prepare import encode
from ._validation import BOOLEAN, POSITIVE_INT, StrOptions
from ._wrapped_estimator import (
    check_fitted_estimator,
    fit_estimator,
    permutation_importances,
    safe_is_classifier,
)
from .dask import transform as dask_transform
from .explainers import Explainer, IntegratedGradients
from .explainers._predict_fn import needs_raw_columns
from .explainers.base import is_dask_collection, unfitted_on_error
from .metrics import ExplainedRows, get_explanation_scorer

__all__ = ["AttributionTransformer", "TabularMLP", "default_estimator"]


class AttributionTransformer(MetaEstimatorMixin, TransformerMixin, BaseEstimator):
    """Attributions of a neural network as features, importances and quality scores.

    ``fit(X, y)`` fits (a clone of) ``estimator`` and then the explainer, with the training
    data as reference data (the baseline of Integrated Gradients is their mean, Expected
    Gradients / DeepSHAP / KernelSHAP draw from them). ``transform(X)`` returns the
    attributions of ``X`` as a feature matrix; ``score(X)`` rates the explanations
    (higher is better) so a ``GridSearchCV`` can tune the explainer.

    Parameters
    ----------
    estimator : skorch net, torch module, scikit-learn MLP / Pipeline, or None
        The network. None trains :func:`default_estimator` (``StandardScaler`` + a small
        scikit-learn MLP; classifier for class labels, regressor for continuous targets,
        seeded by ``random_state``). Anything ``Explainer.fit``
        accepts works with ``prefit=True``; with ``prefit=False`` it must have ``fit``.
        skorch nets receive ``X`` as float32 and, for classifiers, the labels encoded as
        ``0..n_classes-1`` (int64; float 0/1 for ``NeuralNetBinaryClassifier``); regressors
        float32 targets of shape ``(n, n_targets)``.
    explainer : Explainer or None
        Attribution method (cloned). None: ``IntegratedGradients()`` (baseline = mean of
        the training data).
    target : "predicted", "all", or a class label / output index, default="predicted"
        What to explain. "predicted": for each sample the class the model predicts (the
        argmax of the explained outputs; the single output of a regressor); one column per
        feature. "all": every class (output); one column per feature and class, named
        ``f"{feature}__{class}"``. A class label (classifiers) or an output index
        (regressors): that output for every sample. For a binary classifier with a single
        logit, class 0 is explained by the negated logit, so its attributions are exactly
        the negatives of class 1's: "all" then emits class 1's columns only.
    prefit : bool, default=False
        Use ``estimator`` as it is (already fitted; not cloned, not refitted). ``fit(X)``
        then only fits the explainer (``y`` may be None) - the fast way to tune an
        explainer with ``GridSearchCV``: ``clone`` (and so every search / cross-validation
        tool) shares the fitted estimator instead of cloning it into an unfitted one. An
        estimator wrapped in :class:`sklearn.frozen.FrozenEstimator` is used the same way.
    scoring : str or callable, default="neg_deletion_auc"
        Metric of :meth:`score`: a name from
        :func:`~sknn_explain.metrics.get_explanation_scorer_names` or a callable
        ``scorer(transformer, X, y)``.
    max_reference : int, optional
        Give the explainer at most this many training rows as reference data (a random
        subset); None gives all. ``reference_`` is always the mean of all rows.
    random_state : int, RandomState instance or None
        Seeds the default estimator, the fit of skorch estimators (torch's global RNG is
        forked for the fit and left as it was) and the ``max_reference`` subset. Other
        scikit-learn estimators use their own ``random_state``. With
        ``importance="permutation"`` it is also the ``random_state`` of
        :func:`sklearn.inspection.permutation_importance`.
    importance : {"attribution", "permutation"}, default="attribution"
        What ``feature_importances_`` measures. "attribution": the mean ``|attribution|``
        per feature on the training data. "permutation": global permutation importance, the
        mean over ``n_repeats`` of the drop in the fitted estimator's own ``score`` (accuracy
        for classifiers, R^2 for regressors) on the training data when one column is
        shuffled - exactly ``sklearn.inspection.permutation_importance(estimator_, X, y,
        n_repeats=n_repeats, random_state=random_state).importances_mean``. It uses the
        model's predictions, not the explainer; it needs ``y`` at fit and an estimator with
        a ``score`` method.
    n_repeats : int, default=5
        Number of column shuffles per feature for ``importance="permutation"`` (ignored
        for "attribution").

    Attributes
    ----------
    estimator_ : object
        The fitted network (``estimator`` itself with ``prefit=True``).
    explainer_ : Explainer
        The fitted explainer.
    classes_ : ndarray
        Class labels (classifiers only).
    output_names_ : list
        Names of the explained output columns (class labels, or ``Y1..`` for regressors).
    reference_ : ndarray of shape (n_features_in_,)
        Mean of the training data: the replacement value of the deletion / insertion
        metrics.
    scale_ : ndarray of shape (n_features_in_,)
        Standard deviation of the training data: scale of the noise / robustness metrics.
    feature_importances_ : ndarray of shape (n_features_in_,)
        Mean ``|attribution|`` per feature on the training data (averaged over classes for
        ``target="all"``), or the permutation importance for ``importance="permutation"``.
        Computed on first access (free after ``fit_transform`` for "attribution") and
        cached, so a grid search that never reads it does not pay for it.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when ``X`` had string column names.

    See Also
    --------
    sknn_explain.metrics : the metrics behind :meth:`score`.

    Notes
    -----
    ``transform`` explains all rows of ``X`` in one explainer call (chunked internally by
    the explainer's ``batch_size``). Deterministic explainers (Gradient,
    IntegratedGradients, LRP, DeepLift, ConnectionWeights) give the same attributions for
    a row whatever batch it comes in; stochastic ones with a fixed ``random_state``
    (SmoothGrad, ExpectedGradients, DeepSHAP's subset, LIME, KernelSHAP) are reproducible
    for the same ``X`` but their random draws - and SmoothGrad's noise scale, which is
    relative to the batch's range - depend on the batch.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_iris
    >>> from sknn_explain import Gradient
    >>> from sknn_explain.transformer import AttributionTransformer
    >>> X, y = load_iris(return_X_y=True)
    >>> tr = AttributionTransformer(explainer=Gradient(times_input=True), random_state=0)
    >>> tr.fit_transform(X, y).shape
    (150, 4)
    >>> tr.set_params(target="all").fit(X, y).get_feature_names_out()[:3].tolist()
    ['x0__0', 'x0__1', 'x0__2']
    >>> tr.feature_importances_.shape
    (4,)
    """

    def __init__(
        self,
        estimator=None,
        explainer=None,
        target="predicted",
        prefit=False,
        scoring="neg_deletion_auc",
        max_reference=None,
        random_state=None,
        importance="attribution",
        n_repeats=5,
    ):
        self.estimator = estimator
        self.explainer = explainer
        self.target = target
        self.prefit = prefit
        self.scoring = scoring
        self.max_reference = max_reference
        self.random_state = random_state
        self.importance = importance
        self.n_repeats = n_repeats

    # ------------------------------------------------------------------ validation
    _parameter_constraints: dict = {
        "estimator": "no_validation",  # any estimator / module; checked when it is fitted
        "explainer": [Explainer, None],
        "target": "no_validation",  # a class label or output index: checked at fit
        "prefit": BOOLEAN,
        "scoring": [str, callable],
        "max_reference": [*POSITIVE_INT, None],
        "random_state": ["random_state"],
        "importance": [StrOptions({"attribution", "permutation"})],
        "n_repeats": POSITIVE_INT,
    }

    def _check_params(self) -> None:
        self._validate_params()
        if isinstance(self.scoring, str):
            get_explanation_scorer(self.scoring)
        if isinstance(self.target, (list, tuple, dict, set, np.ndarray)):
            raise TypeError(
                "target must be 'predicted', 'all', or one class label / output index, got a "
                f"{type(self.target).__name__}"
            )

    def _uses_fitted_estimator(self) -> bool:
        return bool(self.prefit) or isinstance(self.estimator, FrozenEstimator)

    def __sklearn_clone__(self) -> AttributionTransformer:
        """Clone; with ``prefit=True`` the fitted estimator is shared, not cloned (unfitted)."""
        if not self._uses_fitted_estimator():
            return super().__sklearn_clone__()
        params = self.get_params(deep=False)
        estimator = params.pop("estimator")
        return type(self)(
            estimator=estimator, **{k: clone(v, safe=False) for k, v in params.items()}
        )

    def _model_input(self, X: np.ndarray) -> object:
        """What the explainer sees: a DataFrame when the fit data had column names."""
        if isinstance(X, pd.DataFrame):
            return X
        names = getattr(self, "feature_names_in_", None)
        return X if names is None else pd.DataFrame(X, columns=list(names))

    def _validated(self, X, reset: bool):
        """Numeric data as a float64 array; raw mixed-type DataFrames (strings, categories,
        NaN that a Pipeline encodes / imputes) stay DataFrames, with sklearn's column checks."""
        if not getattr(self, "_raw_input", False):
            return validate_data(self, X, reset=reset, dtype=np.float64)
        if not isinstance(X, pd.DataFrame):
            raise TypeError(
                f"{type(self).__name__} was fitted on a DataFrame with non-numeric columns or "
                f"missing values; transform a DataFrame with the same columns, got "
                f"{type(X).__name__}"
            )
        validate_data(self, X, reset=reset, skip_check_array=True)
        return X

    def _network_rows(self, X) -> list[torch.Tensor]:
        """``X`` as the network's input tensor (through a pipeline's preprocessing)."""
        explainer = self.explainer_
        preprocess = getattr(explainer.model_, "preprocess", None)
        if preprocess is not None:
            X, _ = encode(preprocess, X, explainer.model_.raw_names, "X")
        X = np.asarray(X, dtype=np.float64)
        return [torch.tensor(X, dtype=explainer.dtype_, device=explainer.device_)]

    def _numeric_only(self, what: str) -> None:
        if getattr(self, "_raw_input", False):
            raise ValueError(
                f"{what} perturbs features numerically (towards their mean), which has no "
                f"meaning for the raw non-numeric / missing-value columns this "
                f"{type(self).__name__} was fitted on; score it on numeric data, or judge the "
                "explanations with KernelSHAP-style metrics on the encoded features"
            )

    # ------------------------------------------------------------------ fitting
    @unfitted_on_error
    def fit(self, X, y=None, **fit_params) -> AttributionTransformer:
        """Fit the estimator (unless ``prefit``) and the explainer.

        A ``fit`` that raises leaves the transformer unfitted (no previous fit survives).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data; also the explainer's reference data.
        y : array-like of shape (n_samples,) or (n_samples, n_targets), optional
            Targets; required unless ``prefit=True``.
        **fit_params
            Passed to ``estimator.fit``.

        Returns
        -------
        self
        """
        self._check_params()
        self._raw_input = needs_raw_columns(X)
        X = self._validated(X, reset=True)
        if y is None and not self._uses_fitted_estimator():
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None "
                "(or use prefit=True with a fitted estimator)"
            )
        if y is not None:
            y = check_array(y, ensure_2d=False, dtype=None, input_name="y")
            check_consistent_length(X, y)
        rng = check_random_state(self.random_state)
        seed = None if self.random_state is None else int(rng.randint(0, 2**31 - 1))
        if self._uses_fitted_estimator():
            if self.estimator is None:
                raise ValueError("prefit=True needs a fitted estimator, got estimator=None")
            est = self.estimator
            if isinstance(est, FrozenEstimator):
                est = est.estimator
            check_fitted_estimator(est)
            classes = getattr(est, "classes_", None) if safe_is_classifier(est) else None
            classes = None if classes is None else np.asarray(classes)
        else:
            est, classes = fit_estimator(
                self.estimator, X, y, seed, fit_params, self._model_input
            )
        X_ref = X
        if self.max_reference is not None and X.shape[0] > self.max_reference:
            rows = np.sort(rng.choice(X.shape[0], self.max_reference, replace=False))
            X_ref = X.iloc[rows] if self._raw_input else X[rows]
        explainer = IntegratedGradients() if self.explainer is None else clone(self.explainer)
        explainer.fit(est, self._model_input(X_ref))
        self.estimator_ = est
        self.explainer_ = explainer
        self._set_outputs(classes, X)
        # the metrics perturb numeric features towards the mean: none for raw mixed columns
        self.reference_ = None if self._raw_input else X.mean(axis=0)
        self.scale_ = None if self._raw_input else X.std(axis=0)
        self._fit_X = X
        self._fit_y = y
        self._importances = None
        return self

    def _set_outputs(self, classes: np.ndarray | None, X: np.ndarray) -> None:
        """Map explained columns (classes / outputs) to model output nodes and signs."""
        model = self.explainer_.model_
        with torch.no_grad():
            outs = call_forward(model, self._network_rows(X[:1]))
        if len(outs) != 1:
            raise ValueError(
                f"{type(self).__name__} explains models with one output layer; this model has "
                f"{len(outs)}"
            )
        k = outs[0].shape[1]
        if classes is not None:
            n_classes = len(classes)
            if n_classes < 2:
                raise ValueError(f"the classifier knows 1 class ({classes[0]!r}); need >= 2")
            if k == n_classes:
                idx, sign = np.arange(k), np.ones(k)
            elif k == 1 and n_classes == 2:  # single logit: class 0 is its negation
                idx, sign = np.zeros(2, dtype=np.int64), np.array([-1.0, 1.0])
            else:
                raise ValueError(
                    f"the model has {k} outputs but {n_classes} classes; cannot tell which "
                    "output explains which class"
                )
            self.classes_ = np.asarray(classes)
            names = self.classes_.tolist()
        else:
            idx, sign = np.arange(k), np.ones(k)
            names = list(model.output_names([k])[0])
        self.output_names_ = names
        self._output_idx = idx
        self._output_sign = sign
        # "all" columns: a single-logit binary model's class 0 is the exact negative of class 1
        single_logit = classes is not None and k == 1
        self._all_columns = np.array([1]) if single_logit else np.arange(len(names))
        self._target_col = self._resolve_target(classes is not None)

    def _resolve_target(self, classifier: bool) -> int | None:
        """Column of a fixed target; None for "predicted" / "all"."""
        target = self.target
        n = len(self.output_names_)
        if isinstance(target, str) and target in ("predicted", "all"):
            if target == "predicted" and not classifier and n > 1:
                raise ValueError(
                    f"target='predicted' needs a classifier or a single-output regressor; the "
                    f"model has {n} outputs: use target='all' or an output index"
                )
            return None
        if classifier:
            matches = [j for j, c in enumerate(self.classes_) if c == target]
            if not matches:
                raise ValueError(
                    f"target {target!r} is not one of the classes {list(self.classes_)}, "
                    "'predicted' or 'all'"
                )
            return matches[0]
        if isinstance(target, bool) or not isinstance(target, numbers.Integral):
            raise ValueError(
                f"target must be 'predicted', 'all' or an output index for a regressor, got "
                f"{target!r}"
            )
        if not 0 <= int(target) < n:
            raise ValueError(f"target index {target} is out of range for {n} output(s)")
        return int(target)

    # ------------------------------------------------------------------ explaining
    def _explain_columns(
        self, X: np.ndarray, cols: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Attributions ``(n, p, len(cols))``, outputs and goals ``(n, len(cols))``.

        All needed model outputs are explained in one ``explain`` call.
        """
        idx, sign = self._output_idx[cols], self._output_sign[cols]
        nodes, inverse = np.unique(idx, return_inverse=True)
        result = self.explainer_.explain(
            self._model_input(X), output_idx=[int(i) for i in nodes]
        )
        values = np.asarray(result.raw_values[0][0], dtype=np.float64)
        values = values.reshape(X.shape[0], X.shape[1], len(nodes))[..., inverse] * sign
        preds = np.asarray(result.predictions, dtype=np.float64)[:, inverse] * sign
        goal = result.decomp_goal
        if goal is not None:
            goal = np.asarray(goal, dtype=np.float64)[:, inverse] * sign
        return values, preds, goal

    def _explain_targets(self, X: np.ndarray, target: np.ndarray | None) -> np.ndarray:
        """Attributions ``(n, p)`` of column ``target[i]`` for row ``i``."""
        X = np.asarray(X, dtype=np.float64)
        target = np.zeros(X.shape[0], np.int64) if target is None else np.asarray(target)
        cols = np.unique(target)
        values, _, _ = self._explain_columns(X, cols)
        return values[np.arange(X.shape[0]), :, np.searchsorted(cols, target)]

    def explained_output(self, X) -> np.ndarray:
        """The explained model outputs, one column per class (output): ``(n, n_columns)``.

        The function behind the attributions: logits for ``ignore_last_act=True`` (the
        explainers' default), class 0 as the negated logit of a single-logit binary
        classifier. Used by the metrics as ``predict_fn``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, len(output_names_))
        """
        check_is_fitted(self)
        explainer = self.explainer_
        xs = self._network_rows(X)
        batch = explainer.batch_size or auto_batch_size([tuple(xs[0].shape[1:])])
        out = predict(explainer.model_, xs, int(batch))[0].detach().to("cpu", torch.float64)
        return out.numpy()[:, self._output_idx] * self._output_sign

    def _rows(self, X: np.ndarray) -> ExplainedRows:
        n, p = X.shape
        n_cols = len(self.output_names_)
        if self._target_col is not None:
            values, _, goal = self._explain_columns(X, np.array([self._target_col]))
            target = np.full(n, self._target_col, dtype=np.int64)
            rows_X, vals = X, values[..., 0]
            goal = None if goal is None else goal[:, 0]
            index = np.arange(n)
        else:
            values, preds, goal = self._explain_columns(X, np.arange(n_cols))
            if self.target == "predicted":
                target = preds.argmax(axis=1)
                rows_X, vals = X, values[np.arange(n), :, target]
                goal = None if goal is None else goal[np.arange(n), target]
                index = np.arange(n)
            else:  # "all": sample-major rows, one per emitted class
                cols = self._all_columns
                rows_X = np.repeat(X, len(cols), axis=0)
                vals = values[..., cols].transpose(0, 2, 1).reshape(n * len(cols), p)
                target = np.tile(cols, n)
                goal = None if goal is None else goal[:, cols].reshape(-1)
                index = np.repeat(np.arange(n), len(cols))
        return ExplainedRows(
            X=rows_X, values=vals, target=target, goal=goal, sample_index=index,
            predict_fn=self.explained_output, explain_fn=self._explain_targets,
            reference=self.reference_, scale=self.scale_,
        )

    def explained_rows(self, X) -> ExplainedRows:
        """Explain ``X`` row by explained output, for the metrics.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ExplainedRows
            One row per sample (``n_classes`` per sample for ``target="all"``).
        """
        check_is_fitted(self)
        X = self._validated(X, reset=False)
        return self._rows(X)

    def _layout(self, rows: ExplainedRows, n: int) -> np.ndarray:
        if self.target == "all":
            n_cols = len(self._all_columns)
            p = rows.values.shape[1]
            return rows.values.reshape(n, n_cols, p).transpose(0, 2, 1).reshape(n, p * n_cols)
        return rows.values

    def _store_importances(self, rows: ExplainedRows) -> None:
        self._importances = np.abs(rows.values).mean(axis=0)

    def transform(self, X) -> np.ndarray:
        """Attributions of ``X`` as features.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_features) or (n_samples, n_features * n_classes)
            For ``target="all"`` the columns run feature-major: all classes of feature 0,
            then of feature 1, ... (see :meth:`get_feature_names_out`). A dask array /
            DataFrame gives a lazy dask array / DataFrame (see :mod:`sknn_explain.dask`).
        """
        if is_dask_collection(X):
            return dask_transform(self, X)
        rows = self.explained_rows(X)
        return self._layout(rows, rows.values.shape[0] // self._rows_per_sample())

    def _rows_per_sample(self) -> int:
        return len(self._all_columns) if self.target == "all" else 1

    def fit_transform(self, X, y=None, **fit_params) -> np.ndarray:
        """Fit, then transform ``X`` (and fill ``feature_importances_`` for free).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like, optional
        **fit_params
            Passed to ``estimator.fit``.

        Returns
        -------
        ndarray
        """
        self.fit(X, y, **fit_params)
        rows = self._rows(self._fit_X)
        if self.importance == "attribution":
            self._store_importances(rows)
        return self._layout(rows, self._fit_X.shape[0])

    @property
    def feature_importances_(self) -> np.ndarray:
        """Mean ``|attribution|`` (or permutation importance) per input feature.

        Computed on the training data, by ``importance``.
        """
        check_is_fitted(self)
        if self._importances is None:
            if self.importance == "permutation":
                self._importances = self._permutation_importances()
            else:
                self._store_importances(self._rows(self._fit_X))
        return self._importances

    def _permutation_importances(self) -> np.ndarray:
        """``permutation_importance(estimator_, X, y, ...).importances_mean`` on the fit data."""
        if self._fit_y is None:
            raise ValueError(
                f"importance='permutation' scores the model on the training labels, but "
                f"{type(self).__name__} was fitted without y; pass y to fit"
            )
        return permutation_importances(
            self.estimator_, self._fit_X, self._fit_y, getattr(self, "classes_", None),
            self._model_input, self.n_repeats, self.random_state,
        )

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Output feature names.

        Parameters
        ----------
        input_features : array-like of str, optional
            Input names; default ``feature_names_in_`` or ``x0, x1, ...``.

        Returns
        -------
        ndarray of str
            The input names, or ``f"{feature}__{class}"`` for ``target="all"``.
        """
        check_is_fitted(self)
        names = _check_feature_names_in(self, input_features)
        if self.target == "all":
            classes = [self.output_names_[c] for c in self._all_columns]
            names = [f"{f}__{c}" for f in names for c in classes]
        return np.asarray(names, dtype=object)

    # ------------------------------------------------------------------ scoring
    def score(self, X, y=None, sample_weight=None) -> float:
        """Explanation quality on ``X`` (higher is better), by ``scoring``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : ignored
            Accepted for API compatibility: the explanations of the model are judged, not
            the model.
        sample_weight : array-like of shape (n_samples,), optional

        Returns
        -------
        float
        """
        check_is_fitted(self)
        self._numeric_only("score")
        scorer = self.scoring
        if isinstance(scorer, str):
            scorer = get_explanation_scorer(scorer)
        return float(scorer(self, X, y, sample_weight=sample_weight))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = not self._uses_fitted_estimator()
        tags.transformer_tags.preserves_dtype = ["float64"]
        explainer = IntegratedGradients() if self.explainer is None else self.explainer
        try:
            tags.non_deterministic = bool(get_tags(explainer).non_deterministic)
        except (AttributeError, TypeError):  # pragma: no cover - foreign explainer objects
            pass
        return tags
