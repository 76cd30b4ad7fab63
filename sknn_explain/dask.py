"""Explain Dask collections: lazy attributions for data that outgrow one process.

``explainer.explain(X)`` with a ``dask.array.Array`` or ``dask.dataframe.DataFrame``
returns a :class:`LazyAttribution` whose arrays are dask arrays chunked along rows like
``X``; :class:`~sknn_explain.AttributionTransformer` ``transform`` returns a dask array /
DataFrame. Nothing is computed until the result is computed or stored
(:meth:`LazyAttribution.to_zarr`, :meth:`LazyAttribution.to_parquet`), except that the
partition lengths of a dask DataFrame are counted first (one light pass over the data, as
``to_dask_array(lengths=True)``): the global row index of every row keys the random draws,
so SmoothGrad / ExpectedGradients / KernelSHAP / LIME give the same numbers as in one
process for the same integer ``random_state``.

The fitted explainer is serialized once with its tensors on the CPU and shipped as one
task that every block depends on (each worker receives it once, not per block); a worker
moves it to its own device on first use, so
``device="auto"`` uses each worker's GPU on a ``dask-cuda`` cluster.

Requires ``pip install sknn-explain[dask]`` (``dask[array,dataframe]``, ``distributed``);
the rest of the package never imports dask.
"""

from __future__ import annotations

import contextlib
import copy
import io
import pickle
import threading
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

from ._data import resolve_device
from ._random import ROW_CONTEXT, RowContext, seed_entropy
from .attribution import FRAME_COLUMNS, Attribution
from .explainers.base import is_dask_collection, register_lazy_explain

__all__ = ["WORKER_MALLOC_ENV", "LazyAttribution", "configure_workers", "explain",
           "feature_importances", "transform"]

#: glibc allocator settings for worker processes. distributed's nanny starts workers with
#: ``MALLOC_TRIM_THRESHOLD_=65536``; setting any malloc threshold switches off glibc's dynamic
#: mmap threshold, so every large tensor of an explanation is mmap-ed and unmapped again:
#: measured 1.5x slower integrated gradients per worker. A large mmap threshold restores the
#: in-process speed (and keeps returning memory above 256 MiB to the OS).
WORKER_MALLOC_ENV = {"MALLOC_TRIM_THRESHOLD_": 2**28, "MALLOC_MMAP_THRESHOLD_": 2**28}


def configure_workers() -> None:
    """Use :data:`WORKER_MALLOC_ENV` for Dask worker processes started from now on.

    Call it before creating a ``LocalCluster`` (or put the two variables into the
    environment of ``dask worker`` processes on a real cluster). Only the environment of new
    worker processes changes; this process and running workers are left alone.

    Examples
    --------
    >>> from sknn_explain.dask import configure_workers
    >>> configure_workers()  # doctest: +SKIP
    >>> cluster = LocalCluster(n_workers=2)  # doctest: +SKIP
    """
    import dask
    import distributed  # noqa: F401 - registers the "distributed" config defaults

    dask.config.set({f"distributed.nanny.pre-spawn-environ.{key}": value
                     for key, value in WORKER_MALLOC_ENV.items()})

_INSTALL = "dask support needs `pip install sknn-explain[dask]` (dask[array,dataframe])"


def _dask():
    try:
        import dask
        import dask.array  # noqa: F401
    except ImportError as err:  # pragma: no cover - exercised only without dask
        raise ImportError(_INSTALL) from err
    return dask


# ---------------------------------------------------------------------- shipping the model
_LOAD = threading.local()  # the device tensors are restored to while unpickling


def _restore_tensor(t: torch.Tensor, parameter: bool, requires_grad: bool) -> torch.Tensor:
    device = getattr(_LOAD, "device", None)
    if device is not None and t.device != device:
        t = t.to(device)
    if parameter:
        return torch.nn.Parameter(t, requires_grad=requires_grad)
    return t.requires_grad_(requires_grad) if requires_grad else t


class _CPUPickler(pickle.Pickler):
    """Pickle tensors as CPU tensors, restored by :func:`_restore_tensor`."""

    def __init__(self, file) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._plain: set[int] = set()
        self._keep: list[torch.Tensor] = []

    def reducer_override(self, obj):
        if isinstance(obj, torch.Tensor) and id(obj) not in self._plain:
            cpu = obj.detach().to("cpu")
            if cpu is obj or id(cpu) == id(obj):
                cpu = obj.detach()
            self._plain.add(id(cpu))
            self._keep.append(cpu)
            return _restore_tensor, (cpu, isinstance(obj, torch.nn.Parameter),
                                     bool(obj.requires_grad))
        return NotImplemented


def _explainer_of(est: object) -> object:
    return getattr(est, "explainer_", est)


class ShippedEstimator:
    """A fitted explainer / transformer serialized once, loaded once per worker process.

    The payload holds every tensor on the CPU; the first :meth:`get` on a worker loads it
    onto that worker's device (``resolve_device(explainer.device)``: with ``"auto"`` the
    worker's GPU when it has one) and caches it for every later block.
    """

    def __init__(self, est: object) -> None:
        buf = io.BytesIO()
        _CPUPickler(buf).dump(est)
        self.payload = buf.getvalue()
        self._init_cache()

    def _init_cache(self) -> None:
        self._loaded = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        return {"payload": self.payload}

    def __setstate__(self, state: dict) -> None:
        self.payload = state["payload"]
        self._init_cache()

    def get(self) -> object:
        with self._lock:
            if self._loaded is None:
                est = pickle.loads(self.payload)
                explainer = _explainer_of(est)
                device = resolve_device(getattr(explainer, "device", "cpu"))
                if device.type != "cpu":
                    _LOAD.device = device
                    try:
                        est = pickle.loads(self.payload)
                    finally:
                        _LOAD.device = None
                    _explainer_of(est).device_ = device
                else:
                    explainer.device_ = device
                self._loaded = est
        return self._loaded


def _frozen_seed(est: object) -> object:
    """A shallow copy whose ``random_state`` (None / RandomState / Generator) is one int.

    The int is the entropy ``explain`` would derive in one process, so a RandomState gives
    the same numbers distributed as in-process; None draws fresh entropy once.
    """
    explainer = _explainer_of(est)
    rs = getattr(explainer, "random_state", 0)
    if isinstance(rs, (int, np.integer)) and not isinstance(rs, bool):
        return est
    entropy = seed_entropy(rs)
    if entropy is None:
        entropy = int(np.random.SeedSequence().generate_state(1)[0])
    frozen = copy.copy(explainer)
    frozen.random_state = int(entropy)
    if explainer is est:
        return frozen
    est = copy.copy(est)
    est.explainer_ = frozen
    return est


def _ship(est: object):
    """The shipped estimator as one graph task that every block depends on.

    Its bytes travel to the scheduler once with the graph; the worker that runs the task
    holds the result and the others fetch it once (``distributed`` moves a dependency to a
    worker once, not per block). Unlike ``client.scatter`` data, a task can be recomputed,
    so losing every worker that held it is survivable.
    """
    dask = _dask()
    shipped = ShippedEstimator(est)
    return dask.delayed(shipped, pure=True, name=f"sknn-explainer-{id(shipped):x}")


def _resolve(shipped: object) -> object:
    return shipped.get() if isinstance(shipped, ShippedEstimator) else shipped


# ---------------------------------------------------------------------- input handling
def _as_array(X: object, check: Callable | None = None, name: str = "X"):
    """``(dask array with known row chunks, columns or None, check(probe))``.

    ``check`` gets a one-row in-memory stand-in of ``X`` (zeros, same shape / columns)
    before anything is computed: bad input raises before any task runs. Only then are the
    partition lengths of a dask DataFrame counted.
    """
    _dask()
    import dask.array as da

    if isinstance(X, da.Array):
        if X.ndim < 2:
            raise ValueError(f"{name} must be (n_samples, *input_shape), got a {X.ndim}-d "
                             "dask array")
        if any(np.isnan(c) for c in X.chunks[0]) or any(np.isnan(s) for s in X.shape[1:]):
            raise ValueError(
                f"{name} is a dask array with unknown chunk sizes (nan, e.g. after boolean "
                f"indexing): call {name}.compute_chunk_sizes() first; the row of every "
                "sample must be known to key its random draws and to store the result")
        dtype = X.dtype if np.issubdtype(X.dtype, np.number) else np.float64
        checked = check(np.zeros((1, *X.shape[1:]), dtype=dtype)) if check else None
        arr, columns = X, None
    elif hasattr(X, "to_dask_array") and hasattr(X, "columns"):
        columns = list(X.columns)
        bad = [c for c, t in X.dtypes.items() if not pd.api.types.is_numeric_dtype(t)]
        if bad:
            raise ValueError(f"{name} has non-numeric columns {bad[:5]}; encode them first")
        probe = pd.DataFrame({c: np.zeros(1, dtype=t) for c, t in X.dtypes.items()})
        checked = check(probe) if check else None
        lengths = tuple(int(v) for v in X.map_partitions(len).compute())
        arr = X.to_dask_array(lengths=lengths)
    else:
        raise TypeError(f"{name} must be a dask array or dask DataFrame, got "
                        f"{type(X).__name__}")
    if any(len(c) > 1 for c in arr.chunks[1:]):  # a block holds whole samples
        arr = arr.rechunk({i: -1 for i in range(1, arr.ndim)})
    return arr, columns, checked


def _offsets(arr) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(arr.chunks[0])[:-1]]).astype(np.int64)


def _data_range(est: object, arr) -> tuple:
    """``(max, min)`` of the whole data, per feature, as dask arrays when the method scales
    by the range of the explained data (``Explainer._uses_data_range``, SmoothGrad's noise)."""
    if getattr(_explainer_of(est), "_uses_data_range", False):
        return arr.max(axis=0), arr.min(axis=0)
    return None, None


def _context(offset: int, hi, lo) -> RowContext:
    rng = None if hi is None else ((np.asarray(hi), np.asarray(lo)),)
    return RowContext(offset=int(offset), data_range=rng)


def _np_dtype(explainer: object) -> np.dtype:
    return np.dtype(np.float64 if explainer.dtype_ == torch.float64 else np.float32)


# ---------------------------------------------------------------------- explain
def _explain_block(block, shipped, offsets, hi, lo, output_idx, output_label, dtype,
                   has_goal, block_info=None):
    explainer = _resolve(shipped)
    offset = offsets[block_info[0]["chunk-location"][0]]
    token = ROW_CONTEXT.set(_context(offset, hi, lo))
    try:
        res = explainer.explain(block, output_idx=output_idx, output_label=output_label)
    finally:
        ROW_CONTEXT.reset(token)
    n = block.shape[0]
    vals = np.concatenate([layer[0].reshape(n, -1, layer[0].shape[-1])
                           for layer in res.raw_values], axis=-1)
    parts = [vals, np.concatenate(res._predictions, axis=-1)[:, None, :]]
    if has_goal:
        parts.append(np.concatenate(res._goal, axis=-1)[:, None, :])
    return np.concatenate([p.astype(dtype, copy=False) for p in parts], axis=1)


def explain(explainer: object, X: object, output_idx: object = None,
            output_label: object = None) -> LazyAttribution:
    """Lazily explain a dask array / dask DataFrame (``explainer.explain`` delegates here).

    Everything that can be checked is checked before any task runs: the explainer is
    fitted, ``X`` has known chunk sizes, its shape / columns match the fitted model, the
    output selection is valid.

    Parameters
    ----------
    explainer : Explainer
        A fitted explainer of a one-input model.
    X : dask.array.Array or dask.dataframe.DataFrame
        ``(n_samples, *input_shape)``, chunked along rows.
    output_idx, output_label : optional
        As for :meth:`Explainer.explain`.

    Returns
    -------
    LazyAttribution
        Computed by its ``compute`` / ``to_zarr`` / ``to_parquet``.

    Examples
    --------
    >>> import dask.array as da, numpy as np, torch
    >>> from sknn_explain import Gradient
    >>> from sknn_explain.dask import explain
    >>> X = da.from_array(np.ones((6, 3), dtype="float32"), chunks=3)
    >>> res = explain(Gradient().fit(torch.nn.Linear(3, 2)), X)
    >>> res.n_samples, res.chunks
    (6, (3, 3))
    >>> res.compute().values.shape
    (6, 3, 2)
    """
    explainer._check_fitted()
    if explainer.n_inputs_ not in (None, 1):
        raise ValueError("Dask inputs are supported for models with one input; the model "
                         f"has {explainer.n_inputs_}")
    explainer = _frozen_seed(explainer)  # one seed for every block (None / RandomState)
    # one row of zeros explained here: every shape / column / output check of the
    # in-memory path runs before any task, and it tells the layout of the result
    arr, _, probe = _as_array(X, lambda x: explainer.explain(
        x, output_idx=output_idx, output_label=output_label))
    has_goal = probe._goal is not None
    sizes = [len(names) for names in probe.output_names]
    dtype = _np_dtype(explainer)
    shipped = _ship(explainer)
    hi, lo = _data_range(explainer, arr)
    width = int(np.prod(arr.shape[1:])) + 1 + int(has_goal)
    packed = arr.map_blocks(
        _explain_block, shipped, _offsets(arr), hi, lo, output_idx, output_label, dtype,
        has_goal, chunks=(arr.chunks[0], (width,), (int(sum(sizes)),)),
        drop_axis=list(range(1, arr.ndim)), new_axis=[1, 2], dtype=dtype,
        meta=np.empty((0, 0, 0), dtype=dtype),
        name=f"sknn-{explainer.method_name.lower()}",
    )
    result = LazyAttribution(
        method=probe.method, packed=packed, inputs=arr, input_names=probe.input_names,
        output_names=probe.output_names, output_layers=probe.output_layers,
        output_idx=probe.output_idx, sizes=sizes, has_goal=has_goal,
        goal_description=probe.goal_description, channels_first=probe.channels_first,
    )
    result.output_space = getattr(probe, "output_space", None)
    return result


# dask inputs of Explainer.explain come here (the explainers do not import this module)
register_lazy_explain(is_dask_collection, explain)


# ---------------------------------------------------------------------- the lazy result
class _Spec:
    """The metadata of a LazyAttribution, without its dask arrays (shipped with tasks)."""

    def __init__(self, lazy: LazyAttribution) -> None:
        for name in ("method", "input_names", "output_names", "output_layers", "output_idx",
                     "goal_description", "channels_first", "output_space", "_sizes",
                     "_has_goal", "_shape", "_n_features"):
            setattr(self, name, getattr(lazy, name))


def _block_attribution(block: np.ndarray, lazy: object,
                       inputs: np.ndarray | None = None) -> Attribution:
    """An in-memory :class:`Attribution` of one computed block of ``lazy``."""
    n, p = block.shape[0], lazy._n_features
    bounds = np.cumsum([0, *lazy._sizes])
    values = [[block[:, :p, a:b].reshape(n, *lazy._shape, b - a)]
              for a, b in zip(bounds[:-1], bounds[1:])]
    preds = [block[:, p, a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    goal = ([block[:, p + 1, a:b] for a, b in zip(bounds[:-1], bounds[1:])]
            if lazy._has_goal else None)
    if inputs is None:  # to_frame does not read the inputs
        inputs = np.broadcast_to(np.zeros((), block.dtype), (n, *lazy._shape))
    result = Attribution(
        method=lazy.method, values=values, inputs=[inputs], input_names=lazy.input_names,
        output_names=lazy.output_names, output_layers=lazy.output_layers,
        output_idx=lazy.output_idx, predictions=preds, decomp_goal=goal,
        goal_description=lazy.goal_description, channels_first=lazy.channels_first,
    )
    result.output_space = lazy.output_space
    return result


def _frame_block(block: np.ndarray, lazy: object, offset: int) -> pd.DataFrame:
    df = _block_attribution(block, lazy).to_frame()
    rows = df["data"].cat.codes.to_numpy() if len(df) else np.zeros(0, np.int64)
    # "data_<global row + 1>" as plain strings: the categories differ between blocks
    df["data"] = pd.Series(np.char.add("data_", (rows + offset + 1).astype(str)),
                           index=df.index).astype(object)
    return df


def _compute(*collections, progress: bool = False):
    """Compute together (shared tasks run once), with a progress bar if asked."""
    dask = _dask()
    client = None
    if progress:
        try:
            from distributed import default_client

            client = default_client()
        except (ImportError, ValueError):
            client = None
    if client is not None:
        from distributed import progress as distributed_progress

        futures = client.compute(list(collections))
        distributed_progress(futures)
        return client.gather(futures)
    if progress:
        from dask.diagnostics import ProgressBar

        ctx = ProgressBar()
    else:
        ctx = contextlib.nullcontext()
    with ctx:
        return dask.compute(*collections)


class LazyAttribution:
    """Attributions of a dask collection, not computed yet.

    The lazy counterpart of :class:`~sknn_explain.Attribution`: ``values``,
    ``predictions``, ``decomp_goal`` and ``decomp_sum`` are dask arrays chunked along rows
    like the explained ``X`` (layout ``(n, *input_shape, n_outputs)``), and
    :meth:`to_frame` is a dask DataFrame in :meth:`Attribution.to_frame`'s long format.
    All of them share one explanation task per chunk: compute them together
    (``dask.compute(res.values, res.predictions)``) or store them with :meth:`to_zarr`, else
    each one recomputes the explanation.

    Parameters
    ----------
    method, input_names, output_names, output_layers, output_idx
        As the attributes (a LazyAttribution is made by :func:`explain`, not by hand).
    goal_description, channels_first
        As the attributes.
    packed : dask.array.Array of shape (n, n_features + 1 or 2, n_outputs)
        Per row: the flattened attributions, the predictions and (``has_goal``) the
        decomposition goal, for every selected output node of every output layer.
    inputs : dask.array.Array of shape ``(n, *input_shape)``
        The explained data.
    sizes : list of int
        The number of selected nodes per output layer (the split of the last axis).
    has_goal : bool
        Whether ``packed`` holds the decomposition goal.

    Attributes
    ----------
    method, input_names, output_names, output_layers, output_idx, goal_description,
    channels_first, output_space :
        As for :class:`~sknn_explain.Attribution`.

    Examples
    --------
    >>> import dask.array as da, numpy as np, torch
    >>> from sknn_explain import Gradient
    >>> X = da.from_array(np.ones((6, 3), dtype="float32"), chunks=3)
    >>> res = Gradient().fit(torch.nn.Linear(3, 2)).explain(X)
    >>> res  # doctest: +ELLIPSIS
    LazyAttribution(method='Gradient', n_samples=6, input_shape=(3,), ... (not computed))
    >>> res.values.shape, res.to_frame().npartitions
    ((6, 3, 2), 2)
    """

    def __init__(self, *, method, packed, inputs, input_names, output_names, output_layers,
                 output_idx, sizes, has_goal, goal_description, channels_first) -> None:
        self.method = method
        self._packed = packed
        self._inputs = inputs
        self.input_names = input_names
        self.output_names = output_names
        self.output_layers = output_layers
        self.output_idx = output_idx
        self._sizes = sizes
        self._has_goal = has_goal
        self.goal_description = goal_description
        self.channels_first = channels_first
        self.output_space = None
        self._shape = tuple(inputs.shape[1:])
        self._n_features = int(np.prod(self._shape))

    # ------------------------------------------------------------------ arrays
    def _layers(self, row: int | None):
        bounds = np.cumsum([0, *self._sizes])
        out = []
        for a, b in zip(bounds[:-1], bounds[1:]):
            if row is None:
                v = self._packed[:, :self._n_features, a:b]
                out.append(v.reshape((v.shape[0], *self._shape, int(b - a))))
            else:
                out.append(self._packed[:, row, a:b])
        return out[0] if len(out) == 1 else out

    @property
    def values(self):
        """Attributions, a dask array ``(n, *input_shape, n_outputs)`` (list per layer)."""
        return self._layers(None)

    def to_dask_array(self):
        """Same as :attr:`values`.

        Returns
        -------
        dask.array.Array or list of dask.array.Array
            ``(n, *input_shape, n_outputs)``, one per output layer when several.
        """
        return self.values

    @property
    def predictions(self):
        """Model outputs of the selected nodes, dask ``(n, n_outputs)``."""
        return self._layers(self._n_features)

    @property
    def decomp_goal(self):
        """What each sample's attributions should sum to (dask), or None."""
        return self._layers(self._n_features + 1) if self._has_goal else None

    @property
    def decomp_sum(self):
        """Sum of the attributions over all input features, dask ``(n, n_outputs)``."""
        bounds = np.cumsum([0, *self._sizes])
        sums = [self._packed[:, :self._n_features, a:b].sum(axis=1)
                for a, b in zip(bounds[:-1], bounds[1:])]
        return sums[0] if len(sums) == 1 else sums

    @property
    def inputs(self):
        """The explained data as a dask array."""
        return self._inputs

    @property
    def n_samples(self) -> int:
        """The number of rows of the explained ``X``."""
        return int(self._inputs.shape[0])

    @property
    def chunks(self) -> tuple:
        """Row chunks (those of ``X``)."""
        return self._inputs.chunks[0]

    def __repr__(self) -> str:
        return (f"LazyAttribution(method='{self.method}', n_samples={self.n_samples}, "
                f"input_shape={self._shape}, outputs={self.output_names}, "
                f"chunks={len(self.chunks)} (not computed))")

    # ------------------------------------------------------------------ computing
    def compute(self, progress: bool = False) -> Attribution:
        """Compute everything into an in-memory :class:`~sknn_explain.Attribution`.

        Only for results that fit in memory; use :meth:`to_zarr` / :meth:`to_parquet`
        otherwise.

        Parameters
        ----------
        progress : bool, default=False
            Show dask's progress bar while computing.

        Returns
        -------
        Attribution
            The in-memory result, as ``explain`` on the computed ``X`` would give.
        """
        packed, inputs = _compute(self._packed, self._inputs, progress=progress)
        return _block_attribution(np.asarray(packed), self, inputs=np.asarray(inputs))

    def to_frame(self):
        """Long-form dask DataFrame, the columns of :meth:`Attribution.to_frame`.

        One partition per row chunk. ``data`` holds plain strings ``"data_<row + 1>"``
        (global row numbers; not a categorical, whose categories would differ between
        partitions); the other name columns are ordered categoricals as in memory.

        Returns
        -------
        dask.dataframe.DataFrame
            The long-form attributions, not computed yet.
        """
        dask = _dask()
        import dask.dataframe as dd

        offsets = _offsets(self._inputs)
        blocks = self._packed.to_delayed().ravel()
        probe = np.zeros((1, *self._packed.shape[1:]), dtype=self._packed.dtype)
        spec = _Spec(self)
        meta = _frame_block(probe, spec, 0).iloc[:0]
        parts = [dask.delayed(_frame_block, pure=True)(b, spec, int(o))
                 for b, o in zip(blocks, offsets)]
        return dd.from_delayed(parts, meta=meta, verify_meta=False)[FRAME_COLUMNS]

    def to_parquet(self, path: str, progress: bool = False, **kwargs) -> None:
        """Write :meth:`to_frame` to a Parquet dataset, one file per row chunk.

        Streams chunk by chunk (memory per worker bounded by the chunk size); ``kwargs``
        go to ``dask.dataframe.DataFrame.to_parquet``.

        Parameters
        ----------
        path : str
            The dataset's directory (or URL, as dask accepts).
        progress : bool, default=False
            Show dask's progress bar while writing.
        **kwargs
            Passed to ``dask.dataframe.DataFrame.to_parquet`` (``write_index`` defaults to
            False).
        """
        kwargs.setdefault("write_index", False)
        write = self.to_frame().to_parquet(path, compute=False, **kwargs)
        _compute(write, progress=progress)

    def to_zarr(self, store: object, overwrite: bool = False, progress: bool = False) -> None:
        """Write the arrays to a Zarr group, chunk by chunk.

        Arrays ``values`` (``values_<l>`` per output layer when several are selected),
        ``predictions`` (``predictions_<l>``) and ``decomp_goal`` (when the method has a
        goal), chunked along rows; names and the method in the group's attributes. One
        explanation task per chunk feeds all arrays; a retried task rewrites its own
        region only. Irregular row chunks are first made regular (Zarr needs them).

        Parameters
        ----------
        store : str or zarr store
            Where the group is written.
        overwrite : bool, default=False
            Replace an existing group; False raises if ``store`` already holds one.
        progress : bool, default=False
            Show dask's progress bar while writing.
        """
        _dask()
        import dask.array as da
        import zarr

        arrays = {}
        several = len(self._sizes) > 1
        for key, arr in (("values", self.values), ("predictions", self.predictions),
                         ("decomp_goal", self.decomp_goal)):
            if arr is None:
                continue
            for li, a in enumerate(arr if several else [arr]):
                arrays[f"{key}_{li}" if several else key] = a
        rows = self.chunks
        if len(rows) > 1 and (len(set(rows[:-1])) > 1 or rows[-1] > rows[0]):
            size = max(rows)
            arrays = {k: a.rechunk({0: size}) for k, a in arrays.items()}
        group = zarr.open_group(store, mode="w" if overwrite else "w-")
        group.attrs.update({
            "method": self.method,
            "output_names": [[str(o) for o in layer] for layer in self.output_names],
            "output_layers": [int(i) for i in self.output_layers],
            "input_names": self.input_names,
            "goal_description": self.goal_description,
        })
        writes = [da.to_zarr(a, store, component=k, compute=False, overwrite=overwrite)
                  for k, a in arrays.items()]
        _compute(*writes, progress=progress)


# ---------------------------------------------------------------------- transformer
def _transform_block(block, shipped, offsets, hi, lo, block_info=None):
    transformer = _resolve(shipped)
    offset = offsets[block_info[0]["chunk-location"][0]]
    token = ROW_CONTEXT.set(_context(offset, hi, lo))
    try:
        return np.asarray(transformer.transform(block), dtype=np.float64)
    finally:
        ROW_CONTEXT.reset(token)


def _transform_array(transformer: object, X: object):
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(transformer)
    transformer = _frozen_seed(transformer)
    # the in-memory checks (width, columns), on one row of zeros, before any task runs
    arr, columns, _ = _as_array(X, transformer.transform)
    names = transformer.get_feature_names_out()
    hi, lo = _data_range(transformer, arr)
    out = arr.map_blocks(
        _transform_block, _ship(transformer), _offsets(arr), hi, lo,
        chunks=(arr.chunks[0], (len(names),)), dtype=np.float64,
        meta=np.empty((0, 0), dtype=np.float64), name="sknn-transform",
    )
    return out, columns, names


def transform(transformer: object, X: object):
    """Lazy :meth:`AttributionTransformer.transform` of a dask array / DataFrame.

    Parameters
    ----------
    transformer : AttributionTransformer
        A fitted transformer.
    X : dask.array.Array or dask.dataframe.DataFrame
        ``(n_samples, n_features_in_)``, chunked along rows.

    Returns
    -------
    dask.array.Array or dask.dataframe.DataFrame
        A dask array ``(n, n_features_out)`` chunked like ``X`` for an array, a dask
        DataFrame with ``get_feature_names_out()`` columns (and ``X``'s index) for a
        DataFrame.

    Examples
    --------
    >>> import dask.array as da
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.neural_network import MLPClassifier
    >>> from sknn_explain import AttributionTransformer, Gradient
    >>> from sknn_explain.dask import transform
    >>> X, y = load_iris(return_X_y=True)
    >>> mlp = MLPClassifier(hidden_layer_sizes=(4,), max_iter=20, random_state=0)
    >>> mlp = mlp.fit(X, y)
    >>> tr = AttributionTransformer(mlp, Gradient(), prefit=True).fit(X, y)
    >>> lazy = transform(tr, da.from_array(X, chunks=50))
    >>> lazy.shape, lazy.chunks[0]
    ((150, 4), (50, 50, 50))
    """
    out, columns, names = _transform_array(transformer, X)
    if columns is None:
        return out
    import dask.dataframe as dd

    return dd.from_dask_array(out, columns=[str(n) for n in names], index=X.index)


def feature_importances(transformer: object, X: object, progress: bool = False) -> np.ndarray:
    """Mean ``|attribution|`` per input feature over every row of a dask ``X`` (one pass).

    The same quantity as ``feature_importances_`` (which uses the training data).

    Parameters
    ----------
    transformer : AttributionTransformer
        A fitted transformer.
    X : dask.array.Array or dask.dataframe.DataFrame
        ``(n_samples, n_features_in_)``, chunked along rows.
    progress : bool, default=False
        Show dask's progress bar while computing.

    Returns
    -------
    ndarray of shape (n_features_in_,)
        The mean absolute attribution of each input feature.

    Examples
    --------
    >>> import dask.array as da
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.neural_network import MLPClassifier
    >>> from sknn_explain import AttributionTransformer, Gradient
    >>> from sknn_explain.dask import feature_importances
    >>> X, y = load_iris(return_X_y=True)
    >>> mlp = MLPClassifier(hidden_layer_sizes=(4,), max_iter=20, random_state=0)
    >>> mlp = mlp.fit(X, y)
    >>> tr = AttributionTransformer(mlp, Gradient(), prefit=True).fit(X, y)
    >>> feature_importances(tr, da.from_array(X, chunks=50)).shape
    (4,)
    """
    out, _, _ = _transform_array(transformer, X)
    (mean,) = _compute(abs(out).mean(axis=0), progress=progress)
    mean = np.asarray(mean)
    p = int(transformer.n_features_in_)
    return mean.reshape(p, -1).mean(axis=1) if mean.size != p else mean

