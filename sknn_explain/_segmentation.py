"""Interpretable features for model-agnostic explainers: grid segmentation and feature maps.

LIME and Kernel SHAP switch *features* on and off. For tabular inputs ``(p,)`` every column
is a feature. For signals ``(C, L)`` and images ``(C, H, W)`` (model layout, channels first)
a feature is a *segment*: a cell of a regular grid over the spatial axes that spans all
channels. With ``segment_size=(h, w)`` an image is cut into ``ceil(H / h) x ceil(W / w)``
rectangles (the last row/column of cells may be smaller); the default cuts every spatial
axis into (at most) 8 cells. Any other segmentation (superpixels, channel-wise groups,
groups of one-hot columns) can be given as an integer label array.

:func:`build_feature_map` turns the segmentation of every model input into one global
feature index per input element, which is what the explainers use to build masked inputs
and to spread a feature's attribution back onto the input shape.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "DEFAULT_CELLS", "FeatureMap", "build_feature_map", "check_segment_size", "grid_segments",
]

#: cells per spatial axis of the default grid
DEFAULT_CELLS = 8


def check_segment_size(segment_size: object) -> tuple[int, ...] | None:
    """Validate ``segment_size`` (None, a positive int or a tuple of positive ints)."""
    if segment_size is None:
        return None
    try:
        sizes = (segment_size,) if np.isscalar(segment_size) else tuple(segment_size)
    except TypeError:
        sizes = (segment_size,)
    if not sizes or any(
        isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, np.integer)) or s < 1
        for s in sizes
    ):
        raise ValueError(
            f"segment_size must be a positive int or a tuple of positive ints, got "
            f"{segment_size!r}"
        )
    return tuple(int(s) for s in sizes)


def _check_cell_sizes(segment_size: object, n_spatial: int) -> tuple[int, ...] | None:
    sizes = check_segment_size(segment_size)
    if sizes is None:
        return None
    if len(sizes) == 1:
        sizes = sizes * n_spatial
    if len(sizes) != n_spatial:
        raise ValueError(
            f"segment_size {segment_size!r} has {len(sizes)} entries, but the input has "
            f"{n_spatial} spatial axis/axes; give one int or one size per spatial axis"
        )
    return tuple(int(s) for s in sizes)


def grid_segments(shape: Sequence[int], segment_size: object = None) -> np.ndarray:
    """Label every element of one sample of per-sample ``shape`` with its grid cell.

    Parameters
    ----------
    shape : tuple of int
        Per-sample shape in model layout: ``(p,)`` tabular, ``(C, L)`` signal,
        ``(C, H, W)`` image (any rank >= 2 works: axis 0 is channels).
    segment_size : int or tuple of int, optional
        Cell size along each spatial axis (one int: the same for all axes). Default:
        ``ceil(size / 8)``, i.e. at most 8 cells per spatial axis. Ignored for tabular
        inputs, where every feature is its own segment.

    Returns
    -------
    ndarray of int64, shape ``shape``
        Labels ``0 .. n_segments - 1`` in row-major order of the cells; all channels of a
        cell share its label.

    Examples
    --------
    >>> from sknn_explain._segmentation import grid_segments
    >>> grid_segments((1, 4, 4), 2)[0]
    array([[0, 0, 1, 1],
           [0, 0, 1, 1],
           [2, 2, 3, 3],
           [2, 2, 3, 3]])
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) == 0 or any(s < 1 for s in shape):
        raise ValueError(f"cannot segment an input of per-sample shape {shape}")
    if len(shape) == 1:
        return np.arange(shape[0], dtype=np.int64)
    spatial = shape[1:]
    sizes = _check_cell_sizes(segment_size, len(spatial))
    if sizes is None:
        sizes = tuple(math.ceil(s / DEFAULT_CELLS) for s in spatial)
    n_cells = tuple(math.ceil(s / c) for s, c in zip(spatial, sizes))
    coords = np.meshgrid(
        *[np.arange(s) // c for s, c in zip(spatial, sizes)], indexing="ij"
    )
    labels = np.ravel_multi_index(tuple(coords), n_cells).astype(np.int64)
    return np.broadcast_to(labels, shape).copy()


def _user_segments(
    seg: object, shape: tuple[int, ...], channels_first: bool, label: str
) -> np.ndarray:
    arr = np.asarray(seg)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{label} must hold integer labels, got dtype {arr.dtype}")
    user_shape = shape if channels_first or len(shape) < 2 else (*shape[1:], shape[0])
    if arr.shape == user_shape:
        if not channels_first and len(shape) >= 2:
            arr = np.moveaxis(arr, -1, 0)
        return arr.astype(np.int64)
    if len(shape) >= 2 and arr.shape == shape[1:]:  # spatial only: shared by all channels
        return np.broadcast_to(arr, shape).astype(np.int64)
    allowed = f"{user_shape}" + (f" or {shape[1:]} (spatial only)" if len(shape) >= 2 else "")
    raise ValueError(f"{label} has shape {arr.shape}, expected {allowed}")


@dataclass
class FeatureMap:
    """Interpretable features of all model inputs.

    Attributes
    ----------
    labels : list of ndarray
        Per input, the global feature index (``0 .. n_features - 1``) of every element,
        shape = per-sample shape (model layout).
    n_features : int
        Number of features over all inputs.
    sizes : ndarray
        Number of input elements in each feature.
    """

    labels: list[np.ndarray]
    n_features: int
    sizes: np.ndarray

    def flat_labels(self) -> list[np.ndarray]:
        return [lab.reshape(-1) for lab in self.labels]


def build_feature_map(
    shapes: Sequence[tuple[int, ...]],
    segments: object = None,
    segment_size: object = None,
    channels_first: bool = True,
) -> FeatureMap:
    """Segment every input and number the features consecutively over inputs.

    Parameters
    ----------
    shapes : list of tuple
        Per-sample shape of each input (model layout).
    segments : array-like of int, or list of (array-like or None), optional
        Custom labels per input in the user's layout (channels last when
        ``channels_first=False``), either of the full per-sample shape or of the spatial
        shape only (then shared by all channels). Any integers; equal labels form one
        feature. ``None`` (or a ``None`` entry) uses :func:`grid_segments`.
    segment_size : int or tuple of int, optional
        Grid cell size for inputs without custom labels.
    channels_first : bool
        Layout of ``segments``.

    Returns
    -------
    FeatureMap
    """
    shapes = [tuple(s) for s in shapes]
    if segments is None:
        per_input = [None] * len(shapes)
    elif len(shapes) == 1:
        one = segments
        if (
            isinstance(segments, (list, tuple)) and len(segments) == 1
            and (segments[0] is None or np.ndim(segments[0]) >= 1)
        ):
            one = segments[0]
        per_input = [one]
    else:
        if not isinstance(segments, (list, tuple)) or len(segments) != len(shapes):
            raise ValueError(
                f"the model has {len(shapes)} inputs: segments must be a list with one entry "
                "(label array or None) per input"
            )
        per_input = list(segments)
    labels, offset, sizes = [], 0, []
    for i, (shape, seg) in enumerate(zip(shapes, per_input)):
        name = "segments" if len(shapes) == 1 else f"segments[{i}]"
        if seg is None:
            raw = grid_segments(shape, segment_size)
        else:
            raw = _user_segments(seg, shape, channels_first, name)
        flat = raw.reshape(-1)
        if np.array_equal(flat, np.arange(flat.size)):  # one feature per element, in order
            inverse, counts = flat, np.ones(flat.size, dtype=np.int64)
        else:
            _, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True)
        labels.append(inverse.reshape(shape).astype(np.int64) + offset)
        sizes.append(counts)
        offset += len(counts)
    return FeatureMap(labels, offset, np.concatenate(sizes).astype(np.int64))
