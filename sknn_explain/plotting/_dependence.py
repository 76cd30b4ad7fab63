"""Panels of :func:`~sknn_explain.plotting.plot_dependence`: one feature against its value."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._access import (
    base_frame,
    categories_of,
    category_codes,
    data_name,
    dimension,
    inputs_cf,
    values_cf,
    with_input_space,
)
from ._checks import check_data_idx, check_input_idx, is_int
from ._outputs import select_outputs
from ._panel import DIM_NAMES, Panel
from ._result import AttributionLike, check_attribution


def dependence_panels(
    attr: AttributionLike,
    feature: object,
    color_by: object = "auto",
    output_idx: object = None,
    output_label: object = None,
    data_idx: object = "all",
    input_idx: object = None,
    output_names: object = None,
) -> list[Panel]:
    """Panels of :func:`sknn_explain.plotting.plot_dependence` (one per output).

    Parameters
    ----------
    attr : Attribution
        The result of ``Explainer.explain`` for a model with a tabular input.
    feature, color_by, output_idx, output_label, data_idx, input_idx, output_names
        As for :func:`~sknn_explain.plotting.plot_dependence`.

    Returns
    -------
    list of Panel
        What to draw, in grid order; ``plot_*`` renders them with matplotlib or plotly.

    Examples
    --------
    >>> import numpy as np, pandas as pd, torch
    >>> from sknn_explain import Gradient
    >>> X = pd.DataFrame(np.random.default_rng(0).normal(size=(30, 3)), columns=list("abc"))
    >>> res = Gradient(times_input=True).fit(torch.nn.Linear(3, 2), X).explain(X)
    >>> from sknn_explain.plotting import dependence_panels
    >>> [p.value_label for p in dependence_panels(res, "a", color_by="b")]
    ['attribution of a', 'attribution of a']
    """
    attr = check_attribution(attr)
    outs = select_outputs(attr, output_idx, output_label, output_names)
    rows = check_data_idx(data_idx, attr.n_samples, allow_all=True)
    tabular = [i for i in range(attr.n_inputs) if dimension(attr, i) == 1]
    if input_idx is None:
        if not tabular:
            raise ValueError("plot_dependence needs a tabular input; this result has none")
        i = tabular[0]
    else:
        (i,) = check_input_idx(input_idx if is_int(input_idx) else input_idx, attr.n_inputs)
        if i not in tabular:
            raise ValueError(f"plot_dependence needs a tabular input; input {i} is "
                             f"{DIM_NAMES[dimension(attr, i)]}")
    names = [str(f) for f in attr.input_names[i][0]]

    def column(f: object, what: str) -> int:
        if is_int(f):
            if not 0 <= int(f) < len(names):
                raise ValueError(f"{what} {f} is out of range: input {i} has {len(names)} "
                                 f"features (valid: 0..{len(names) - 1})")
            return int(f)
        if str(f) not in names:
            raise ValueError(f"unknown {what} {f!r}; features: {names[:10]}"
                             + (" ..." if len(names) > 10 else ""))
        return names.index(str(f))

    j = column(feature, "feature")
    x = inputs_cf(attr, i, rows)
    panels = []
    for out in outs:
        v = values_cf(attr, out, i, rows)
        c = None
        if isinstance(color_by, str) and color_by == "auto":
            c = interaction_partner(x, v[:, j], j)
        elif color_by is not None:
            c = column(color_by, "color_by")
        frame = pd.DataFrame({
            "data": [data_name(r) for r in rows], **base_frame(out, i),
            "feature": names[j], "feature_value": x[:, j], "value": v[:, j],
        })
        extra: dict = {"n_data": len(rows)}
        if c is not None:
            frame["color_value"] = x[:, c]
            extra["color_name"] = names[c]
        panels.append(Panel(
            kind="dependence", frame=frame, row=None, col=out.label,
            title=f"{attr.method} · {out.label}", input_index=i, input_dimension=1,
            features=[names[j]], scale_group=0, scope="global",
            value_label=f"attribution of {names[j]}", extra=extra,
        ))
    return with_input_space(panels, attr)


def numeric_view(x: np.ndarray) -> np.ndarray:
    """``(n, p)`` feature values as floats; categorical columns as their category codes."""
    if x.dtype.kind in "biuf":
        return x.astype(float)
    cols = []
    for k in range(x.shape[1]):
        categories = categories_of(x[:, k])
        cols.append(x[:, k].astype(float) if categories is None
                    else category_codes(x[:, k], categories))
    return np.column_stack(cols) if cols else np.zeros(x.shape, dtype=float)


def interaction_partner(x: np.ndarray, attr_j: np.ndarray, j: int) -> int | None:
    """The feature that best explains what the value of feature ``j`` does not (shap-like).

    The attribution of ``j`` is regressed on its own value; the other feature whose value
    correlates most (in absolute value) with the residual colours the dependence plot.
    """
    x = numeric_view(x)
    xj = x[:, j]
    ok = np.isfinite(xj) & np.isfinite(attr_j)
    if ok.sum() < 3 or x.shape[1] < 2:
        return None
    design = np.column_stack([np.ones(ok.sum()), xj[ok]])
    coef, *_ = np.linalg.lstsq(design, attr_j[ok], rcond=None)
    resid = attr_j[ok] - design @ coef
    best, best_r = None, -1.0
    for k in range(x.shape[1]):
        if k == j:
            continue
        xk = x[ok, k]
        if np.nanstd(xk) == 0 or np.std(resid) == 0:
            r = 0.0
        else:
            r = abs(float(np.corrcoef(xk, resid)[0, 1]))
            r = 0.0 if not np.isfinite(r) else r
        if r > best_r:
            best, best_r = k, r
    return best
