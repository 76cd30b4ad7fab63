"""Prediction-function adapters for model-agnostic explainers.

LIME and Kernel SHAP only need model *outputs*. :func:`as_predict_model` turns

* a torch ``nn.Module`` or fitted skorch net into :class:`~sknn_explain._model.TorchModel`
  (private eval-mode copy, as every other explainer),
* any fitted scikit-learn estimator (classifier, regressor, pipeline, also non-neural ones
  such as random forests) into :class:`SklearnModel`, which calls ``predict_proba``,
  ``decision_function`` or ``predict``,
* any other callable ``f(ndarray) -> ndarray`` into :class:`FunctionModel`,

all with the adapter interface the explainers use: ``__call__(list of tensors) -> list of
(n, k) tensors``, ``n_inputs`` and ``output_names(dims)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from .._model import AdapterBase, as_model, copy_model
from .._naming import class_names_for, default_output_names
from .._skorch import is_fitted_skorch_net, is_skorch_net

__all__ = [
    "RESPONSE_METHODS", "FunctionModel", "NativeInputs", "RawColumns", "SklearnModel",
    "SkorchPipelineModel", "as_predict_model", "is_torch_like", "native_dtypes",
    "needs_raw_columns",
]

RESPONSE_METHODS = ("auto", "predict_proba", "decision_function", "predict")


def _to_user_layout(x: torch.Tensor, channels_first: bool) -> np.ndarray:
    arr = x.detach().to("cpu", torch.float64).numpy()
    if not channels_first and arr.ndim > 2:
        arr = np.moveaxis(arr, 1, -1)
    return arr


def _as_2d_tensors(out: object, n: int, like: torch.Tensor, what: str) -> list[torch.Tensor]:
    outs = list(out) if isinstance(out, (list, tuple)) else [out]
    result = []
    for o in outs:
        if isinstance(o, (pd.DataFrame, pd.Series)):
            o = o.to_numpy()
        elif isinstance(o, torch.Tensor):
            o = o.detach().to("cpu").numpy()
        arr = np.asarray(o)
        if arr.dtype.kind not in "biuf":
            raise ValueError(
                f"{what} returned values of dtype {arr.dtype} (e.g. class labels); model-agnostic "
                "explainers need numbers: use response_method='predict_proba' or "
                "'decision_function' for classifiers"
            )
        if arr.ndim == 0 or arr.shape[0] != n:
            raise ValueError(
                f"{what} returned shape {arr.shape} for {n} samples; expected ({n},) or ({n}, k)"
            )
        result.append(
            torch.as_tensor(arr.reshape(n, -1), dtype=like.dtype, device=like.device)
        )
    return result


class SklearnModel(AdapterBase):
    """Adapter around a fitted scikit-learn estimator (a private deep copy).

    Parameters
    ----------
    estimator : estimator
        Fitted estimator; copied with :func:`copy.deepcopy`.
    method : {"predict_proba", "decision_function", "predict"}
        Which response to explain.
    channels_first : bool
        Layout the estimator was trained on for image / signal inputs. Inputs of rank > 1 are
        flattened (in that layout) to ``(n, n_features)`` before the call.
    """

    n_inputs = 1

    def __init__(self, estimator: object, method: str, channels_first: bool = True) -> None:
        self.estimator = estimator
        self.method = method
        self.channels_first = channels_first
        names = getattr(estimator, "feature_names_in_", None)
        self.feature_names = None if names is None else [str(c) for c in names]
        n_in = getattr(estimator, "n_features_in_", None)
        self.n_features = None if n_in is None else int(n_in)

    def __call__(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if len(xs) != 1:
            raise ValueError(f"a scikit-learn estimator takes one input, got {len(xs)}")
        x = xs[0]
        n = x.shape[0]
        arr = _to_user_layout(x, self.channels_first).reshape(n, -1)
        codec = getattr(self, "codec", None)
        if codec is not None:  # raw DataFrame columns: codes -> the user's values and dtypes
            out = self._respond(codec.decode(arr))
            return _as_2d_tensors(out, n, x, f"{type(self.estimator).__name__}.{self.method}")
        if getattr(self, "input_dtype", None) is not None:  # the float type of the user's X_ref
            arr = arr.astype(self.input_dtype, copy=False)
        if self.feature_names is not None and len(self.feature_names) == arr.shape[1]:
            arr = pd.DataFrame(arr, columns=self.feature_names)
        out = self._respond(arr)
        return _as_2d_tensors(out, n, x, f"{type(self.estimator).__name__}.{self.method}")

    def _respond(self, X: object) -> object:
        """The estimator's response (``predict_proba`` / ...) on the prepared input."""
        return getattr(self.estimator, self.method)(X)

    def output_names(self, dims: Sequence[int]) -> list[list]:
        """Class labels for classifiers (per output for multi-output ones), else ``Y1..``."""
        classes = getattr(self.estimator, "classes_", None)
        if self.method == "predict" or classes is None:
            per_layer = [None] * len(dims)
        elif len(dims) > 1 and isinstance(classes, list):
            per_layer = list(classes) + [None] * (len(dims) - len(classes))
        else:
            per_layer = [classes] + [None] * (len(dims) - 1)
        names = default_output_names(dims)
        for layer, (k, cls) in enumerate(zip(dims, per_layer)):
            # binary decision_function: one unit, classes_[1]
            given = class_names_for(None if cls is None else np.asarray(cls).tolist(), k)
            if given is not None:
                names[layer] = given
        return names


#: skorch methods on the prediction path: a net whose class overrides one of them outside
#: skorch predicts in its own way, and its pipeline keeps calling ``predict_proba``
_SKORCH_PREDICT_PATH = ("predict_proba", "forward_iter", "evaluation_step", "infer",
                        "get_dataset", "get_iterator", "_set_training")


def _skorch_final_step(model: object, method: str) -> object | None:
    """The fitted skorch net ending the Pipeline ``model`` when its ``method`` response can
    be computed batch-free from ``net.infer`` (see :class:`SkorchPipelineModel`), else None."""
    from sklearn.pipeline import Pipeline

    if not isinstance(model, Pipeline) or not model.steps:
        return None
    net = model.steps[-1][1]
    if not is_skorch_net(net) or not is_fitted_skorch_net(net):
        return None
    from skorch import NeuralNet
    from skorch.dataset import Dataset
    from torch.utils.data import DataLoader

    if method == "predict":  # the base class's predict is predict_proba; classifiers' is not
        if type(net).predict is not NeuralNet.predict:
            return None
    elif method != "predict_proba":
        return None
    if any(not getattr(type(net), name).__module__.startswith("skorch.")
           for name in _SKORCH_PREDICT_PATH):
        return None
    if net.dataset is not Dataset or net.get_params_for("dataset"):
        return None  # a custom dataset may reshape / select the inputs
    if net.iterator_valid is not DataLoader or "collate_fn" in net.get_params_for(
            "iterator_valid"):
        return None
    for m in net.module_.modules():  # batch statistics: only skorch's own batches are right
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is None:
            return None
    return net


class SkorchPipelineModel(SklearnModel):
    """A scikit-learn Pipeline ending in a fitted skorch net, without skorch's batching.

    ``Pipeline.predict_proba`` makes skorch feed the network ``iterator_valid`` batches of
    its training ``batch_size`` (often 64 rows): thousands of tiny forward passes for the
    perturbed rows of Kernel SHAP / LIME. This adapter runs the pipeline's transformers
    (``transform``) and then the private copy's ``net.infer`` once per call, i.e. once per
    ``batch_size`` rows of the explainer, followed by the net's prediction nonlinearity on
    the CPU -- the steps of skorch's ``predict_proba`` without its data loader, so the
    numbers are ``predict_proba``'s (up to float rounding of another batch composition).
    Transformed data that is not a numpy array (DataFrame, sparse, dict) goes through the
    net's ``predict_proba`` as before.

    Parameters
    ----------
    estimator : Pipeline
        A private copy of the fitted pipeline (its net's ``module_`` is the private module).
    method : {"predict_proba", "predict"}
        The response (``"predict"`` only for nets whose ``predict`` is ``predict_proba``).
    channels_first : bool
        As :class:`SklearnModel`.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skorch import NeuralNetRegressor
    >>> from sknn_explain.explainers._predict_fn import as_predict_model
    >>> X = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
    >>> net = NeuralNetRegressor(torch.nn.Linear(3, 1), max_epochs=1, verbose=0)
    >>> pipe = make_pipeline(StandardScaler(), net).fit(X, X[:, :1])
    >>> adapter = as_predict_model(pipe)
    >>> type(adapter).__name__
    'SkorchPipelineModel'
    >>> adapter.input_dtype = np.float32  # the explainers set the float type of X_ref
    >>> out = adapter([torch.as_tensor(X, dtype=torch.float64)])[0]
    >>> bool(np.allclose(out.numpy(), pipe.predict(X), atol=1e-6))
    True
    """

    def __init__(self, estimator: object, method: str, channels_first: bool = True) -> None:
        super().__init__(estimator, method, channels_first=channels_first)
        self.net = estimator.steps[-1][1]
        self.net.module_.eval()  # the private copy: eval mode once, as skorch sets per batch
        self.transformers = [t for _, t in estimator.steps[:-1]
                             if t is not None and not isinstance(t, str)]  # "passthrough"

    def _respond(self, X: object) -> object:
        for t in self.transformers:  # what Pipeline.predict_proba does before the net
            X = t.transform(X)
        if not isinstance(X, np.ndarray):  # skorch's Dataset decides what these become
            return self.net.predict_proba(X)
        from skorch.utils import to_device, to_numpy

        net = self.net
        with torch.set_grad_enabled(False):  # skorch's evaluation_step, one batch
            net._set_training(False)
            out = to_device(net.infer(X), device="cpu")  # as forward_iter yields it
        out = out[0] if isinstance(out, tuple) else out
        return to_numpy(net._get_predict_nonlinearity()(out))


class FunctionModel(AdapterBase):
    """Adapter around a plain prediction function ``f(ndarray) -> ndarray``.

    The function receives float64 arrays ``(n, *input_shape)`` in the user's layout (a list
    of arrays for ``n_inputs > 1``) and returns ``(n,)``, ``(n, k)`` or a list of those.
    Use a module-level function (not a lambda) if the fitted explainer must be pickled.
    """

    def __init__(
        self, fn: Callable, n_inputs: int | None = None, channels_first: bool = True
    ) -> None:
        self.fn = fn
        self.n_inputs = n_inputs
        self.channels_first = channels_first

    def __call__(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        arrays = [_to_user_layout(x, self.channels_first) for x in xs]
        codec = getattr(self, "codec", None)
        if codec is not None:  # raw DataFrame columns: the function gets a DataFrame
            out = self.fn(codec.decode(arrays[0].reshape(arrays[0].shape[0], -1)))
        else:
            out = self.fn(arrays[0] if len(arrays) == 1 else arrays)
        name = getattr(self.fn, "__name__", type(self.fn).__name__)
        return _as_2d_tensors(out, xs[0].shape[0], xs[0], f"the prediction function {name}")


def _plain_numeric(dtype: object) -> bool:
    """Numbers (or bool) that a float64 array holds exactly, not categories or text."""
    return (
        not isinstance(dtype, pd.CategoricalDtype)
        and (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype))
        and not pd.api.types.is_complex_dtype(dtype)
    )


def needs_raw_columns(X: object) -> bool:
    """Whether model-agnostic explainers must swap ``X``'s raw values instead of numbers.

    True for a DataFrame with a column that is not plain numeric / bool (strings, object,
    pandas category, datetimes, ...) or with a missing value (NaN, None, ``pd.NA``): such
    frames go to a scikit-learn Pipeline that encodes / imputes them itself.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> needs_raw_columns(pd.DataFrame({"a": [1.0, 2.0]})), needs_raw_columns(np.zeros((2, 2)))
    (False, False)
    >>> needs_raw_columns(pd.DataFrame({"a": [1.0, np.nan]}))
    True
    >>> needs_raw_columns(pd.DataFrame({"a": [1.0, 2.0], "city": ["Oslo", "Rome"]}))
    True
    """
    if not isinstance(X, pd.DataFrame) or X.shape[1] == 0:
        return False
    if not all(_plain_numeric(d) for d in X.dtypes):
        return True
    return bool(X.isna().to_numpy().any())


def _union_categories(ref: pd.Series, new: pd.Series) -> pd.CategoricalDtype:
    """X_ref's categories followed by the values of ``new`` that are not among them."""
    dtype = ref.dtype
    cats = list(dtype.categories)
    seen = set(cats)
    values = new.cat.categories if isinstance(new.dtype, pd.CategoricalDtype) else new.dropna()
    for v in pd.unique(np.asarray(values, dtype=object)):
        if v not in seen:
            cats.append(v)
            seen.add(v)
    return pd.CategoricalDtype(cats, ordered=dtype.ordered)


class RawColumns:
    """Integer codes for the raw columns of a DataFrame (any dtype, missing values kept).

    Model-agnostic explainers only move values between rows, never compute with them. So a
    mixed-type DataFrame is explained on float codes (per column, the index of the value in
    that column's distinct values, a missing value being one value of its own), and the
    codes are decoded into a DataFrame with the user's columns, dtypes and column order
    before every model call.

    Parameters
    ----------
    X_ref : DataFrame
        The reference data; fixes the columns, their order and their dtypes.

    Attributes
    ----------
    columns : list
        Column labels as in the user's DataFrame.
    uniques : list of pandas Index
        Per column, the distinct values (dtype preserved); the code of a value is its
        position here.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> ref = pd.DataFrame({"city": ["Oslo", "Rome", "Oslo"], "age": [30.0, np.nan, 41.0]})
    >>> codec = RawColumns(ref)
    >>> codec.encode(ref)
    array([[0., 0.],
           [1., 1.],
           [0., 2.]])
    >>> X = pd.DataFrame({"city": ["Paris"], "age": [30.0]})
    >>> call = codec.extend(X)
    >>> call.encode(X)
    array([[2., 0.]])
    >>> row = call.decode(np.array([[2.0, 1.0]]))
    >>> row["city"].tolist(), bool(row["age"].isna().all())
    (['Paris'], True)
    """

    def __init__(self, X_ref: pd.DataFrame | None = None) -> None:
        self.columns: list = []
        self.uniques: list[pd.Index] = []
        self._dtypes: list = []
        self._index = pd.Index([])
        if X_ref is not None:
            self.columns = list(X_ref.columns)
            self._index = X_ref.columns.copy()
            for col in self.columns:
                _, uniq = pd.factorize(X_ref[col], use_na_sentinel=False)
                self.uniques.append(uniq)
                self._dtypes.append(X_ref[col].dtype)

    @property
    def n_codes(self) -> int:
        """Largest number of distinct values of a column."""
        return max((len(u) for u in self.uniques), default=0)

    def check_columns(self, X: object, name: str = "X") -> None:
        """Raise a ValueError unless ``X`` is a DataFrame with exactly the fitted columns."""
        if not isinstance(X, pd.DataFrame):
            raise TypeError(
                f"the explainer was fitted on a DataFrame with columns {self.columns[:8]}"
                f"{'...' if len(self.columns) > 8 else ''} (raw, mixed-type values); {name} "
                f"must be a DataFrame with the same columns, got {type(X).__name__}"
            )
        got = list(X.columns)
        if got == self.columns:
            return
        dup = list(dict.fromkeys(X.columns[X.columns.duplicated()].tolist()))
        missing = [c for c in self.columns if c not in got]
        extra = [c for c in got if c not in self.columns]
        if dup:
            problem = f"duplicate column(s) {dup}"
        elif missing and extra:
            problem = f"no column(s) {missing} and unexpected column(s) {extra}"
        elif missing:
            problem = f"no column(s) {missing}"
        elif extra:
            problem = f"unexpected column(s) {extra}"
        else:
            moved = [c for c, e in zip(got, self.columns) if c != e]
            problem = f"the columns in another order (first misplaced: {moved[0]!r})"
        raise ValueError(
            f"{name} has {problem}, but the explainer was fitted on X_ref with columns "
            f"{self.columns}; pass {name}[{self.columns!r}]"
        )

    def _combined(self, j: int, col: pd.Series) -> pd.Series:
        ref = pd.Series(self.uniques[j])
        if isinstance(ref.dtype, pd.CategoricalDtype) and col.dtype != ref.dtype:
            union = _union_categories(ref, col)
            ref, col = ref.astype(union), col.astype(union)
        return pd.concat([ref, col.reset_index(drop=True)], ignore_index=True)

    def extend(self, X: pd.DataFrame) -> RawColumns:
        """A copy whose code books also hold ``X``'s values (X_ref's codes unchanged)."""
        out = RawColumns()
        out.columns = list(self.columns)
        out._dtypes = list(self._dtypes)
        out._index = self._index
        for j, col in enumerate(self.columns):
            _, uniq = pd.factorize(self._combined(j, X[col]), use_na_sentinel=False)
            out.uniques.append(uniq)
        return out

    def new_values(self, X: pd.DataFrame, base: RawColumns) -> dict:
        """Per column, the values of ``X`` that ``base`` (X_ref) does not hold."""
        codes = self.encode(X)
        found = {}
        for j, col in enumerate(self.columns):
            fresh = np.unique(codes[:, j][codes[:, j] >= len(base.uniques[j])]).astype(int)
            if fresh.size:
                found[col] = self.uniques[j].take(fresh).tolist()
        return found

    def encode(self, X: pd.DataFrame) -> np.ndarray:
        """``(n, M)`` float64 codes of ``X``; every value must be in the code books."""
        out = np.empty(X.shape, dtype=np.float64)
        for j, col in enumerate(self.columns):
            combined = self._combined(j, X[col])
            codes, uniq = pd.factorize(combined, use_na_sentinel=False)
            if len(uniq) != len(self.uniques[j]):
                raise ValueError(
                    f"column {col!r} has values outside the code book; extend() it first"
                )
            out[:, j] = codes[len(self.uniques[j]):]
        return out

    def decode(self, codes: np.ndarray) -> pd.DataFrame:
        """A DataFrame with the user's columns (order, labels, dtypes) for ``(n, M)`` codes."""
        idx = np.asarray(codes).astype(np.int64)
        return pd.DataFrame(
            {j: pd.Series(u.take(idx[:, j])) for j, u in enumerate(self.uniques)}
        ).set_axis(self._index, axis=1)

    def raw_values(self, X: pd.DataFrame) -> np.ndarray:
        """``X`` for the Attribution: float64 when every column is numeric, else objects."""
        if all(_plain_numeric(d) for d in X.dtypes):
            return X.to_numpy(dtype=np.float64, na_value=np.nan)
        return X.to_numpy(dtype=object)


def user_float_dtype(X: object) -> np.dtype | None:
    """``float32`` when the user's data are float32 throughout (array, tensor or DataFrame),
    else None (float64 is used).

    A scikit-learn Pipeline ending in a float32 torch net (a skorch net) only runs on the
    float type it was fitted with; the model-agnostic methods call it with that type.

    Examples
    --------
    >>> import numpy as np
    >>> user_float_dtype(np.zeros((2, 3), dtype=np.float32)), user_float_dtype(np.zeros(3))
    (dtype('float32'), None)
    """
    if isinstance(X, torch.Tensor):
        return np.dtype(np.float32) if X.dtype == torch.float32 else None
    if isinstance(X, pd.DataFrame):
        kinds = {np.dtype(d) if not isinstance(d, pd.api.extensions.ExtensionDtype) else None
                 for d in X.dtypes}
        return np.dtype(np.float32) if kinds == {np.dtype(np.float32)} else None
    dtype = getattr(X, "dtype", None)
    return np.dtype(np.float32) if dtype == np.float32 else None


def native_dtypes(X: object) -> list[torch.dtype | None]:
    """Per model input, the bool / integer torch dtype of the user's data (None: float).

    Split like :func:`sknn_explain._data.coerce_inputs` splits ``X``: a list of arrays /
    tensors / DataFrames is one entry per input. A DataFrame is bool when all its columns
    are, integer when all are integer or bool.

    Examples
    --------
    >>> import numpy as np, torch
    >>> native_dtypes(np.ones((2, 3), dtype=bool)), native_dtypes(torch.zeros(2, 3))
    ([torch.bool], [None])
    >>> native_dtypes([np.zeros((2, 3), dtype=np.int32), np.zeros((2, 3))])
    [torch.int32, None]
    """
    from .._data import _is_array_like_input

    several = isinstance(X, (list, tuple)) and len(X) > 0 and all(
        _is_array_like_input(x) for x in X
    )
    dtypes: list[torch.dtype | None] = []
    for part in (list(X) if several else [X]):
        if isinstance(part, torch.Tensor):
            native = not (part.is_floating_point() or part.is_complex())
            dtypes.append(part.dtype if native else None)
            continue
        if isinstance(part, pd.DataFrame):
            cols = [part[c].dtype for c in part.columns]
            if cols and all(pd.api.types.is_bool_dtype(d) for d in cols):
                dtypes.append(torch.bool)
            elif cols and all(pd.api.types.is_integer_dtype(d) or pd.api.types.is_bool_dtype(d)
                              for d in cols):
                dtypes.append(torch.int64)
            else:
                dtypes.append(None)
            continue
        try:
            kind = np.asarray(part).dtype
        except (TypeError, ValueError):
            dtypes.append(None)
            continue
        if kind.kind == "b":
            dtypes.append(torch.bool)
        elif kind.kind == "i":
            dtypes.append(torch.from_numpy(np.zeros(0, dtype=kind)).dtype)
        elif kind.kind == "u":
            dtypes.append(torch.uint8 if kind == np.uint8 else torch.int64)
        else:
            dtypes.append(None)
    return dtypes


class NativeInputs(AdapterBase):
    """Adapter that feeds a torch model bool / integer inputs in their own dtype.

    Model-agnostic explainers only move values between rows (the explained sample, the
    reference rows), so the perturbed inputs hold exactly the user's bool / integer values;
    they are built in the computation dtype and cast back before each model call.

    Parameters
    ----------
    model : TorchModel
        The private model copy.
    dtypes : list of torch.dtype or None
        Per input, the dtype the model gets (None: unchanged).
    """

    def __init__(self, model: object, dtypes: Sequence[torch.dtype | None]) -> None:
        self.model = model
        self.input_dtypes = list(dtypes)
        self.n_inputs = model.n_inputs
        self.conversion_error = model.conversion_error
        self.removed_activation = model.removed_activation

    def __call__(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        dtypes = self.input_dtypes
        if len(dtypes) != len(xs):  # e.g. a list of rows taken for several inputs
            dtypes = [dtypes[0]] * len(xs) if len(set(dtypes)) == 1 else [None] * len(xs)
        return self.model([x if d is None else x.to(d) for x, d in zip(xs, dtypes)])

    def output_names(self, dims: Sequence[int]) -> list[list]:
        return self.model.output_names(dims)


def is_torch_like(model: object) -> bool:
    """Torch module (incl. converted Graphs), skorch net or innsight-style dict model."""
    return is_skorch_net(model) or isinstance(model, (nn.Module, dict))


def _resolve_method(estimator: object, response_method: str) -> str:
    if response_method not in RESPONSE_METHODS:
        raise ValueError(
            f"response_method must be one of {RESPONSE_METHODS}, got {response_method!r}"
        )
    name = type(estimator).__name__
    if response_method != "auto":
        if not hasattr(estimator, response_method):
            raise ValueError(f"{name} has no method {response_method!r}")
        return response_method
    from sklearn.base import BaseEstimator, is_classifier

    classifier = hasattr(estimator, "classes_") or (
        isinstance(estimator, BaseEstimator) and is_classifier(estimator)
    )
    candidates = ("predict_proba", "decision_function") if classifier else ("predict",)
    for method in candidates:
        if hasattr(estimator, method):
            return method
    raise ValueError(
        f"cannot explain the {'classifier' if classifier else 'estimator'} {name}: it has none "
        f"of {candidates}"
    )


def as_predict_model(
    model: object,
    *,
    response_method: str = "auto",
    ignore_last_act: bool = False,
    channels_first: bool = True,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
):
    """Wrap ``model`` in the adapter a model-agnostic explainer calls.

    Parameters
    ----------
    model : nn.Module, skorch net, scikit-learn estimator or callable
        The model. Torch modules and scikit-learn estimators are deep-copied.
    response_method : {"auto", "predict_proba", "decision_function", "predict"}
        For scikit-learn estimators: ``"auto"`` explains ``predict_proba`` of classifiers
        (``decision_function`` when there is no ``predict_proba``) and ``predict`` of
        everything else.
    ignore_last_act : bool
        Torch modules / skorch nets only: drop the last activation.
    channels_first : bool
        Layout in which estimators and functions expect image / signal data.
    dtype, device
        For torch models: the precision and device of the private copy.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sknn_explain.explainers._predict_fn import as_predict_model
    >>> clf = LogisticRegression().fit(np.eye(3), ["a", "b", "c"])
    >>> adapter = as_predict_model(clf)
    >>> [o.shape for o in adapter([torch.zeros(5, 3, dtype=torch.float64)])]
    [torch.Size([5, 3])]
    >>> adapter.output_names([3])
    [['a', 'b', 'c']]

    Raises
    ------
    TypeError
        Unsupported model type.
    ValueError
        Unfitted estimator, missing response method, or ``ignore_last_act`` for a model
        that has no layers.
    """
    if is_skorch_net(model) or isinstance(model, nn.Module):
        if response_method != "auto":
            raise ValueError(
                "response_method applies to scikit-learn estimators; for torch modules and "
                "skorch nets use ignore_last_act to choose between scores and probabilities"
            )
        return as_model(model, ignore_last_act=ignore_last_act, dtype=dtype, device=device)
    is_estimator = any(
        callable(getattr(model, m, None)) for m in ("predict", "predict_proba", "decision_function")
    )
    if not is_estimator and not callable(model):
        raise TypeError(
            f"cannot explain a {type(model).__name__}: expected a torch nn.Module, a fitted "
            "skorch net, a fitted scikit-learn estimator or a prediction function"
        )
    if ignore_last_act:
        raise ValueError(
            "ignore_last_act=True applies to torch modules and skorch nets; for scikit-learn "
            "estimators choose the response with response_method (e.g. 'decision_function' "
            "for scores before the link)"
        )
    if not is_estimator:
        if response_method != "auto":
            raise ValueError("response_method applies to scikit-learn estimators, not functions")
        return FunctionModel(model, channels_first=channels_first)
    from sklearn.base import BaseEstimator
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    if isinstance(model, BaseEstimator):  # duck-typed predictors are trusted
        try:
            check_is_fitted(model)
        except NotFittedError as err:
            raise ValueError(
                f"the {type(model).__name__} is not fitted; call fit(X, y) before explaining it"
            ) from err
    method = _resolve_method(model, response_method)
    if _skorch_final_step(model, method) is not None:  # skorch's small batches bypassed
        return SkorchPipelineModel(copy_model(model), method, channels_first=channels_first)
    return SklearnModel(copy_model(model), method, channels_first=channels_first)
