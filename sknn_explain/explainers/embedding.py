"""Categorical embeddings for the gradient family: one attribution per category column.

A network that takes integer category codes through ``nn.Embedding`` cannot be
differentiated with respect to the codes. The gradient-family explainers therefore explain
the function ``g(x, e_1, ..., e_k)``: the model with the output of every embedding call
replaced by a tensor ``e_j`` we control (forward hooks on a *private copy* of the model).
``g(x, e(x)) = f(x)``, so the usual path methods apply in the joint space of the numeric
inputs and the embedding outputs, and the attribution of an embedding output, summed over
the embedding dimension, is the attribution of the category column that produced it (what
captum's ``LayerIntegratedGradients`` on the embedding layer, summed over the last axis,
gives).

Which input column feeds which embedding position is found by perturbation: each input
column is shifted by one on a few rows and the embedding indices that change are recorded
(this covers ``emb(x_cat[:, 0])``, one shared embedding with offsets, token sequences and
a float input whose code columns the model casts with ``.long()``). An embedding called on
constant indices (positional embeddings) is not an input feature and is left alone.

Baselines of the embedding outputs follow the numeric inputs: IntegratedGradients uses the
mean embedding output over ``X_ref`` (the reference distribution; zeros without ``X_ref``),
ExpectedGradients the embeddings of the drawn reference rows, Gradient x Input multiplies by
the embedding vectors (goal ``f(x) - g(0, 0)``), SmoothGrad adds noise to the numeric inputs
only.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from .._groups import ColumnGroups, sum_groups
from .._model import AdapterBase, TorchModel
from .._validation import SequenceOf, StrOptions

__all__ = ["EMBEDDINGS", "EmbeddingModel", "EmbeddingSupport", "input_is_integer"]

#: rows used to find which input column feeds which embedding position
_MAP_ROWS = 4
#: most input columns shifted (one batch of ``_MAP_ROWS`` rows each) to build the map
_MAX_MAP_COLUMNS = 20_000


def input_is_integer(X: object) -> list[bool] | None:
    """Per model input, whether the user's data hold integer codes (None: unknown).

    Integer numpy arrays / tensors and DataFrames whose columns are all integer count as
    code inputs: they reach the model as int64, as the model expects for ``nn.Embedding``.
    """
    if X is None:
        return None
    parts = list(X) if isinstance(X, (list, tuple)) and X and not np.isscalar(X[0]) else [X]

    def one(x: object) -> bool:
        if isinstance(x, torch.Tensor):
            return not x.is_floating_point() and not x.is_complex() and x.dtype != torch.bool
        if isinstance(x, pd.DataFrame):
            return len(x.columns) > 0 and all(
                pd.api.types.is_integer_dtype(dt) for dt in x.dtypes)
        if isinstance(x, pd.Series):
            return pd.api.types.is_integer_dtype(x.dtype)
        return np.asarray(x).dtype.kind in "iu"

    return [one(p) for p in parts]


@dataclass
class _CallMap:
    """An embedding call whose output is replaced: ``(module, call number)`` and, for each
    flat index position, the model input and flat column that produced it."""

    key: tuple[int, int]
    index_shape: tuple[int, ...]
    inputs: np.ndarray
    columns: np.ndarray


class _PreHook:
    def __init__(self, owner: EmbeddingModel, j: int) -> None:
        self.owner, self.j = owner, j

    def __call__(self, module: nn.Module, args: tuple) -> tuple | None:
        return self.owner._pre_hook(self.j, module, args)


class _Hook:
    def __init__(self, owner: EmbeddingModel, j: int) -> None:
        self.owner, self.j = owner, j

    def __call__(self, module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        return self.owner._hook(self.j, module, output)


class EmbeddingModel(AdapterBase):
    """Model adapter that substitutes embedding outputs (picklable, thread-safe).

    Called with the model's ``m`` inputs it runs the model (code inputs as int64). Called
    with ``m + s`` tensors it runs ``g``: the last ``s`` tensors replace the outputs of the
    ``s`` mapped embedding calls.

    Parameters
    ----------
    inner : TorchModel
        The plain private copy of the model (hooks are registered on its module).
    paths : list of str
        Module paths of the ``nn.Embedding`` layers inside the private module.
    code_inputs : list of bool, optional
        Per model input, whether it holds integer codes (known from ``X_ref``, else set at
        the first explain).
    """

    def __init__(self, inner: TorchModel, paths: Sequence[str],
                 code_inputs: list[bool] | None = None) -> None:
        self.inner = inner
        self.paths = list(paths)
        self.code_inputs = code_inputs
        self.calls: list[_CallMap] | None = None
        self.n_inputs = None if code_inputs is None else len(code_inputs)
        self.input_names: list | None = None
        self.removed_activation = getattr(inner, "removed_activation", None)
        self.conversion_error = getattr(inner, "conversion_error", None)
        self._local = threading.local()
        self._lock = threading.Lock()
        for j, path in enumerate(self.paths):
            layer = inner.module.get_submodule(path)
            layer.register_forward_pre_hook(_PreHook(self, j))
            layer.register_forward_hook(_Hook(self, j))

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        del state["_local"], state["_lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._local = threading.local()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ names
    def _layer(self, j: int) -> str:
        return f"nn.Embedding '{self.paths[j]}'"

    def _column(self, call: _CallMap | None, flat_pos: int) -> str:
        if call is None:
            return ""
        i, c = int(call.inputs[flat_pos]), int(call.columns[flat_pos])
        where = f"X[{i}]" if len(self.code_inputs or []) > 1 else "X"
        return f" (fed by column {c} of {where})"

    # ------------------------------------------------------------------ hooks
    def _state(self):
        return getattr(self._local, "state", None)

    def _pre_hook(self, j: int, module: nn.Module, args: tuple) -> tuple | None:
        idx = args[0]
        if torch.is_floating_point(idx):
            raise TypeError(
                f"{self._layer(j)} received floating point category codes: pass the columns "
                "it embeds as int64 (an int array / tensor, or int DataFrame columns)"
            )
        st = self._state()
        key = (j, st["count"].get(j, 0)) if st is not None else None
        if st is not None:
            st["count"][j] = key[1] + 1
            st["current"][j] = key
        mode = None if st is None else st["mode"]
        if mode == "map":
            st["seen"][key] = idx.detach().clone()
            return (torch.zeros_like(idx),)
        if mode == "subst" and key in st["subs"]:
            return (torch.zeros_like(idx),)
        self._check_range(j, module, idx, key, st)
        return None

    def _check_range(self, j, module, idx, key, st) -> None:
        if idx.numel() == 0:
            return
        n_cat = module.num_embeddings
        bad = (idx < 0) | (idx >= n_cat)
        if not bool(bad.any()):
            return
        pos = torch.nonzero(bad)[0].tolist()
        value = int(idx[tuple(pos)])
        call = None
        if self.calls is not None and key is not None:
            call = next((c for c in self.calls if c.key == key), None)
        flat = int(np.ravel_multi_index(pos[1:], idx.shape[1:])) if idx.ndim > 1 else 0
        row = pos[0] + (st["offset"] if st is not None else 0) if idx.ndim > 0 else 0
        raise ValueError(
            f"category code {value} in row {row}{self._column(call, flat)} is out of range "
            f"for {self._layer(j)} with {n_cat} categories (valid codes: 0..{n_cat - 1}); "
            "encode unseen categories with a code the embedding knows"
        )

    def _hook(self, j: int, module: nn.Module, output: torch.Tensor) -> torch.Tensor | None:
        st = self._state()
        if st is None:
            return None
        key = st["current"].get(j)
        if st["mode"] == "record" and key in st["wanted"]:
            st["seen"][key] = output.detach()
        elif st["mode"] == "subst" and key in st["subs"]:
            sub = st["subs"][key]
            if tuple(sub.shape) != tuple(output.shape):
                raise ValueError(
                    f"{self._layer(j)} returned shape {tuple(output.shape)} where "
                    f"{tuple(sub.shape)} was expected: the model calls its embeddings "
                    "differently from call to call, so they cannot be attributed per column"
                )
            st["used"].add(key)
            return sub.to(output.dtype)
        return None

    # ------------------------------------------------------------------ calls
    def _cast(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        flags = self.code_inputs or [False] * len(xs)
        return [x.round().long() if flag else x for x, flag in zip(xs, flags)]

    def _run(self, xs: Sequence[torch.Tensor], state: dict | None) -> list[torch.Tensor]:
        self._local.state = state
        try:
            return self.inner(self._cast(xs))
        finally:
            self._local.state = None

    @staticmethod
    def _new_state(mode: str, **extra) -> dict:
        return {"mode": mode, "count": {}, "current": {}, "seen": {}, "offset": 0, **extra}

    def __call__(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        m = len(xs) if self.n_inputs is None else self.n_inputs
        if len(xs) == m:
            return self._run(xs, self._new_state("plain"))
        calls = self.calls or []
        if len(xs) != m + len(calls):
            raise ValueError(
                f"expected {m} model input(s) (or {m + len(calls)} with the embedding "
                f"outputs), got {len(xs)}"
            )
        subs = {c.key: x for c, x in zip(calls, xs[m:])}
        state = self._new_state("subst", subs=subs, used=set())
        out = self._run(xs[:m], state)
        missing = [k for k in subs if k not in state["used"]]
        if missing:
            raise ValueError(
                f"{self._layer(missing[0][0])} was not called as when the embeddings were "
                "mapped; the model must call its embeddings the same way on every input"
            )
        return out

    def output_names(self, dims: Sequence[int]) -> list[list]:
        return self.inner.output_names(dims)

    # ------------------------------------------------------------------ mapping
    def set_code_inputs(self, flags: list[bool] | None, name: str) -> None:
        """Record (first call) or check which model inputs hold integer codes."""
        if flags is None:
            return
        if self.code_inputs is None:
            self.code_inputs, self.n_inputs = list(flags), len(flags)
            return
        for i, (fitted, given) in enumerate(zip(self.code_inputs, flags)):
            if fitted and not given:
                label = name if len(flags) == 1 else f"{name}[{i}]"
                raise TypeError(
                    f"{label} holds floating point values, but the explainer was fitted with "
                    "integer category codes in this input (it feeds nn.Embedding layers); "
                    "pass the codes as integers (int64 array / tensor or integer columns)"
                )

    def ensure_map(self, xs: Sequence[torch.Tensor]) -> None:
        """Find which input column feeds every embedding position (once, on a few rows)."""
        if self.calls is not None:
            return
        with self._lock:
            if self.calls is None:
                self.calls = self._build_map(xs)

    def _build_map(self, xs: Sequence[torch.Tensor]) -> list[_CallMap]:
        rows = [x[:_MAP_ROWS].detach() for x in xs]
        r = rows[0].shape[0]
        widths = [int(np.prod(x.shape[1:], dtype=np.int64)) for x in rows]
        flags = self.code_inputs or [False] * len(xs)
        shifted = [i for i in range(len(xs)) if flags[i]] if sum(widths) > _MAX_MAP_COLUMNS \
            else list(range(len(xs)))
        cols = [(i, c) for i in shifted for c in range(widths[i])]
        if len(cols) > _MAX_MAP_COLUMNS:
            raise ValueError(
                f"the inputs have {len(cols)} columns: too many to map the embeddings' inputs "
                f"(at most {_MAX_MAP_COLUMNS}); pass embeddings=None to explain without them"
            )
        batch = []
        for i, x in enumerate(rows):
            parts = [x]
            flat = x.reshape(r, -1)
            for ii, c in cols:
                y = flat.clone()
                if ii == i:
                    y[:, c] += 1
                parts.append(y.reshape(x.shape))
            batch.append(torch.cat(parts))
        state = self._new_state("map")
        with torch.no_grad():
            self._run(batch, state)
        calls = []
        for key, idx in state["seen"].items():
            j = key[0]
            if idx.ndim == 0 or idx.shape[0] != r * (len(cols) + 1):
                continue  # no sample axis (positional indices): part of the network
            flat = idx.reshape(len(cols) + 1, r, -1)
            changed = (flat[1:] != flat[:1]).any(1)  # (columns, positions)
            deps = changed.sum(0)
            if bool((deps == 0).all()):
                continue  # constant indices (positional embedding): not an input feature
            if not bool((deps == 1).all()):
                q = int(torch.nonzero(deps != 1)[0])
                found = [cols[p] for p in torch.nonzero(changed[:, q]).flatten().tolist()]
                raise ValueError(
                    f"index position {q} of {self._layer(j)} depends on "
                    f"{'no' if not found else len(found)} input column(s) {found} (as "
                    "(input, column)); an embedding output is attributed to one column only. "
                    "Pass embeddings=[...] with the embeddings fed by one column each"
                )
            which = torch.argmax(changed.to(torch.int8), 0).tolist()
            calls.append(_CallMap(
                key=key, index_shape=tuple(idx.shape[1:]),
                inputs=np.asarray([cols[p][0] for p in which], dtype=np.int64),
                columns=np.asarray([cols[p][1] for p in which], dtype=np.int64),
            ))
        return calls

    # ------------------------------------------------------------------ data
    def embed(self, xs: Sequence[torch.Tensor], batch_size: int,
              name: str = "X") -> list[torch.Tensor]:
        """The outputs of the mapped embedding calls at ``xs`` (one tensor per call)."""
        self.ensure_map(xs)
        wanted = {c.key for c in self.calls}
        n = xs[0].shape[0]
        chunks: list[list[torch.Tensor]] = []
        with torch.no_grad():
            for start in range(0, n, batch_size):
                state = self._new_state("record", wanted=wanted, offset=start)
                self._run([x[start:start + batch_size] for x in xs], state)
                chunks.append([state["seen"][c.key] for c in self.calls])
        dtype = xs[0].dtype
        return [torch.cat([c[s] for c in chunks]).to(dtype) for s in range(len(self.calls))]

    def extend(self, xs: Sequence[torch.Tensor], batch_size: int) -> list[torch.Tensor]:
        """``xs`` followed by the embedding outputs at ``xs``."""
        return [*xs, *self.embed(xs, batch_size)]

    def column_groups(self, input_shapes: Sequence[tuple[int, ...]], embedding_dims:
                      Sequence[int], names: Sequence[str] | None = None) -> ColumnGroups:
        """The encoded space of ``g`` as :class:`~sknn_explain._groups.ColumnGroups`.

        Encoded features: every model input flattened (inputs in order), then every mapped
        embedding call flattened as ``(index position, embedding dimension)``. Original
        columns: the model inputs' flat columns; each groups its own encoded feature and the
        embedding dimensions of the positions it feeds (one-hot blocks group the same way).
        """
        widths = [int(np.prod(s, dtype=np.int64)) for s in input_shapes]
        starts = np.concatenate([[0], np.cumsum(widths)]).astype(int)
        n_orig = int(starts[-1])
        names = list(names) if names is not None else [
            f"x{i}_{c}" if len(widths) > 1 else f"x{c}"
            for i, w in enumerate(widths) for c in range(w)]
        groups = [[j] for j in range(n_orig)]
        encoded = list(names)
        offset = n_orig
        for call, d in zip(self.calls, embedding_dims):
            for q, (i, c) in enumerate(zip(call.inputs, call.columns)):
                col = int(starts[i] + c)
                groups[col].extend(range(offset + q * d, offset + (q + 1) * d))
                encoded.extend(f"{names[col]}:{self.paths[call.key[0]]}[{k}]" for k in range(d))
            offset += len(call.inputs) * d
        return ColumnGroups(names=names, groups=groups, encoded_names=encoded)

    def fold(self, values: Sequence[torch.Tensor], n_inputs: int) -> list[torch.Tensor]:
        """Attributions of ``g``'s inputs -> per model input: every embedding output, summed
        over the embedding dimension, is added to the input column that produced it (the
        encoded features summed per :meth:`column_groups`)."""
        n, k = values[0].shape[0], values[0].shape[-1]
        shapes = [tuple(v.shape[1:-1]) for v in values[:n_inputs]]
        groups = self.column_groups(shapes, [int(v.shape[-2]) for v in values[n_inputs:]])
        encoded = torch.cat([v.reshape(n, -1, k) for v in values], 1)
        summed = torch.as_tensor(sum_groups(encoded.detach().cpu().numpy(), groups.groups,
                                            axis=1), device=values[0].device)
        widths = [int(np.prod(s, dtype=np.int64)) for s in shapes]
        return [part.reshape(n, *s, k) for part, s in
                zip(torch.split(summed, widths, dim=1), shapes)]


#: accepted values of the ``embeddings`` hyperparameter
EMBEDDINGS = [StrOptions({"auto"}), None, SequenceOf(str)]


def _find_embeddings(model: object, embeddings: object) -> list[str]:
    """Module paths of the ``nn.Embedding`` layers to attribute (relative to the module)."""
    from .._skorch import is_skorch_net

    module = model.module_ if is_skorch_net(model) and hasattr(model, "module_") else model
    if not isinstance(module, nn.Module):
        if embeddings not in (None, "auto"):
            raise TypeError(
                f"embeddings={embeddings!r} needs a torch nn.Module or skorch net, got a "
                f"{type(model).__name__}"
            )
        return []
    if embeddings == "auto":
        return [name for name, m in module.named_modules() if isinstance(m, nn.Embedding)]
    paths = []
    for path in embeddings:
        try:
            layer = module.get_submodule(path)
        except AttributeError:
            raise ValueError(f"embeddings: the model has no submodule {path!r}") from None
        if not isinstance(layer, nn.Embedding):
            raise ValueError(
                f"embeddings: the submodule {path!r} is a {type(layer).__name__}, not an "
                "nn.Embedding"
            )
        paths.append(path)
    return paths


class EmbeddingSupport:
    """Mixin of the gradient-family explainers: the ``embeddings`` hyperparameter.

    ``embeddings="auto"`` (default) explains torch / skorch models that contain
    ``nn.Embedding`` layers through their embedding outputs (see the module docstring);
    a list of module paths selects the embeddings; None explains the model as it is.
    """

    def fit(self, model: object, X_ref: object = None, **fit_params):
        """Prepare the explainer for ``model``, explaining ``nn.Embedding`` layers' outputs.

        As :meth:`Explainer.fit`; with ``embeddings`` set and ``model`` holding
        ``nn.Embedding`` layers, the attributions are computed for the embedding outputs
        and summed back onto the integer-coded input columns.

        Parameters
        ----------
        model : nn.Module, skorch net, scikit-learn MLP or Pipeline, dict or Graph
            The model to explain; it is copied (converted), the original is never modified.
        X_ref : array-like, DataFrame, Tensor or list of those, optional
            Reference data. Integer arrays / DataFrames mark integer-coded inputs (the
            model receives them as int64, as ``nn.Embedding`` expects).
        **fit_params
            Passed on to :meth:`Explainer.fit` (``forward_kwargs``, ``output_key``).

        Returns
        -------
        self
            The fitted explainer.
        """
        self._code_inputs = input_is_integer(X_ref)
        return super().fit(model, X_ref, **fit_params)

    def _prepare_model(self, model: object, dtype: torch.dtype, device: torch.device):
        embeddings = getattr(self, "embeddings", None)
        paths = [] if embeddings is None else _find_embeddings(model, embeddings)
        if not paths:
            return super()._prepare_model(model, dtype, device)
        from ..convert.adapters import _fallback_model, _last_leaf_is_activation

        inner = _fallback_model(model, self.ignore_last_act, dtype, device,
                                _last_leaf_is_activation(model))
        return EmbeddingModel(inner, paths, getattr(self, "_code_inputs", None))

    def _coerce(self, X: object, name: str = "X"):
        if isinstance(getattr(self, "model_", None), EmbeddingModel):
            self.model_.set_code_inputs(input_is_integer(X), name)
        return super()._coerce(X, name)

    # helpers used by the gradient family ------------------------------------------
    def _embedding_model(self) -> EmbeddingModel | None:
        model = getattr(self, "model_", None)
        return model if isinstance(model, EmbeddingModel) and model.paths else None

    def _with_embeddings(self, ref_tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        """Reference rows followed by their embedding outputs (embedding mode), else as is."""
        model = self._embedding_model()
        if model is None:
            return ref_tensors
        return model.extend(ref_tensors, self._batch_size([tuple(t.shape[1:])
                                                           for t in ref_tensors]))

    def _attribute_with_embeddings(self, xs, run):
        """``run(xs)`` on ``xs`` extended by the embedding outputs, folded back per column."""
        model = self._embedding_model()
        if model is None:
            return run(xs)
        ext = model.extend(xs, self._batch_size([tuple(x.shape[1:]) for x in xs]))
        values, preds, goal = run(ext)
        return model.fold(values, len(xs)), preds, goal

    def _held_inputs(self, xs) -> list[bool] | None:
        """Per input of ``g`` (``xs`` the model inputs): True for the integer id inputs,
        which the path methods keep at ``x`` (only their embedding outputs move)."""
        model = self._embedding_model()
        if model is None:
            return None
        flags = model.code_inputs or [False] * len(xs)
        return list(flags) + [False] * len(model.calls or [])

    def _noisy_inputs(self, xs) -> list[bool] | None:
        model = self._embedding_model()
        if model is None:
            return None
        flags = model.code_inputs or [False] * len(xs)
        return [not f for f in flags] + [False] * (len(model.calls or []))
