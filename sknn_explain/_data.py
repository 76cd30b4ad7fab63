"""Input coercion and validation: numpy / pandas / torch / lists of those -> arrays + names.

Everything the user hands to ``fit`` or ``explain`` passes through :func:`coerce_inputs`,
which returns float64 numpy arrays in the *model* layout (channels first) together with
per-axis names. All checks raise ``TypeError`` / ``ValueError`` naming the problem, so a
bad input never reaches torch.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

__all__ = [
    "InputBatch",
    "check_readable_tensor",
    "coerce_inputs",
    "default_axis_names",
    "find_batch_first_rnn",
    "layout_hint",
    "sequence_warning",
    "resolve_device",
    "resolve_dtype",
]

_DTYPES = {"float": torch.float32, "double": torch.float64}


def resolve_dtype(dtype: str) -> torch.dtype:
    """Map innsight's ``dtype`` names ("float", "double") to a torch dtype."""
    if isinstance(dtype, str) and dtype in _DTYPES:
        return _DTYPES[dtype]
    raise ValueError(f"dtype must be 'float' or 'double', got {dtype!r}")


def resolve_device(device: str | torch.device) -> torch.device:
    """Resolve ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"auto"`` to a torch device."""
    if isinstance(device, torch.device):
        dev = device
    elif isinstance(device, str):
        if device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            dev = torch.device(device)
        except RuntimeError as err:
            raise ValueError(f"device must be 'cpu', 'cuda' or 'auto', got {device!r}") from err
    else:
        raise TypeError(f"device must be a string or torch.device, got {type(device).__name__}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was requested but no CUDA device is available")
    return dev


def default_axis_names(shape: Sequence[int], sequence: bool = False) -> list[list[str]]:
    """innsight's default names for one input of per-sample ``shape`` (channels first).

    Tabular ``(p,)`` -> ``X1..Xp``; signal ``(C, L)`` -> ``C1..``, ``L1..``; image
    ``(C, H, W)`` -> ``C1..``, ``H1..``, ``W1..``; higher ranks -> ``D{axis}_{i}``.
    With ``sequence=True`` (input of a batch-first recurrent layer) a ``(T, F)`` input is
    named ``T1..`` (time steps) and ``F1..`` (features) instead of channels / positions.
    """
    return [list(axis) for axis in _axis_names(tuple(int(d) for d in shape), bool(sequence))]


@functools.lru_cache(maxsize=64)
def _axis_names(shape: tuple[int, ...], sequence: bool) -> tuple[tuple[str, ...], ...]:
    """:func:`default_axis_names`, built once per shape (explainers name every call's
    inputs; an image's names are hundreds of strings)."""
    if len(shape) == 1:
        prefixes = ["X"]
    elif len(shape) == 2 and sequence:
        prefixes = ["T", "F"]
    elif len(shape) == 2:
        prefixes = ["C", "L"]
    elif len(shape) == 3:
        prefixes = ["C", "H", "W"]
    else:
        prefixes = [f"D{a + 1}_" for a in range(len(shape))]
    return tuple(tuple(f"{p}{i + 1}" for i in range(size)) for p, size in zip(prefixes, shape))


@dataclass
class InputBatch:
    """Validated inputs: one float32 or float64 array per model input (other numbers become
    float64), model layout (channels first).

    Attributes
    ----------
    arrays : list of ndarray
        ``(n_samples, *input_shape)`` per input.
    names : list of (list of list of str) or None
        Per input, per axis names when the user gave them (DataFrame columns), else None.
    """

    arrays: list[np.ndarray]
    names: list[list[list[str]] | None]
    name: str = "X"
    #: full shapes as the user gave them (before moving a channels-last axis)
    user_shapes: list[tuple[int, ...]] = field(default_factory=list)
    #: per input, ``(min, max)`` of its values (None: not computed yet)
    value_range: list[tuple[float, float] | None] = field(default_factory=list)

    @property
    def n_samples(self) -> int:
        return self.arrays[0].shape[0]

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        return [a.shape[1:] for a in self.arrays]

    def to_tensors(self, dtype: torch.dtype, device: torch.device,
                   rows: slice | None = None) -> list[torch.Tensor]:
        """The arrays (or the rows ``rows`` of them) as tensors of ``dtype`` on ``device``.

        Raises ValueError when a value overflows ``dtype`` (checked on all rows, from the
        arrays' min / max: a cast is monotone, so it overflows exactly when one of them does).
        """
        for i, a in enumerate(self.arrays):
            if a.size == 0:
                continue
            low, high = self._range(i)
            # the arrays are finite, so only a cast can overflow (checked on the two ends
            # only when they are near the dtype's limit: a cast can round up to it)
            if max(-low, high) < torch.finfo(dtype).max / 2:
                continue
            ends = torch.tensor([low, high], dtype=torch.float64).to(dtype)
            if not bool(torch.isfinite(ends).all()):
                label = self.name if len(self.arrays) == 1 else f"{self.name}[{i}]"
                limit = torch.finfo(dtype).max
                raise ValueError(
                    f"{label} has values beyond the range of {str(dtype).replace('torch.', '')} "
                    f"(|x| > {limit:.3g}); rescale the data or use dtype='double'"
                )
        part = slice(None) if rows is None else rows
        return [torch.tensor(a[part], dtype=dtype, device=device) for a in self.arrays]

    def _range(self, i: int) -> tuple[float, float]:
        """``(min, max)`` of input ``i``, computed once (``coerce_inputs`` fills it in)."""
        while len(self.value_range) <= i:
            self.value_range.append(None)
        if self.value_range[i] is None:
            a = self.arrays[i]
            self.value_range[i] = (float(a.min()), float(a.max()))
        return self.value_range[i]


def _is_scipy_sparse(obj: object) -> bool:
    try:
        from scipy import sparse
    except ImportError:  # pragma: no cover - scipy is a dependency of scikit-learn
        return False
    return bool(sparse.issparse(obj))


def _is_array_like_input(obj: object) -> bool:
    if isinstance(obj, (np.ndarray, torch.Tensor, pd.DataFrame)):
        return obj.ndim >= 1
    return _is_scipy_sparse(obj)


def check_readable_tensor(x: torch.Tensor, name: str) -> None:
    """Raise a ``TypeError`` / ``ValueError`` when ``x`` holds no plain, readable values.

    Rejects ``meta`` tensors (shape only, no data), sparse layouts, quantized, nested and
    complex tensors, each with the conversion to use instead.
    """
    if x.device.type == "meta":
        raise ValueError(
            f"{name} is a tensor on the 'meta' device, which has a shape but no values; "
            "create or load the data on a real device (e.g. 'cpu') before explaining"
        )
    if x.layout != torch.strided:
        raise TypeError(
            f"{name} is a {str(x.layout).replace('torch.', '')} tensor; pass a dense tensor, "
            "e.g. X.to_dense()"
        )
    if x.is_quantized:
        raise TypeError(f"{name} is a quantized tensor; pass X.dequantize()")
    if getattr(x, "is_nested", False):
        raise TypeError(
            f"{name} is a nested tensor; pass a regular tensor (e.g. X.to_padded_tensor(0.0))"
        )
    if x.is_complex():
        raise TypeError(f"{name} is a complex tensor; only real-valued inputs are supported")


#: floating point dtypes kept as given (no float64 copy): explainers convert to their own
#: computation dtype anyway, and ``Attribution.inputs`` views the data as passed
_KEPT_FLOATS = (np.float32, np.float64)


def _tensor_to_numpy(x: torch.Tensor, name: str) -> np.ndarray:
    check_readable_tensor(x, name)
    try:
        if x.dtype in (torch.float32, torch.float64):
            return x.detach().cpu().numpy()  # a CPU tensor's own memory: no copy
        return x.detach().to("cpu", torch.float64).numpy()
    except Exception as err:  # noqa: BLE001 - any tensor subclass that cannot be read
        raise TypeError(
            f"{name} is a {type(x).__name__} on device '{x.device}' whose values cannot be "
            f"read as data ({str(err).splitlines()[0] if str(err) else type(err).__name__}); "
            "pass a plain dense tensor or a numpy array"
        ) from err


def _frame_to_numpy(x: pd.DataFrame, name: str) -> tuple[np.ndarray, list[list[str]]]:
    dup = x.columns[x.columns.duplicated()]
    if len(dup):
        shown = list(dict.fromkeys(dup.tolist()))
        raise ValueError(
            f"{name} has duplicate column names {shown}; every column needs a unique name "
            "(rename or drop the duplicates)"
        )
    for col in x.columns:
        dt = x[col].dtype
        if not (pd.api.types.is_numeric_dtype(dt) or pd.api.types.is_bool_dtype(dt)):
            raise TypeError(
                f"{name} column {col!r} has non-numeric dtype {dt}; encode it "
                "(e.g. OneHotEncoder) before explaining"
            )
        if pd.api.types.is_complex_dtype(dt):
            raise TypeError(f"{name} column {col!r} is complex; only real values are supported")
    return x.to_numpy(dtype=np.float64, na_value=np.nan), [[str(c) for c in x.columns]]


def _unmask(x: np.ma.MaskedArray, name: str) -> np.ndarray:
    """The data of a masked array without masked elements; reject masked elements."""
    mask = np.ma.getmaskarray(x)
    if mask.any():
        mask = np.atleast_1d(mask)
        rows = np.unique(np.nonzero(mask.reshape(mask.shape[0], -1))[0])[:5].tolist()
        raise ValueError(
            f"{name} is a masked array with {int(mask.sum())} masked element(s) (first rows: "
            f"{rows}); a model cannot read masked values: fill them (X.filled(value)) or drop "
            "those rows before explaining"
        )
    return np.ma.getdata(x)


def _one_array(x: object, name: str) -> tuple[np.ndarray, list[list[str]] | None]:
    names = None
    if _is_scipy_sparse(x):
        raise TypeError(
            f"{name} is a scipy sparse {type(x).__name__}; explainers need dense data: pass "
            "X.toarray()"
        )
    if isinstance(x, torch.Tensor):
        arr = _tensor_to_numpy(x, name)
    elif isinstance(x, pd.DataFrame):
        arr, names = _frame_to_numpy(x, name)
    elif isinstance(x, pd.Series):
        raise ValueError(
            f"{name} is a pandas Series (1-D); pass a DataFrame, or X.to_frame().T for one sample"
        )
    else:
        if isinstance(x, np.ma.MaskedArray):
            x = _unmask(x, name)
        try:
            arr = np.asarray(x)
        except (ValueError, TypeError) as err:
            raise TypeError(f"{name} could not be converted to a numeric array: {err}") from err
        if arr.dtype.kind not in "biuf":
            raise TypeError(
                f"{name} has dtype {arr.dtype}; expected numbers (int, float or bool). "
                "Encode categorical features before explaining"
            )
        if arr.dtype.type not in _KEPT_FLOATS:
            arr = arr.astype(np.float64)
    return arr, names


def _check_array(arr: np.ndarray, name: str) -> tuple[float, float]:
    """Check shape and finiteness; return ``(min, max)`` of the (finite) values.

    Finiteness is read from the min and max (NaN propagates into both, an infinity is one of
    them): two reductions without a full-size boolean temporary; the detailed count runs only
    when there is something to report.
    """
    if arr.ndim < 2:
        raise ValueError(
            f"{name} must have a leading sample axis, got a {arr.ndim}-D array of shape "
            f"{arr.shape}; use X.reshape(1, -1) for a single sample"
        )
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty: it has 0 samples")
    if arr.size == 0:
        raise ValueError(f"{name} has shape {arr.shape}: no features")
    low, high = arr.min(), arr.max()
    if np.isfinite(low) and np.isfinite(high):
        return float(low), float(high)
    bad = ~np.isfinite(arr)
    n_nan = int(np.isnan(arr).sum())
    n_inf = int(bad.sum()) - n_nan
    rows = np.unique(np.nonzero(bad.reshape(arr.shape[0], -1))[0])[:5].tolist()
    raise ValueError(
        f"{name} contains {n_nan} NaN and {n_inf} infinite value(s) (first rows: {rows}); "
        "impute or drop them before explaining"
    )


class ShapeMismatchError(ValueError):
    """The data's per-sample shape differs from the one the explainer / model expects."""


def _check_shape(
    arr: np.ndarray,
    expected: tuple[int, ...],
    name: str,
    user_expected: tuple[int, ...],
    user_shape: tuple[int, ...],
    channels_first: bool,
) -> None:
    """Compare a model-layout array with the expected per-sample shape; hint at the layout."""
    got = arr.shape[1:]
    if got == tuple(expected):
        return
    if len(got) != len(expected):
        hint = ""
        if len(user_shape) == len(expected):
            hint = (
                f"; {name} has the shape of one sample: add the batch axis with {name}[None]"
                if tuple(user_shape) == tuple(user_expected)
                else f"; if {name} is a single sample, add the batch axis with {name}[None]"
            )
        raise ShapeMismatchError(
            f"{name} has rank {len(user_shape)} (shape {tuple(user_shape)}), but the explainer "
            f"expects rank {len(expected) + 1}: (n_samples, {', '.join(map(str, user_expected))})"
            f"{hint}"
        )
    if len(expected) == 1:
        whose = "the model expects" if name.startswith("X_ref") else (
            "the explainer was fitted with")
        raise ShapeMismatchError(
            f"{name} has {got[0]} features, but {whose} {expected[0]} features")
    user_got = tuple(user_shape[1:])
    hint = ""
    if channels_first and (user_got[-1], *user_got[:-1]) == tuple(expected):
        hint = (
            "; the channel axis seems to be last (channels-last data): did you mean "
            "channels_first=False?"
        )
    elif not channels_first and user_got == tuple(expected):
        hint = (
            "; the data seem to be channels-first already: did you mean channels_first=True "
            "(the default)?"
        )
    raise ShapeMismatchError(
        f"{name} has per-sample shape {user_got}, expected {tuple(user_expected)}{hint}"
    )


#: largest input (values) that :func:`layout_hint` tries as one sample
MAX_HINT_VALUES = 2**20


def layout_hint(
    run: Callable[[list[torch.Tensor]], object],
    xs: Sequence[torch.Tensor],
    *,
    channels_first: bool,
    name: str = "X",
) -> str:
    """A "did you mean ...?" suffix for an error of a model that failed on ``xs``.

    ``xs`` are all rows of the data in model layout (after moving a channels-last axis when
    ``channels_first`` is False). ``run`` is a side-effect-free forward of the model. The
    two usual layout mistakes are tried on the first row (never on the user's own model
    object): a single sample passed without its batch axis (``X[None]``), and channels-last
    images / signals without ``channels_first=False`` (or channels-first data with it).
    Returns "" when neither alternative runs.
    """

    def runs(alt: list[torch.Tensor]) -> bool:
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                run(alt)
        except Exception:  # noqa: BLE001 - any failure means "not this layout"
            return False
        return True

    # one sample without its batch axis: all rows together are the sample
    def as_sample(x: torch.Tensor) -> torch.Tensor:
        user = x if channels_first or x.ndim < 3 else torch.movedim(x, 1, -1)
        sample = user if channels_first or user.ndim < 2 else torch.movedim(user, -1, 0)
        return sample[None]

    if sum(x.numel() for x in xs) <= MAX_HINT_VALUES and runs([as_sample(x) for x in xs]):
        return (
            f"; did you mean {name}[None]? {name} looks like a single sample without its "
            "batch axis"
        )
    if all(x.ndim >= 3 for x in xs):
        if channels_first:
            alt = [torch.movedim(x[:1], -1, 1) for x in xs]
            if runs(alt):
                return (
                    f"; did you mean channels_first=False? the last axis of {name} fits as the "
                    "channel axis"
                )
        elif runs([torch.movedim(x[:1], 1, -1) for x in xs]):
            return (
                f"; did you mean channels_first=True? {name} seems to be channels-first already"
            )
    return ""


_RNN_TYPES = (torch.nn.RNNBase,)


def find_batch_first_rnn(model: object) -> str | None:
    """Class name of a batch-first ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` inside ``model``.

    Looks into torch modules, skorch nets (``module_``) and the last step of scikit-learn
    Pipelines; None when there is none.
    """
    steps = getattr(model, "steps", None)
    if isinstance(steps, list) and steps:
        model = steps[-1][1]
    module = getattr(model, "module_", model)
    if not isinstance(module, torch.nn.Module):
        return None
    for m in module.modules():
        if isinstance(m, _RNN_TYPES) and getattr(m, "batch_first", False):
            return type(m).__name__
    return None


def sequence_warning(rnn: str, shape: Sequence[int], name: str = "X") -> None:
    """Warn that a 3-D input of a batch-first recurrent model is read as (n, T, F)."""
    t, f = shape
    warnings.warn(
        f"the model contains a batch-first nn.{rnn}, so {name} of shape (n, {t}, {f}) is read "
        f"as (samples, time steps, features): axis 1 is time (named T1..T{t}), axis 2 the "
        f"features (F1..F{f}), not channels / positions. Plots and Attribution.to_frame() "
        "still put axis 1 in the 'channel' slot (aggr_channels aggregates over time steps)",
        UserWarning,
        stacklevel=4,
    )


def coerce_inputs(
    X: object,
    *,
    n_inputs: int | None = None,
    input_shapes: Sequence[tuple[int, ...]] | None = None,
    channels_first: bool = True,
    name: str = "X",
) -> InputBatch:
    """Validate and convert user data to an :class:`InputBatch`.

    Parameters
    ----------
    X : array-like, DataFrame, Tensor, or list of those
        One entry per model input for multi-input models. Scipy sparse matrices, masked
        arrays with masked elements, ``meta`` / sparse / quantized tensors and DataFrames
        with duplicate column names are rejected with an error saying what to pass instead.
    n_inputs : int, optional
        Number of model inputs, when known.
    input_shapes : list of tuple, optional
        Expected per-sample shapes (model layout) to check against.
    channels_first : bool
        When False, image / signal inputs come as ``(n, ..., C)`` and are moved to
        ``(n, C, ...)``.
    name : str
        Name used in error messages ("X", "X_ref", ...).

    Returns
    -------
    InputBatch
    """
    is_list_of_arrays = (
        isinstance(X, (list, tuple)) and len(X) > 0 and all(_is_array_like_input(x) for x in X)
    )
    # for a single-input model a list of rows is one array, not several inputs
    parts = list(X) if is_list_of_arrays and n_inputs != 1 else [X]
    if n_inputs is not None and len(parts) != n_inputs:
        raise ValueError(
            f"the model has {n_inputs} input(s), but {name} provides {len(parts)}; pass a list "
            "with one array per model input"
        )
    arrays, names, user_shapes, ranges = [], [], [], []
    for i, part in enumerate(parts):
        label = name if len(parts) == 1 else f"{name}[{i}]"
        if part is None:
            raise TypeError(f"{label} is None")
        arr, nm = _one_array(part, label)
        ranges.append(_check_array(arr, label))
        user_shape = tuple(arr.shape)
        if not channels_first and arr.ndim > 2:
            arr = np.moveaxis(arr, -1, 1)
        if input_shapes is not None:
            expected = tuple(input_shapes[i])
            user_expected = (
                expected if channels_first or len(expected) < 2 else (*expected[1:], expected[0])
            )
            _check_shape(arr, expected, label, user_expected, user_shape, channels_first)
        arrays.append(np.ascontiguousarray(arr))
        names.append(nm)
        user_shapes.append(user_shape)
    n = {a.shape[0] for a in arrays}
    if len(n) > 1:
        raise ValueError(
            f"all inputs of {name} must have the same number of samples, got {sorted(n)}"
        )
    return InputBatch(arrays, names, name, user_shapes, ranges)


def row_index_of(X: object) -> pd.Index | None:
    """The row labels of ``X`` when it is a DataFrame (first input of a list), else None."""
    first = X[0] if isinstance(X, (list, tuple)) and X else X
    index = getattr(first, "index", None)
    return index.copy() if isinstance(index, pd.Index) else None
