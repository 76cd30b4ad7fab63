"""The one front door for user models: :func:`prepare_model`.

Every path that turns a user's model into something the explainers run (the graph
converter, the plain-copy fallback, the model-agnostic predict adapter) starts here. This
is the only module that knows how skorch nets, scikit-learn MLPs, Pipelines and
ColumnTransformers are put together:

* a skorch net's prediction nonlinearity is mapped once, by
  :func:`~sknn_explain._skorch.skorch_activation` (binary nets: ONE output unit,
  ``P(classes_[1])`` or its logit, named ``classes_[1]``, as scikit-learn's binary
  ``MLPClassifier``);
* a ``Pipeline`` whose steps before the network are only scalers stays whole (the scalers
  are folded into the graph, attributions are in the raw feature space);
* any other ``Pipeline`` is split into ``preprocess`` (a private deep copy of every step
  before the network, run on the user's raw DataFrame) and the network, which is explained
  on the encoded data. :func:`column_groups` maps the encoded features back to the user's
  original columns with scikit-learn's own bookkeeping (``ColumnTransformer.transformers_``
  / ``output_indices_``, ``OneHotEncoder.categories_``, ...).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
from torch import nn

from ._groups import ColumnGroups
from ._sklearn_models import is_foldable_step, is_sklearn_mlp, is_sklearn_pipeline
from ._skorch import is_fitted_skorch_net, is_skorch_net, skorch_activation

__all__ = ["Prepared", "column_groups", "encode", "prepare_model"]


@dataclass
class Prepared:
    """A user model taken apart.

    Attributes
    ----------
    preprocess : sklearn transformer or None
        A fitted private deep copy of the steps that run before the network on the user's
        raw data; None when the network (with folded scalers) takes the user's data as is.
    net : object
        What the graph converter / plain-copy fallback gets (a torch module, skorch net,
        sklearn MLP, Pipeline of scalers + network, dict or Graph).
    output_names : list or None
        The network's class labels, when it has them.
    final_activation : str or None
        ``"softmax"``, ``"sigmoid"``, ``"exp"``, ``"identity"`` or None (unknown / none).
    column_groups : ColumnGroups or None
        Encoded features per original column (only with ``preprocess``).
    """

    preprocess: object | None
    net: object
    output_names: list | None = None
    final_activation: str | None = None
    column_groups: ColumnGroups | None = None
    #: the user's original column names (only with ``preprocess``)
    raw_names: list | None = None


# ---------------------------------------------------------------------- pipelines
def _is_network(step: object) -> bool:
    return is_sklearn_mlp(step) or is_skorch_net(step) or isinstance(step, nn.Module)


def prepare_model(model: object, space: str = "network") -> Prepared:
    """Take a user model apart into preprocessing, network, output names and activation.

    ``space`` says where a Pipeline of scalers is explained: ``"network"`` runs the scalers
    as preprocessing and explains the network on its own inputs (one value per original
    column); ``"raw"`` folds them into the graph and explains the raw feature space. Other
    preprocessing (encoders, ColumnTransformer) always runs first (network space).

    Raises
    ------
    ValueError
        An unfitted preprocessing step (naming it); a Pipeline without steps.
    ValueError
        The last step of a Pipeline is not a network (naming it), or preprocessing whose
        outputs cannot be mapped to the original columns (naming the step).
    """
    if is_sklearn_pipeline(model):
        steps = list(model.steps)
        if not steps:
            raise ValueError("the Pipeline has no steps")
        foldable = all(is_foldable_step(s) for _, s in steps[:-1])
        if foldable and (space == "raw" or len(steps) == 1 or all(
                s is None or isinstance(s, str) for _, s in steps[:-1])):
            final = steps[-1][1]
            return Prepared(None, model, *_net_info(final))
        if space == "raw":
            step = next(name for name, s in steps[:-1] if not is_foldable_step(s))
            raise ValueError(
                f"space='raw' folds scalers (StandardScaler, MinMaxScaler, MaxAbsScaler, "
                f"RobustScaler) into the network; pipeline step {step!r} "
                f"({type(dict(steps)[step]).__name__}) is not an elementwise affine map, so "
                "it runs as preprocessing and the network is explained on its output: use "
                "space='network'"
            )
        return _split_pipeline(model)
    if is_skorch_net(model) or is_sklearn_mlp(model):
        return Prepared(None, model, *_net_info(model))
    return Prepared(None, model)


def _net_info(net: object) -> tuple[list | None, str | None]:
    classes = None
    try:
        classes = getattr(net, "classes_", None)
    except AttributeError:
        classes = None
    names = None if classes is None else np.asarray(classes).tolist()
    if is_sklearn_mlp(net):
        act = {"logistic": "sigmoid"}.get(getattr(net, "out_activation_", None),
                                           getattr(net, "out_activation_", None))
        return names, act
    if is_skorch_net(net) and is_fitted_skorch_net(net):
        return names, skorch_activation(net)[0]
    return names, None


def _split_pipeline(pipe: object) -> Prepared:
    from sklearn.exceptions import NotFittedError
    from sklearn.pipeline import Pipeline
    from sklearn.utils.validation import check_is_fitted

    steps = list(pipe.steps)
    final_name, final = steps[-1]
    if not _is_network(final):
        raise ValueError(
            f"cannot explain {type(final).__name__} (pipeline step {final_name!r}) with a "
            "network method: the last step must be an MLPClassifier / MLPRegressor or a "
            "fitted skorch net; KernelSHAP and LIME explain any fitted pipeline"
        )
    for name, step in steps[:-1]:
        if step is None or isinstance(step, str):
            continue
        try:
            check_is_fitted(step)
        except NotFittedError as err:
            raise ValueError(
                f"pipeline step {name!r} ({type(step).__name__}) is not fitted; fit the "
                "Pipeline before explaining it"
            ) from err
    try:
        preprocess = copy.deepcopy(Pipeline(steps[:-1]))
    except Exception as err:  # noqa: BLE001 - reported with the step names
        raise TypeError(f"could not copy the pipeline's preprocessing to explain it: {err}"
                        ) from err
    names = getattr(pipe, "feature_names_in_", None)
    if names is None:
        names = getattr(steps[0][1], "feature_names_in_", None)
    n_in = getattr(pipe, "n_features_in_", None) or getattr(steps[0][1], "n_features_in_", None)
    if n_in is None:
        raise ValueError("cannot tell how many columns the pipeline takes (no n_features_in_)")
    raw_names = ([str(c) for c in names] if names is not None
                 else [f"X{i + 1}" for i in range(int(n_in))])
    groups = column_groups(preprocess, raw_names)
    return Prepared(preprocess, final, *_net_info(final), column_groups=groups,
                    raw_names=raw_names)


# ---------------------------------------------------------------------- column mapping
#: per encoded feature: (set of input column indices, block label or None)
_Map = list[tuple[frozenset, "str | None"]]


def _identity_map(n: int) -> _Map:
    return [(frozenset([i]), None) for i in range(n)]


def _n_out(step: object, name: str) -> int:
    try:
        return len(step.get_feature_names_out())
    except Exception as err:  # noqa: BLE001 - any failure: we cannot tell the width
        raise ValueError(
            f"cannot explain the pipeline per column: preprocessing step {name!r} "
            f"({type(step).__name__}) does not say which input columns its outputs come from "
            "(no get_feature_names_out); use a transformer with get_feature_names_out (e.g. "
            "FunctionTransformer(feature_names_out='one-to-one')) or put it inside a "
            "ColumnTransformer"
        ) from err


def _step_map(step: object, n_in: int, name: str, width: int | None = None) -> _Map:
    """Per output feature of ``step``: which of its ``n_in`` input columns it comes from."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import MissingIndicator, SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import (
        Binarizer,
        FunctionTransformer,
        KBinsDiscretizer,
        MaxAbsScaler,
        MinMaxScaler,
        OneHotEncoder,
        OrdinalEncoder,
        PowerTransformer,
        QuantileTransformer,
        RobustScaler,
        StandardScaler,
    )

    if step is None or (isinstance(step, str) and step == "passthrough"):
        return _identity_map(n_in)
    if isinstance(step, str) and step == "drop":
        return []
    if isinstance(step, Pipeline):
        mapping = _identity_map(n_in)
        for i, (sub_name, sub) in enumerate(step.steps):
            last = i == len(step.steps) - 1
            inner = _step_map(sub, len(mapping), sub_name, width if last else None)
            mapping = [(frozenset().union(*(mapping[j][0] for j in s)) if s else frozenset(),
                        lab or next((mapping[j][1] for j in s if mapping[j][1]), None))
                       for s, lab in inner]
        return mapping
    if isinstance(step, ColumnTransformer):
        return _column_transformer_map(step, n_in)
    one_to_one = (StandardScaler, MinMaxScaler, MaxAbsScaler, RobustScaler, QuantileTransformer,
                  PowerTransformer, OrdinalEncoder, Binarizer)
    if isinstance(step, one_to_one):
        return _identity_map(n_in)
    if isinstance(step, FunctionTransformer) and (
            step.func is None or isinstance(step.func, np.ufunc)
            or (isinstance(step.func, type) and issubclass(step.func, np.generic))
            or step.feature_names_out == "one-to-one"):
        return _identity_map(n_in)  # elementwise (a ufunc, a cast) or declared one-to-one
    if isinstance(step, SimpleImputer):
        stats = getattr(step, "statistics_", None)
        kept = list(range(n_in))
        if not getattr(step, "keep_empty_features", False) and stats is not None and (
                step.strategy != "constant"):
            import pandas as pd

            kept = [i for i in kept if not pd.isna(stats[i])]
        out = _identity_map(n_in)
        out = [out[i] for i in kept]
        if step.add_indicator and getattr(step, "indicator_", None) is not None:
            out += [(frozenset([int(i)]), None) for i in step.indicator_.features_]
        return out
    if isinstance(step, MissingIndicator):
        return [(frozenset([int(i)]), None) for i in step.features_]
    if isinstance(step, OneHotEncoder):
        counts = getattr(step, "_n_features_outs", None)
        if counts is None:
            counts = [len(c) for c in step.categories_]
        out = []
        for i, k in enumerate(counts):
            out += [(frozenset([i]), None)] * int(k)
        return out
    if isinstance(step, KBinsDiscretizer):
        if step.encode == "ordinal":
            return _identity_map(n_in)
        out = []
        for i, k in enumerate(step.n_bins_):
            out += [(frozenset([i]), None)] * int(k)
        return out
    # many-to-many (PCA, PolynomialFeatures, ...) or unknown: one block of all its inputs
    n_out = width if width is not None else _n_out(step, name)
    label = name if name else type(step).__name__.lower()
    return [(frozenset(range(n_in)), label)] * n_out


def _resolve_columns(ct: object, cols: object, n_in: int) -> list[int]:
    names = getattr(ct, "feature_names_in_", None)
    names = None if names is None else [str(c) for c in names]
    if callable(cols):  # pragma: no cover - transformers_ holds resolved columns
        raise ValueError("unresolved callable column selector")
    if isinstance(cols, slice):
        if isinstance(cols.start, str) or isinstance(cols.stop, str):
            start = 0 if cols.start is None else names.index(str(cols.start))
            stop = n_in if cols.stop is None else names.index(str(cols.stop)) + 1
            return list(range(start, stop))
        return list(range(n_in))[cols]
    if isinstance(cols, (str, int, np.integer)):
        cols = [cols]
    cols = list(np.asarray(cols).tolist()) if not isinstance(cols, list) else cols
    if cols and all(isinstance(c, bool) for c in cols):
        return [i for i, c in enumerate(cols) if c]
    out = []
    for c in cols:
        if isinstance(c, str):
            out.append(names.index(c))
        else:
            out.append(int(c) % n_in)
    return out


def _column_transformer_map(ct: object, n_in: int) -> _Map:
    width = sum(s.stop - s.start for s in ct.output_indices_.values())
    out: list = [None] * width
    for tname, trans, cols in ct.transformers_:
        idx = _resolve_columns(ct, cols, n_in)
        where = ct.output_indices_.get(tname, slice(0, 0))
        n_out = where.stop - where.start
        if (isinstance(trans, str) and trans == "drop") or n_out == 0:
            continue
        sub = _step_map(trans, len(idx), tname, n_out)
        if len(sub) != n_out:  # our reading of the transformer is off: treat as one block
            sub = [(frozenset(range(len(idx))), tname)] * n_out
        for k, (s, lab) in enumerate(sub):
            out[where.start + k] = (frozenset(idx[j] for j in s), lab)
    return out


def column_groups(preprocess: object, raw_names: list[str]) -> ColumnGroups:
    """Map the encoded features of ``preprocess`` to the original columns ``raw_names``.

    One-to-one steps (scalers, imputers, ordinal encoders, ``'passthrough'``) keep a
    feature with its column, ``SimpleImputer(add_indicator=True)`` indicators belong to
    their column, a ``OneHotEncoder`` gives a block per column, ``'drop'`` gives a column
    with no encoded feature (attribution 0). A many-to-many transformer (PCA,
    PolynomialFeatures, ...) whose input columns no other transformer uses becomes ONE
    group named ``"<step>(<col>, <col>, ...)"`` at the position of its first column.

    Raises
    ------
    ValueError
        A many-to-many transformer shares input columns with other transformers.
    """
    n_in = len(raw_names)
    mapping = _step_map(preprocess, n_in, "")
    try:
        encoded_names = [str(n) for n in preprocess.get_feature_names_out()]
    except Exception:  # noqa: BLE001 - names are cosmetic
        encoded_names = [f"E{i + 1}" for i in range(len(mapping))]
    if len(encoded_names) != len(mapping) or any(m is None for m in mapping):
        raise ValueError(
            f"cannot explain the pipeline per column: the {len(encoded_names)} output "
            f"columns of its preprocessing could not be mapped to its {n_in} input columns"
        )
    # union-find over the original columns joined by block features
    parent = list(range(n_in))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for cols, _ in mapping:
        cols = sorted(cols)
        for c in cols[1:]:
            parent[find(c)] = find(cols[0])
    for cols, _ in mapping:
        if len(cols) == 1:
            (c,) = cols
            root = find(c)
            members = [j for j in range(n_in) if find(j) == root]
            if len(members) > 1:
                block = next((lb for cs, lb in mapping if len(cs) > 1 and c in cs), "block")
                raise ValueError(
                    f"cannot explain the pipeline per column: preprocessing step {block!r} "
                    f"mixes the columns {[raw_names[j] for j in members]}, and column "
                    f"{raw_names[c]!r} is also used by another transformer, so the "
                    "attributions cannot be split per column; give the mixing transformer "
                    "columns of its own"
                )
    names: list[str] = []
    groups: list[list[int]] = []
    seen: set[int] = set()
    for j in range(n_in):
        root = find(j)
        if root in seen:
            continue
        seen.add(root)
        members = [m for m in range(n_in) if find(m) == root]
        feats = [e for e, (cols, _) in enumerate(mapping) if cols and find(min(cols)) == root]
        if len(members) == 1:
            names.append(raw_names[j])
        else:
            lab = next(lb for cs, lb in mapping if len(cs) > 1 and find(min(cs)) == root)
            names.append(f"{lab}({', '.join(raw_names[m] for m in members)})")
        groups.append(feats)
    return ColumnGroups(names, groups, encoded_names)


def block_members(groups: ColumnGroups, raw_names: list[str]) -> list[list[int]]:
    """Original column indices behind each group (one, or several for a block)."""
    out = []
    for name in groups.names:
        if name in raw_names:
            out.append([raw_names.index(name)])
        else:
            inner = name[name.index("(") + 1:-1].split(", ")
            out.append([raw_names.index(c) for c in inner])
    return out


# ---------------------------------------------------------------------- running it
def _as_frame(X: object, preprocess: object, raw_names: list[str], name: str):
    """The user's raw data as a DataFrame with the fitted columns, checked by name."""
    import pandas as pd

    fitted = getattr(preprocess, "feature_names_in_", None)
    if isinstance(X, pd.DataFrame):
        got = [str(c) for c in X.columns]
        if fitted is not None:
            missing = [c for c in raw_names if c not in got]
            if missing:
                raise ValueError(f"{name} is missing column(s) {missing} that the pipeline was "
                                 "fitted with")
            extra = [c for c in got if c not in raw_names]
            if extra:
                raise ValueError(f"{name} has column(s) {extra} that the pipeline was not "
                                 "fitted with")
            if got != raw_names:
                moved = [c for c, g in zip(raw_names, got) if c != g]
                raise ValueError(
                    f"{name} has the pipeline's columns in another order (first differing: "
                    f"{moved[0]!r}); expected {raw_names}"
                )
        elif X.shape[1] != len(raw_names):
            raise ValueError(f"{name} has {X.shape[1]} columns, the pipeline takes "
                             f"{len(raw_names)}")
        return X
    if isinstance(X, (list, tuple)) and len(X) == 1 and not np.isscalar(X[0]):
        X = X[0]
    if hasattr(X, "detach"):
        X = X.detach().cpu().numpy()
    arr = np.asarray(X, dtype=object) if not isinstance(X, np.ndarray) else X
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2 or arr.shape[1] != len(raw_names):
        raise ValueError(
            f"{name} must be a table with the pipeline's {len(raw_names)} columns "
            f"{raw_names}, got shape {arr.shape}"
        )
    if fitted is None:
        return arr
    return pd.DataFrame(arr, columns=list(fitted))


def _unknown_category_error(preprocess: object, frame: object, err: Exception
                            ) -> ValueError | None:
    """Name the column and values behind sklearn's "Found unknown categories" error."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

    if "unknown categor" not in str(err).lower() or not isinstance(frame, pd.DataFrame):
        return None

    def encoders(step, cols):
        if isinstance(step, Pipeline):
            for _, sub in step.steps:  # imputers first keep columns; the encoder sees them
                yield from encoders(sub, cols)
        elif isinstance(step, ColumnTransformer):
            for _, trans, c in step.transformers_:
                idx = _resolve_columns(step, c, len(cols))
                yield from encoders(trans, [cols[i] for i in idx])
        elif isinstance(step, (OneHotEncoder, OrdinalEncoder)):
            yield step, cols

    for enc, cols in encoders(preprocess, list(frame.columns)):
        if getattr(enc, "handle_unknown", "error") != "error":
            continue
        for col, cats in zip(cols, enc.categories_):
            values = frame[col].dropna().unique()
            known = set(np.asarray(cats, dtype=object).tolist())
            bad = [v for v in values if v not in known]
            if bad:
                return ValueError(
                    f"column {col!r} has value(s) {bad[:5]} not seen when the pipeline was "
                    f"fitted (known: {sorted(map(str, known))[:10]}); use "
                    "OneHotEncoder(handle_unknown='ignore') to encode unseen values as an "
                    "all-zero block"
                )
    return ValueError(f"the pipeline's preprocessing failed: {err}")


def encode(preprocess: object, X: object, raw_names: list[str], name: str = "X"
           ) -> tuple[np.ndarray, np.ndarray]:
    """Run ``preprocess`` on the user's raw ``X``.

    Returns
    -------
    encoded : ndarray of float64, ``(n, p_encoded)``
    raw : ndarray of object, ``(n, p_raw)``
        The raw values in the user's column order (for ``Attribution.inputs``).

    Raises
    ------
    ValueError
        Missing / extra / reordered columns, an unknown category (naming the column and
        the value), or any failure of the preprocessing (with sklearn's message).
    """
    import pandas as pd

    frame = _as_frame(X, preprocess, raw_names, name)
    try:
        out = preprocess.transform(frame)
    except ValueError as err:
        clear = _unknown_category_error(preprocess, frame, err)
        if clear is None:
            clear = ValueError(f"the pipeline's preprocessing failed on {name}: {err}")
        raise clear from err
    if hasattr(out, "toarray"):
        out = out.toarray()
    if isinstance(out, pd.DataFrame):
        out = out.to_numpy()
    try:
        encoded = np.asarray(out, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"the pipeline's preprocessing returned non-numeric values for {name} ({err}); "
            "encode every column (e.g. OneHotEncoder / OrdinalEncoder) before the network"
        ) from err
    raw = frame.to_numpy(dtype=object) if isinstance(frame, pd.DataFrame) else np.asarray(
        frame, dtype=object)
    return encoded, raw
