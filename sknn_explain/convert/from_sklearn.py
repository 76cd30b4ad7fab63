"""scikit-learn models: ``MLPClassifier`` / ``MLPRegressor`` and ``Pipeline`` s of scalers.

An MLP becomes ``Dense -> Activation -> ... -> Dense -> output activation`` with sklearn's exact
activations (``relu``, ``tanh``, ``logistic`` -> sigmoid, ``identity``; output ``softmax`` for
multiclass, ``logistic`` for binary / multilabel, ``identity`` or ``exp`` (Poisson loss) for
regression). Scalers in front of the network (``StandardScaler``, ``MinMaxScaler``,
``MaxAbsScaler``, ``RobustScaler``, ``'passthrough'``) are folded in as
:class:`~sknn_explain.layers.ElementwiseAffine` layers, so attributions live in the user's
original feature space and carry the pipeline's ``feature_names_in_``.

Binary classifiers: sklearn's binary MLP has a *single* output unit, the logit (with
``ignore_last_act=False``: the probability) of the positive class ``classes_[1]``. The graph
exposes exactly that unit, named ``classes_[1]`` -- as innsight does for any one-unit output
layer. The attribution for ``classes_[0]`` is its negative (on the logit scale).

scikit-learn's submodules are imported in the functions that use them: importing
``sklearn.neural_network`` / ``sklearn.preprocessing`` costs time that users of torch models
should not pay when they import the package.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .._model import flatten_outputs
from .._naming import class_names_for
from .._sklearn_models import (
    check_sklearn_fitted,
    is_foldable_step,
    is_sklearn_mlp,
    is_sklearn_pipeline,
)
from .._skorch import is_skorch_net
from ..layers import SKLEARN_ACTIVATIONS, Activation, Dense, ElementwiseAffine
from .errors import ConversionError, UnsupportedLayerError
from .from_skorch import SkorchSource
from .graph import Graph
from .nodes import NodeBuilder, input_name
from .source import Source

__all__ = ["MLPSource", "PipelineSource", "is_foldable_step", "is_sklearn_mlp",
           "is_sklearn_pipeline"]

def _names_list(values: object) -> list:
    return np.asarray(values).tolist()


def _class_output_names(est: object, n_out: int) -> list | None:
    classes = getattr(est, "classes_", None)
    names = class_names_for(None if classes is None else _names_list(classes), n_out)
    return None if names is None else [names]


def _feature_names(est: object) -> list | None:
    names = getattr(est, "feature_names_in_", None)
    return None if names is None else [[[str(n) for n in names]]]


def _act(name: str, where: str) -> Activation | None:
    if name not in SKLEARN_ACTIVATIONS:
        raise UnsupportedLayerError(f"activation {name!r}", where)
    mapped = SKLEARN_ACTIVATIONS[name]
    if mapped is None:
        return None
    return Activation(mapped, dim=1) if mapped == "softmax" else Activation(mapped)


def add_mlp_nodes(builder: NodeBuilder, est: object, prev: str, dtype: torch.dtype,
                  device: torch.device) -> str:
    """Append the MLP's layers after ``prev``; return the output node's name."""
    n_layers = len(est.coefs_)
    for i, (w, b) in enumerate(zip(est.coefs_, est.intercepts_)):
        weight = torch.as_tensor(np.asarray(w, dtype=np.float64).T, dtype=dtype, device=device)
        bias = torch.as_tensor(np.asarray(b, dtype=np.float64), dtype=dtype, device=device)
        prev = builder.add(f"dense_{i + 1}", Dense(weight, bias), [prev])
        last = i == n_layers - 1
        name = est.out_activation_ if last else est.activation
        act = _act(name, f"layer {i + 1} of the {type(est).__name__}")
        if act is not None:
            prev = builder.add("output_activation" if last else f"{act.name}_{i + 1}", act,
                               [prev])
    return prev


def _sklearn_predict(est: object, X: np.ndarray) -> np.ndarray:
    """The original estimator's output the graph must reproduce (all output units)."""
    final = est.steps[-1][1] if is_sklearn_pipeline(est) else est
    columns = getattr(est, "feature_names_in_", None)
    if columns is not None:  # fitted on a DataFrame: predict on one (no sklearn warning)
        import pandas as pd

        X = pd.DataFrame(X, columns=columns)
    if hasattr(final, "predict_proba") and getattr(final, "out_activation_", "") != "identity":
        out = np.asarray(est.predict_proba(X), dtype=np.float64)
        if getattr(final, "n_outputs_", None) == 1 and out.ndim == 2 and out.shape[1] == 2:
            out = out[:, 1:]  # binary: the single unit is P(classes_[1])
        return out
    out = np.asarray(est.predict(X), dtype=np.float64)
    return out.reshape(out.shape[0], -1)


class MLPSource(Source):
    """A fitted ``MLPClassifier`` / ``MLPRegressor``."""

    def __init__(self, est: object, dtype: torch.dtype, device: torch.device) -> None:
        super().__init__(dtype, device)
        check_sklearn_fitted(est, type(est).__name__)
        self.est = est
        self.description = type(est).__name__
        self.n_inputs = 1
        self.input_shapes = [(int(est.coefs_[0].shape[0]),)]
        self.input_names = _feature_names(est)
        self.output_names = _class_output_names(est, int(est.coefs_[-1].shape[1]))
        self.ends_with_activation = SKLEARN_ACTIVATIONS.get(est.out_activation_) is not None

    def build(self, xs: Sequence[torch.Tensor]) -> Graph:
        builder = NodeBuilder(1)
        out = add_mlp_nodes(builder, self.est, input_name(0), self.dtype, self.device)
        return Graph(builder.nodes, 1, [out])

    def reference(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        X = xs[0].detach().to("cpu", torch.float64).clone().numpy()  # may be written
        return [torch.as_tensor(_sklearn_predict(self.est, X))]


def _scaler_affine(step: object, name: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(scale, shift) of a fitted scaler step, None for a no-op step: exactly the steps
    :func:`~sknn_explain._sklearn_models.is_foldable_step` accepts."""
    from sklearn.preprocessing import (
        FunctionTransformer,
        MaxAbsScaler,
        MinMaxScaler,
        RobustScaler,
        StandardScaler,
    )

    if step is None or (isinstance(step, str) and step == "passthrough"):
        return None
    where = f"pipeline step {name!r}"
    if isinstance(step, FunctionTransformer):
        if step.func is None:
            return None
        raise UnsupportedLayerError(
            f"FunctionTransformer({getattr(step.func, '__name__', step.func)})", where,
            "only scalers (StandardScaler, MinMaxScaler, MaxAbsScaler, RobustScaler) can be "
            "folded into the graph",
        )
    check_sklearn_fitted(step, f"{type(step).__name__} in {where}")
    n = int(step.n_features_in_)
    ones, zeros = np.ones(n), np.zeros(n)
    if isinstance(step, StandardScaler):
        # mean_ is fitted even with with_mean=False (for the variance) but not subtracted
        use_scale = step.with_std and step.scale_ is not None
        use_mean = step.with_mean and step.mean_ is not None
        scale = 1.0 / np.asarray(step.scale_, dtype=np.float64) if use_scale else ones
        mean = np.asarray(step.mean_, dtype=np.float64) if use_mean else zeros
        return scale, -mean * scale
    if isinstance(step, RobustScaler):
        use_scale = step.with_scaling and step.scale_ is not None
        use_center = step.with_centering and step.center_ is not None
        scale = 1.0 / np.asarray(step.scale_, dtype=np.float64) if use_scale else ones
        center = np.asarray(step.center_, dtype=np.float64) if use_center else zeros
        return scale, -center * scale
    if isinstance(step, MinMaxScaler):
        if step.clip:
            raise UnsupportedLayerError(
                "MinMaxScaler(clip=True)", where, "clipping is not affine; use clip=False"
            )
        return np.asarray(step.scale_, dtype=np.float64), np.asarray(step.min_, dtype=np.float64)
    if isinstance(step, MaxAbsScaler):
        return 1.0 / np.asarray(step.scale_, dtype=np.float64), zeros
    raise UnsupportedLayerError(
        type(step).__name__, where,
        "only StandardScaler, MinMaxScaler, MaxAbsScaler, RobustScaler and 'passthrough' "
        "can precede the network",
    )


class PipelineSource(Source):
    """A fitted ``Pipeline`` of scalers followed by an sklearn MLP or a skorch net."""

    def __init__(self, pipe: object, dtype: torch.dtype, device: torch.device) -> None:
        super().__init__(dtype, device)
        self.pipe = pipe
        steps = list(pipe.steps)
        if not steps:
            raise ValueError("the Pipeline has no steps")
        final_name, final = steps[-1]
        self.affines = []
        for name, step in steps[:-1]:
            aff = _scaler_affine(step, name)
            if aff is not None:
                self.affines.append((name, aff))
        self.final = final
        self.final_source: Source | None = None
        if is_sklearn_mlp(final):
            check_sklearn_fitted(final, type(final).__name__)
            n_features = int(final.coefs_[0].shape[0])
            self.output_names = _class_output_names(final, int(final.coefs_[-1].shape[1]))
            self.ends_with_activation = SKLEARN_ACTIVATIONS.get(final.out_activation_) is not None
        else:
            if not is_skorch_net(final):
                raise UnsupportedLayerError(
                    type(final).__name__, f"pipeline step {final_name!r}",
                    "the last step must be an MLPClassifier / MLPRegressor or a fitted skorch net",
                )
            self.final_source = SkorchSource(final, dtype, device)
            if self.final_source.n_inputs != 1:
                raise ConversionError("a skorch net in a Pipeline must take a single input")
            n_features = None
            self.output_names = self.final_source.output_names
            self.ends_with_activation = self.final_source.ends_with_activation
        if self.affines:
            n_features = len(self.affines[0][1][0])
        n_in = getattr(pipe, "n_features_in_", None) or n_features
        self.input_shapes = None if n_in is None else [(int(n_in),)]
        self.input_names = _feature_names(pipe)
        self.description = "Pipeline(" + ", ".join(type(s).__name__ for _, s in steps) + ")"

    def build(self, xs: Sequence[torch.Tensor]) -> Graph:
        builder = NodeBuilder(1)
        prev = input_name(0)
        x = xs[0]
        for name, (scale, shift) in self.affines:
            layer = ElementwiseAffine(
                torch.as_tensor(scale, dtype=self.dtype, device=self.device),
                torch.as_tensor(shift, dtype=self.dtype, device=self.device),
            )
            prev = builder.add(name, layer, [prev])
            with torch.no_grad():
                x = layer(x)
        if self.final_source is None:
            out = add_mlp_nodes(builder, self.final, prev, self.dtype, self.device)
            return Graph(builder.nodes, 1, [out])
        sub = self.final_source.build([x])
        outputs = builder.merge(sub.nodes, sub.outputs, {input_name(0): prev})
        return Graph(builder.nodes, 1, outputs, output_names=sub.output_names)

    def reference(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        X = xs[0].detach().to("cpu", torch.float64).clone().numpy()  # may be written
        if self.final_source is None:
            return [torch.as_tensor(_sklearn_predict(self.pipe, X))]
        columns = getattr(self.pipe, "feature_names_in_", None)
        if columns is not None:  # fitted on a DataFrame: transform one (no sklearn warning)
            import pandas as pd

            Xt = pd.DataFrame(X, columns=columns)
        else:
            Xt = X
        for _, step in self.pipe.steps[:-1]:
            if step is not None and not (isinstance(step, str) and step == "passthrough"):
                Xt = step.transform(Xt)
        t = torch.as_tensor(np.asarray(Xt, dtype=np.float64), dtype=self.dtype,
                            device=self.device)
        return flatten_outputs(self.final_source.reference([t]))

