"""Input coercion and validation: numpy / pandas / torch / lists of those -> arrays + names.

Everything the user hands to ``fit`` or ``explain`` passes through :func:`coerce_inputs`,
which returns float64 numpy arrays in the *model* layout (channels first) together with
per-axis names. All checks raise ``TypeError`` / ``ValueError`` naming the problem, so a
bad input never reaches torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

__all__ = [
    "InputBatch",
    "coerce_inputs",
    "default_axis_names",
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


def default_axis_names(shape: Sequence[int]) -> list[list[str]]:
    """innsight's default names for one input of per-sample ``shape`` (channels first).

    Tabular ``(p,)`` -> ``X1..Xp``; signal ``(C, L)`` -> ``C1..``, ``L1..``; image
    ``(C, H, W)`` -> ``C1..``, ``H1..``, ``W1..``; higher ranks -> ``D{axis}_{i}``.
    """
    shape = tuple(shape)
    if len(shape) == 1:
        prefixes = ["X"]
    elif len(shape) == 2:
        prefixes = ["C", "L"]
    elif len(shape) == 3:
        prefixes = ["C", "H", "W"]
    else:
        prefixes = [f"D{a + 1}_" for a in range(len(shape))]
    return [[f"{p}{i + 1}" for i in range(size)] for p, size in zip(prefixes, shape)]


@dataclass
class InputBatch:
    """Validated inputs: one float64 array per model input, model layout (channels first).

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

    @property
    def n_samples(self) -> int:
        return self.arrays[0].shape[0]

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        return [a.shape[1:] for a in self.arrays]

    def to_tensors(self, dtype: torch.dtype, device: torch.device) -> list[torch.Tensor]:
        """The arrays as tensors; raises ValueError when a value overflows ``dtype``."""
        tensors = [torch.tensor(a, dtype=dtype, device=device) for a in self.arrays]
        for i, t in enumerate(tensors):
            # the arrays are finite, so only a cast can overflow: min / max suffice (no
            # full-size boolean temporary)
            if t.numel() == 0:
                continue
            low, high = torch.aminmax(t)
            if not (bool(torch.isfinite(low)) and bool(torch.isfinite(high))):
                label = self.name if len(tensors) == 1 else f"{self.name}[{i}]"
                limit = torch.finfo(dtype).max
                raise ValueError(
                    f"{label} has values beyond the range of {str(dtype).replace('torch.', '')} "
                    f"(|x| > {limit:.3g}); rescale the data or use dtype='double'"
                )
        return tensors


def _is_array_like_input(obj: object) -> bool:
    if isinstance(obj, (np.ndarray, torch.Tensor, pd.DataFrame)):
        return obj.ndim >= 1
    return False


def _one_array(x: object, name: str) -> tuple[np.ndarray, list[list[str]] | None]:
    names = None
    if isinstance(x, torch.Tensor):
        if x.is_complex():
            raise TypeError(f"{name} is a complex tensor; only real-valued inputs are supported")
        arr = x.detach().to("cpu", torch.float64).numpy()
    elif isinstance(x, pd.DataFrame):
        for col in x.columns:
            dt = x[col].dtype
            if not (pd.api.types.is_numeric_dtype(dt) or pd.api.types.is_bool_dtype(dt)):
                raise TypeError(
                    f"{name} column {col!r} has non-numeric dtype {dt}; encode it "
                    "(e.g. OneHotEncoder) before explaining"
                )
            if pd.api.types.is_complex_dtype(dt):
                raise TypeError(f"{name} column {col!r} is complex; only real values are supported")
        names = [[str(c) for c in x.columns]]
        arr = x.to_numpy(dtype=np.float64, na_value=np.nan)
    elif isinstance(x, pd.Series):
        raise ValueError(
            f"{name} is a pandas Series (1-D); pass a DataFrame, or X.to_frame().T for one sample"
        )
    else:
        try:
            arr = np.asarray(x)
        except (ValueError, TypeError) as err:
            raise TypeError(f"{name} could not be converted to a numeric array: {err}") from err
        if arr.dtype.kind not in "biuf":
            raise TypeError(
                f"{name} has dtype {arr.dtype}; expected numbers (int, float or bool). "
                "Encode categorical features before explaining"
            )
        arr = arr.astype(np.float64, copy=False)
    return arr, names


def _check_array(arr: np.ndarray, name: str) -> None:
    if arr.ndim < 2:
        raise ValueError(
            f"{name} must have a leading sample axis, got a {arr.ndim}-D array of shape "
            f"{arr.shape}; use X.reshape(1, -1) for a single sample"
        )
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty: it has 0 samples")
    if arr.size == 0:
        raise ValueError(f"{name} has shape {arr.shape}: no features")
    bad = ~np.isfinite(arr)
    if bad.any():
        n_nan = int(np.isnan(arr).sum())
        n_inf = int(bad.sum()) - n_nan
        rows = np.unique(np.nonzero(bad.reshape(arr.shape[0], -1))[0])[:5].tolist()
        raise ValueError(
            f"{name} contains {n_nan} NaN and {n_inf} infinite value(s) (first rows: {rows}); "
            "impute or drop them before explaining"
        )


def _check_shape(arr: np.ndarray, expected: tuple[int, ...], name: str, user_expected) -> None:
    got = arr.shape[1:]
    if got == tuple(expected):
        return
    if len(got) != len(expected):
        raise ValueError(
            f"{name} has rank {arr.ndim} (shape {arr.shape}), but the explainer expects rank "
            f"{len(expected) + 1}: (n_samples, {', '.join(map(str, user_expected))})"
        )
    if len(expected) == 1:
        whose = "the model expects" if name.startswith("X_ref") else (
            "the explainer was fitted with")
        raise ValueError(f"{name} has {got[0]} features, but {whose} {expected[0]} features")
    raise ValueError(
        f"{name} has per-sample shape {tuple(got)}, expected {tuple(user_expected)}"
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
        One entry per model input for multi-input models.
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
    arrays, names = [], []
    for i, part in enumerate(parts):
        label = name if len(parts) == 1 else f"{name}[{i}]"
        if part is None:
            raise TypeError(f"{label} is None")
        arr, nm = _one_array(part, label)
        _check_array(arr, label)
        if not channels_first and arr.ndim > 2:
            arr = np.moveaxis(arr, -1, 1)
        if input_shapes is not None:
            expected = tuple(input_shapes[i])
            user_expected = (
                expected if channels_first or len(expected) < 2 else (*expected[1:], expected[0])
            )
            _check_shape(arr, expected, label, user_expected)
        arrays.append(np.ascontiguousarray(arr))
        names.append(nm)
    n = {a.shape[0] for a in arrays}
    if len(n) > 1:
        raise ValueError(
            f"all inputs of {name} must have the same number of samples, got {sorted(n)}"
        )
    return InputBatch(arrays, names, name)
