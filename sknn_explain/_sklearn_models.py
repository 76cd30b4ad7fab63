"""What sknn_explain knows about scikit-learn models, in one place: is it an MLP or a
Pipeline, is it fitted, and which pipeline steps are exact elementwise affine maps (the
scalers the converter folds into the graph).

scikit-learn's submodules are imported in the functions that use them: importing
``sklearn.neural_network`` / ``sklearn.pipeline`` / ``sklearn.preprocessing`` costs time that
users of torch models should not pay when they import the package.
"""

from __future__ import annotations

__all__ = ["check_sklearn_fitted", "is_foldable_step", "is_sklearn_mlp", "is_sklearn_pipeline"]


def is_sklearn_mlp(model: object) -> bool:
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    return isinstance(model, (MLPClassifier, MLPRegressor))


def is_sklearn_pipeline(model: object) -> bool:
    from sklearn.pipeline import Pipeline

    return isinstance(model, Pipeline)


def check_sklearn_fitted(est: object, what: str) -> None:
    """Raise a ``ValueError`` naming ``what`` unless ``est`` is fitted."""
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(est)
    except NotFittedError as err:
        raise ValueError(
            f"the {what} is not fitted; call fit(X, y) before explaining it"
        ) from err


def is_foldable_step(step: object) -> bool:
    """Whether a pipeline step is folded into the graph (an exact elementwise affine map):
    the steps :func:`sknn_explain.convert.from_sklearn._scaler_affine` turns into an
    ``ElementwiseAffine`` layer."""
    from sklearn.preprocessing import (
        FunctionTransformer,
        MaxAbsScaler,
        MinMaxScaler,
        RobustScaler,
        StandardScaler,
    )

    if step is None or (isinstance(step, str) and step == "passthrough"):
        return True
    if isinstance(step, FunctionTransformer):
        return step.func is None and step.inverse_func is None
    if isinstance(step, MinMaxScaler):
        return not step.clip
    return type(step) in (StandardScaler, MaxAbsScaler, RobustScaler, MinMaxScaler)
