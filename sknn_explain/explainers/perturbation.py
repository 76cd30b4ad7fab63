"""Perturbation explainers: :class:`Occlusion`, :class:`FeatureAblation` and
:class:`ShapleyValueSampling` (captum's).

Both only *evaluate* the model: every perturbation replaces some input elements of a
sample by a baseline, and the attribution is the drop of each selected output,
``f(x) - f(x perturbed)``. All selected outputs come from the same forward pass, and the
perturbed rows of all samples are evaluated ``batch_size`` rows per model call.

Occlusion (Zeiler & Fergus, 2014; ``captum.attr.Occlusion``)
    A window of shape ``sliding_window_shapes`` slides over each sample's input (per-sample
    shape, all axes including channels) with step ``strides``; window starts are
    ``0, s, 2s, ...`` up to and including the first start at or beyond ``D - w`` (windows
    past the border are clipped, as in captum). The attribution of an element is the mean,
    over the windows that contain it, of ``f(x) - f(x with the window set to the
    baseline)``.

FeatureAblation (``captum.attr.FeatureAblation``)
    Each feature group of ``feature_mask`` (equal integer labels; by default every input
    element on its own) is replaced by the baseline at once; every element of the group
    gets the whole difference ``f(x) - f(x with the group ablated)`` (not split, as in
    captum). Equal labels in several inputs of a multi-input model form one group.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Sequence
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.utils import check_random_state

from .._batching import forward_batch_size, gradient_strategy
from .._data import InputBatch
from .._model import call_forward, predict
from .._output_selection import OutputSelection
from .._validation import BOOLEAN, POSITIVE_INT, RANDOM_STATE, SPACE, StrOptions
from ..layers.base import to_channels_last
from .base import Explainer

__all__ = [
    "FeatureAblation", "Occlusion", "ShapleyValueSampling", "ablation_outputs", "window_masks",
]


# ---------------------------------------------------------------------------- helpers
def window_masks(
    shape: tuple[int, ...], window: tuple[int, ...], strides: tuple[int, ...]
) -> np.ndarray:
    """Element masks of captum's occlusion windows over one sample of shape ``shape``.

    Parameters
    ----------
    shape, window, strides : tuple of int
        Per-sample input shape, window shape and step per axis (same length).

    Returns
    -------
    ndarray of bool, ``(P, prod(shape))``
        One row per window position; windows past the border are clipped.

    Examples
    --------
    >>> window_masks((5,), (2,), (2,)).astype(int)
    array([[1, 1, 0, 0, 0],
           [0, 0, 1, 1, 0],
           [0, 0, 0, 0, 1]])
    """
    starts = [
        [i * s for i in range(math.ceil((d - w) / s) + 1)]
        for d, w, s in zip(shape, window, strides)
    ]
    combos = list(itertools.product(*starts))
    masks = np.zeros((len(combos), *shape), dtype=bool)
    for p, start in enumerate(combos):
        masks[(p, *(slice(b, b + w) for b, w in zip(start, window)))] = True
    return masks.reshape(len(combos), -1)


def ablation_outputs(
    forward,
    xs: Sequence[torch.Tensor],
    masks: Sequence[torch.Tensor],
    bases: Sequence[torch.Tensor],
    selection: OutputSelection,
    batch_size: int,
    *,
    channels_last: bool | None = None,
) -> torch.Tensor:
    """Selected model outputs of every sample under every ablation, float64 ``(n, P, K)``.

    For sample ``a`` and perturbation ``p`` the model sees, per input ``i``,
    ``where(masks[i][p], bases[i], x_i[a])`` (flattened per sample). Every model call gets at
    most ``batch_size`` rows. ``channels_last`` (default: images ``(n, C, H, W)`` and
    signals ``(n, C, L)`` on CPU through the converted graph, as
    :func:`~sknn_explain._batching.gradient_strategy` decides for the gradients) runs the
    perturbed inputs channels-last (:func:`~sknn_explain.layers.base.to_channels_last`):
    the graph's convolutions and poolings are faster so, with the same numbers to rounding.

    Parameters
    ----------
    forward : callable ``list[Tensor] -> list[Tensor]``
    xs : per input ``(n, *shape)``
    masks : per input bool ``(P, prod(shape))``
    bases : per input ``(prod(shape),)`` baseline values
    selection : OutputSelection
    batch_size : int

    Examples
    --------
    >>> import torch
    >>> from sknn_explain._output_selection import resolve_outputs
    >>> forward = lambda xs: [xs[0].sum(1, keepdim=True)]
    >>> sel = resolve_outputs(None, None, [["Y1"]])
    >>> masks = [torch.tensor([[True, False], [False, True]])]
    >>> ablation_outputs(forward, [torch.ones(1, 2)], masks, [torch.zeros(2)], sel, 8)[0, :, 0]
    tensor([1., 1.], dtype=torch.float64)
    """
    n = xs[0].shape[0]
    p_total = masks[0].shape[0]
    flat_x = [x.reshape(n, -1) for x in xs]
    shapes = [tuple(x.shape[1:]) for x in xs]
    total = n * p_total
    if channels_last is None:
        channels_last = gradient_strategy(forward, xs)[1]
    out = torch.empty((total, sum(selection.sizes)), dtype=torch.float64, device=xs[0].device)
    with torch.inference_mode():
        for start in range(0, total, batch_size):
            stop = min(total, start + batch_size)
            pair = torch.arange(start, stop, device=xs[0].device)
            a = torch.div(pair, p_total, rounding_mode="floor")
            p = pair - a * p_total
            pts = [  # b: one baseline (E,) or one per perturbation (P, E)
                torch.where(m[p], b[p] if b.ndim == 2 else b[None, :], x[a]).reshape(-1, *shape)
                for x, m, b, shape in zip(flat_x, masks, bases, shapes)
            ]
            if channels_last:
                pts = [to_channels_last(t) for t in pts]
            out[start:stop] = selection.pick(call_forward(forward, pts)).to(torch.float64)
    return out.reshape(n, p_total, -1)


def _as_tuple(value: object, rank: int, name: str, label: str) -> tuple[int, ...]:
    """An int or a tuple of ints of length ``rank`` (positive) as a tuple."""
    if isinstance(value, Integral) and not isinstance(value, bool):
        value = (int(value),) * rank
    if not isinstance(value, (tuple, list)) or not all(
        isinstance(v, Integral) and not isinstance(v, bool) for v in value
    ):
        raise TypeError(f"{name} must be an int or a tuple of ints per input, got {value!r}")
    if len(value) != rank:
        raise ValueError(
            f"{name}={tuple(value)} has {len(value)} entries, but each sample of {label} has "
            f"{rank} axes; give one entry per axis of the per-sample shape"
        )
    if any(v < 1 for v in value):
        raise ValueError(f"{name}={tuple(value)} must hold positive ints")
    return tuple(int(v) for v in value)


def _per_input(value: object, n_inputs: int, name: str) -> list:
    """One entry per input: a list / tuple of per-input values when there are several."""
    if n_inputs == 1:
        if isinstance(value, list) and len(value) == 1 and not isinstance(value[0], Integral):
            return value
        return [value]
    if not isinstance(value, (list, tuple)) or len(value) != n_inputs or all(
        isinstance(v, Integral) for v in value
    ):
        if isinstance(value, (Integral, Real, str)) or value is None:
            return [value] * n_inputs
        raise ValueError(
            f"the model has {n_inputs} inputs: give {name} as a list with one entry per input"
        )
    return list(value)


def _user_to_model(a: np.ndarray, channels_first: bool) -> np.ndarray:
    """Per-sample array in the user's layout -> the model's (channels first) layout."""
    return a if channels_first or a.ndim < 2 else np.moveaxis(a, -1, 0)


def _user_shape(shape: tuple[int, ...], channels_first: bool) -> tuple[int, ...]:
    return shape if channels_first or len(shape) < 2 else (*shape[1:], shape[0])


def _check_baseline_param(value: object) -> None:
    if isinstance(value, str):
        if value not in ("mean", "rows"):
            raise ValueError(
                f"The 'baselines' parameter must be a float, 'mean' or an array-like of the "
                f"per-sample input shape, got {value!r}"
            )
        return
    if isinstance(value, bool) or value is None:
        raise TypeError(
            f"The 'baselines' parameter must be a float, 'mean' or an array-like of the "
            f"per-sample input shape, got {value!r}"
        )
    if isinstance(value, Real):
        if not math.isfinite(value):
            raise ValueError(f"The 'baselines' parameter must be finite, got {value!r}")
        return
    if isinstance(value, (list, tuple)) and any(
        isinstance(v, (str, np.ndarray, torch.Tensor, list)) for v in value
    ):
        for v in value:  # one baseline per input
            _check_baseline_param(v)
        return
    try:
        arr = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value,
                         dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"The 'baselines' parameter must be a float, 'mean' or an array-like of the "
            f"per-sample input shape, got {type(value).__name__}"
        ) from err
    if not np.isfinite(arr).all():
        raise ValueError("The 'baselines' parameter holds NaN / inf values")


class _PerturbationExplainer(Explainer):
    """Shared parts: baselines, nonfinite handling, the final sum over perturbations."""

    _parameter_constraints = {
        **Explainer._parameter_constraints,
        "baselines": "no_validation",  # checked in _check_params and against the shapes
        "space": SPACE,
    }

    def _check_params(self) -> None:
        _check_baseline_param(self.baselines)

    def _batch_size(self, shapes: Sequence[tuple[int, ...]]) -> int:
        # forward passes only: on CPU, cache-sized chunks (CPU_FORWARD_SET input values)
        if self.batch_size is not None:
            return int(self.batch_size)
        return forward_batch_size(shapes, self.device_.type)

    def _fit_reference(self, ref: InputBatch | None) -> None:
        self.reference_mean_ = self.reference_rows_ = None
        wants_mean = any(isinstance(b, str) for b in (
            self.baselines if isinstance(self.baselines, (list, tuple)) else [self.baselines]))
        if wants_mean:
            if ref is None:
                raise ValueError(
                    f"{type(self).__name__}(baselines='mean') replaces features by the mean "
                    "of X_ref: call fit(model, X_ref)"
                )
            rows = ref.to_tensors(self.dtype_, self.device_)
            self.reference_mean_ = [d.mean(0) for d in rows]
            self.reference_rows_ = rows  # ShapleyValueSampling(baselines="rows")

    def _bases(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Flat per-input baseline, ``(prod(shape),)``, in the model's layout."""
        values = _per_input(self.baselines, len(xs), "baselines")
        out = []
        for i, (v, x) in enumerate(zip(values, xs)):
            if isinstance(v, str):  # "mean" of X_ref
                if v == "rows":
                    raise ValueError(
                        f"baselines='rows' is supported by ShapleyValueSampling only, not by "
                        f"{type(self).__name__}; use baselines='mean'"
                    )
                if self.reference_mean_ is None:
                    raise ValueError("baselines='mean' was set after fit: refit with X_ref")
                out.append(self.reference_mean_[i].reshape(-1).to(x.dtype))
                continue
            shape = tuple(x.shape[1:])
            if isinstance(v, torch.Tensor):
                v = v.detach().cpu().numpy()
            arr = np.asarray(v, dtype=np.float64)
            user = _user_shape(shape, self.channels_first)
            try:
                arr = np.broadcast_to(arr, user)
            except ValueError:
                label = "X" if len(xs) == 1 else f"X[{i}]"
                raise ValueError(
                    f"baselines of shape {arr.shape} do not broadcast to the per-sample shape "
                    f"{user} of {label}"
                ) from None
            arr = _user_to_model(arr, self.channels_first)
            out.append(torch.as_tensor(np.array(arr).reshape(-1), dtype=x.dtype,
                                       device=x.device))
        return out

    def _masks(self, xs: Sequence[torch.Tensor]) -> list[np.ndarray]:
        """Per input bool ``(P, prod(shape))`` element masks of the P perturbations."""
        raise NotImplementedError

    def _attribute(self, xs, selection, batch_size):
        masks_np = self._masks(xs)
        bases = self._bases(xs)
        device = xs[0].device
        masks = [torch.as_tensor(m, device=device) for m in masks_np]
        preds = selection.pick(predict(self.model_, xs, batch_size))
        v = ablation_outputs(self.model_, xs, masks, bases, selection, batch_size)
        diff = preds.to(torch.float64)[:, None, :] - v  # (n, P, K)
        bad = ~torch.isfinite(diff)
        hidden = bad.any(1) & torch.isfinite(preds).all(1)[:, None]
        if bool(hidden.any()):
            warnings.warn(
                "the model returned NaN/inf on perturbed copies of some samples (their own "
                "outputs are finite); the attributions of the elements those perturbations "
                "touch are set to NaN",
                RuntimeWarning, stacklevel=4,
            )
        clean = torch.where(bad, torch.zeros((), dtype=diff.dtype, device=device), diff)
        values = []
        for m, x in zip(masks, xs):
            mf = m.to(torch.float64)
            attr = torch.einsum("pe,apk->aek", mf, clean)
            nan = torch.einsum("pe,apk->aek", mf, bad.to(torch.float64)) > 0
            attr = self._normalise(attr, mf)
            attr = torch.where(nan, torch.full((), float("nan"), dtype=attr.dtype,
                                               device=device), attr)
            values.append(attr.reshape(x.shape[0], *x.shape[1:], -1).to(x.dtype))
        return values, preds.to(xs[0].dtype), None

    def _normalise(self, attr: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        return attr


_COMMON_DOC = """ignore_last_act : bool, default=False
        Explain the output before the last activation (softmax / sigmoid). The default
        explains the model's actual output, as captum does with the model as forward
        function.
    channels_first : bool, default=True
        Image / signal layout of the data: ``(n, C, ...)`` (True) or ``(n, ..., C)``. Window
        shapes, strides, baselines and feature masks are given in the same layout.
    dtype : {"float", "double"}, default="double"
        Precision of the model's private copy and of the perturbed inputs.
    device : {"cpu", "cuda", "cuda:<index>", "auto"} or torch.device, default="cpu"
    batch_size : int, optional
        Model rows (samples x perturbations) per call; None picks one from the input width
        (on CPU about 2^18 input values per call, which runs fastest there).
    verbose : bool, default=False
        Unused (accepted for a uniform interface).
    space : {"network", "raw"}, default="network"
        For a pipeline of scalers in front of a network: explain the network's own inputs
        (per original column) or the raw columns with the scalers folded in.
"""


#: the ``baselines`` parameter of all three explainers; ``what`` names the replaced values
_BASELINES_DOC = (
    'baselines : float, "mean", array-like, or list of those (one per input), default=0.0\n'
    """        Value of {what}: a constant, the mean of ``X_ref`` ("mean", needs
        ``fit(model, X_ref)``) or an array broadcastable to the per-sample shape."""
)

class Occlusion(_PerturbationExplainer):
    __doc__ = f"""Occlusion with a sliding window (``captum.attr.Occlusion``).

    The attribution of an input element is the mean, over all window positions that cover
    it, of ``f(x) - f(x with the window set to the baseline)``, for every selected output
    from the same forward passes. Works on tabular rows (windows over columns), signals
    and images (windows over channels and positions). It has no decomposition goal.

    Parameters
    ----------
    sliding_window_shapes : int, tuple of int, or list of those (one per input), optional
        Window shape over the per-sample shape (all axes, channels included, in the
        user's layout). An int is used for every axis. None: 1 on every axis (each element
        occluded alone).
    strides : int, tuple of int, or list of those (one per input), default=1
        Step of the window per axis; at most the window size on axes the window does not
        cover entirely (as captum). Windows past the border are clipped.
    {_BASELINES_DOC.format(what="occluded elements")}
    {_COMMON_DOC}
    Examples
    --------
    >>> import torch
    >>> from sknn_explain import Occlusion
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> X = torch.randn(5, 4)
    >>> Occlusion(sliding_window_shapes=(2,)).fit(net).explain(X).values.shape
    (5, 4, 3)
    """

    method_name = "Occlusion"
    _parameter_constraints = {
        **_PerturbationExplainer._parameter_constraints,
        "sliding_window_shapes": "no_validation",  # checked against the input shapes
        "strides": "no_validation",
    }

    def __init__(
        self, sliding_window_shapes=None, strides=1, baselines=0.0, *, ignore_last_act=False,
        channels_first=True, dtype="double", device="cpu", batch_size=None, verbose=False,
        space="network",
    ):
        super().__init__(
            ignore_last_act=ignore_last_act, channels_first=channels_first, dtype=dtype,
            device=device, batch_size=batch_size, verbose=verbose,
        )
        self.sliding_window_shapes = sliding_window_shapes
        self.strides = strides
        self.baselines = baselines
        self.space = space

    def _check_params(self) -> None:
        super()._check_params()
        for name in ("sliding_window_shapes", "strides"):
            value = getattr(self, name)
            if name == "sliding_window_shapes" and value is None:
                continue
            items = value if isinstance(value, list) else [value]
            for item in items:
                flat = item if isinstance(item, tuple) else (item,)
                if not flat or not all(
                    isinstance(v, Integral) and not isinstance(v, bool) for v in flat
                ):
                    raise TypeError(
                        f"The {name!r} parameter must be an int, a tuple of ints, or a list "
                        f"of those (one per input), got {value!r}"
                    )
                if any(v < 1 for v in flat):
                    raise ValueError(
                        f"The {name!r} parameter must hold positive ints, got {value!r}"
                    )

    def _windows(self, xs):
        n_in = len(xs)
        windows = _per_input(self.sliding_window_shapes, n_in, "sliding_window_shapes")
        strides = _per_input(self.strides, n_in, "strides")
        out = []
        for i, (w, s, x) in enumerate(zip(windows, strides, xs)):
            label = "X" if n_in == 1 else f"X[{i}]"
            user = _user_shape(tuple(x.shape[1:]), self.channels_first)
            w = (1,) * len(user) if w is None else _as_tuple(
                w, len(user), "sliding_window_shapes", label)
            s = _as_tuple(s, len(user), "strides", label)
            if any(wi > d for wi, d in zip(w, user)):
                raise ValueError(
                    f"sliding_window_shapes={w} exceeds the per-sample shape {user} of {label}"
                )
            if any(si > wi and wi < d for si, wi, d in zip(s, w, user)):
                raise ValueError(
                    f"strides={s} is larger than sliding_window_shapes={w} on an axis the "
                    f"window does not cover entirely ({label}): elements would be skipped"
                )
            if not self.channels_first and len(user) >= 2:
                w, s = (w[-1], *w[:-1]), (s[-1], *s[:-1])
            out.append((w, s))
        return out

    def _masks(self, xs):
        per_input = [
            window_masks(tuple(x.shape[1:]), w, s) for (w, s), x in zip(self._windows(xs), xs)
        ]
        total = sum(m.shape[0] for m in per_input)
        masks, offset = [], 0
        for m in per_input:  # each input's windows occlude that input alone
            full = np.zeros((total, m.shape[1]), dtype=bool)
            full[offset:offset + m.shape[0]] = m
            masks.append(full)
            offset += m.shape[0]
        return masks

    def _normalise(self, attr, masks):
        counts = masks.sum(0)
        return attr / torch.clamp(counts, min=1)[None, :, None]


class FeatureAblation(_PerturbationExplainer):
    __doc__ = f"""Feature ablation (``captum.attr.FeatureAblation``).

    Each feature (group) is replaced by the baseline on its own; every element of the group
    gets the whole difference ``f(x) - f(x with the group ablated)`` for every selected
    output (as captum: a group's attribution is repeated on each of its elements, not
    split). It has no decomposition goal.

    Parameters
    ----------
    feature_mask : array-like of int, or list of those (one per input), optional
        Integer group label per input element, of (or broadcastable to) the per-sample
        shape in the user's layout; equal labels are ablated together, also across inputs.
        E.g. ``[0, 0, 1, 2]`` ablates the first two columns together; a ``(1, H, W)``
        superpixel map groups all channels of a pixel. None: every element alone.
    {_BASELINES_DOC.format(what="ablated elements")}
    {_COMMON_DOC}
    Examples
    --------
    >>> import torch
    >>> from sknn_explain import FeatureAblation
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> X = torch.randn(5, 4)
    >>> res = FeatureAblation(feature_mask=[0, 0, 1, 2]).fit(net).explain(X)
    >>> bool((res.values[:, 0] == res.values[:, 1]).all())
    True
    """

    method_name = "FeatureAblation"
    _parameter_constraints = {
        **_PerturbationExplainer._parameter_constraints,
        "feature_mask": "no_validation",  # checked against the input shapes
    }

    def __init__(
        self, feature_mask=None, baselines=0.0, *, ignore_last_act=False, channels_first=True,
        dtype="double", device="cpu", batch_size=None, verbose=False, space="network",
    ):
        super().__init__(
            ignore_last_act=ignore_last_act, channels_first=channels_first, dtype=dtype,
            device=device, batch_size=batch_size, verbose=verbose,
        )
        self.feature_mask = feature_mask
        self.baselines = baselines
        self.space = space

    def _labels(self, xs) -> list[np.ndarray]:
        n_in = len(xs)
        if self.feature_mask is None:
            sizes = [math.prod(x.shape[1:]) for x in xs]
            offsets = np.cumsum([0, *sizes])
            return [np.arange(o, o + s) for o, s in zip(offsets, sizes)]
        given = self.feature_mask
        if n_in > 1:
            if not isinstance(given, (list, tuple)) or len(given) != n_in:
                raise ValueError(
                    f"the model has {n_in} inputs: give feature_mask as a list with one "
                    "integer array per input"
                )
        else:
            given = [given]
        out = []
        for i, (g, x) in enumerate(zip(given, xs)):
            label = "X" if n_in == 1 else f"X[{i}]"
            if isinstance(g, torch.Tensor):
                g = g.detach().cpu().numpy()
            arr = np.asarray(g)
            if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
                if arr.dtype.kind == "f" and np.isfinite(arr).all() and (
                        arr == np.round(arr)).all():
                    arr = arr.astype(np.int64)
                else:
                    raise TypeError(
                        f"feature_mask for {label} must hold integer group labels, got "
                        f"dtype {arr.dtype}"
                    )
            user = _user_shape(tuple(x.shape[1:]), self.channels_first)
            if arr.ndim == len(user) + 1 and arr.shape[0] == 1:
                arr = arr[0]  # captum-style leading batch axis of 1
            try:
                arr = np.broadcast_to(arr, user)
            except ValueError:
                raise ValueError(
                    f"feature_mask of shape {arr.shape} does not broadcast to the per-sample "
                    f"shape {user} of {label}"
                ) from None
            out.append(np.ascontiguousarray(_user_to_model(arr, self.channels_first)).reshape(-1))
        return out

    def _masks(self, xs):
        labels = self._labels(xs)
        groups = np.unique(np.concatenate(labels))
        return [lab[None, :] == groups[:, None] for lab in labels]


_MAX_ALL_GROUPS = 8


class ShapleyValueSampling(FeatureAblation):
    __doc__ = f"""Shapley value sampling (``captum.attr.ShapleyValueSampling``).

    Random permutations of the feature groups; along each permutation the groups are added
    one by one to the baseline (all groups at the baseline first), and each group's
    attribution is the mean, over permutations, of ``f(x with the group added) - f(before)``
    (Castro et al., 2009; Strumbelj & Kononenko, 2010). Every group's value is repeated on
    each of its elements (as captum). All selected outputs come from the same forward
    passes; each permutation costs ``n_groups - 1`` model rows per sample, plus one row for
    the baseline shared by all permutations.

    Efficiency holds exactly for every sample and any ``n_samples``: along each permutation
    the differences telescope, so the group attributions (each group counted once) sum to
    ``f(x) - f(baseline)`` up to floating-point rounding. The estimate of each group is
    unbiased for its Shapley value against the baseline.

    Parameters
    ----------
    n_samples : int or "all", default=25
        Number of random permutations. "all" enumerates every permutation of the groups
        (at most {_MAX_ALL_GROUPS} groups), which gives the exact Shapley values against the
        baseline.
        ``n_samples`` is captum's name here, as for the other perturbation methods' model
        evaluations; the gradient family's ``n`` (innsight's name) counts points on a
        gradient path instead.
    feature_mask : array-like of int, or list of those (one per input), optional
        Integer group label per input element (see :class:`FeatureAblation`); equal labels
        form one player. None: every element is its own player.
    baselines : float, "mean", "rows", array-like, or list of those (one per input), \
default=0.0
        Value of the groups not yet added: a constant, the mean of ``X_ref`` ("mean", needs
        ``fit(model, X_ref)``) or an array broadcastable to the per-sample shape. "rows"
        (needs ``fit(model, X_ref)``): every permutation is paired with one row of
        ``X_ref`` as its baseline (the rows in a seeded random order, cycled; with
        ``n_samples="all"`` every permutation with every row), so the attributions are
        Shapley values averaged over the reference rows (interventional SHAP) and the
        decomposition goal is ``f(x) - mean f(X_ref)``; efficiency holds against the rows
        drawn, exactly when ``n_samples`` is a multiple of ``len(X_ref)``.
    antithetic : bool, default=False
        Also evaluate every sampled permutation reversed (antithetic sampling: a group
        early in one permutation is late in its mirror, which cancels much of the
        position-dependent variance). Doubles the cost; ``n_samples`` counts the sampled
        pairs. Ignored with ``n_samples="all"``, whose set is already closed under reversal.
    random_state : int, RandomState, Generator or None
        Seed of the permutations; an int gives the same permutations at every call.
    {_COMMON_DOC}
    Examples
    --------
    >>> import torch
    >>> from sknn_explain import ShapleyValueSampling
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> X = torch.randn(5, 4)
    >>> res = ShapleyValueSampling(n_samples=10, random_state=0).fit(net).explain(X)
    >>> res.values.shape
    (5, 4, 3)
    """

    method_name = "ShapleyValueSampling"
    _parameter_constraints = {
        **FeatureAblation._parameter_constraints,
        "n_samples": [*POSITIVE_INT, StrOptions({"all"})],
        "antithetic": BOOLEAN,
        "random_state": RANDOM_STATE,
    }

    def __init__(
        self, n_samples=25, feature_mask=None, baselines=0.0, antithetic=False,
        random_state=None, *, ignore_last_act=False, channels_first=True, dtype="double",
        device="cpu", batch_size=None, verbose=False, space="network",
    ):
        super().__init__(
            ignore_last_act=ignore_last_act, channels_first=channels_first, dtype=dtype,
            device=device, batch_size=batch_size, verbose=verbose,
        )
        self.n_samples = n_samples
        self.feature_mask = feature_mask
        self.baselines = baselines
        self.antithetic = antithetic
        self.random_state = random_state
        self.space = space

    def _permutations(self, m: int) -> np.ndarray:
        """``(P, m)`` group orders: sampled (plus mirrors) or all of them."""
        if self.n_samples == "all":
            if m > _MAX_ALL_GROUPS:
                raise ValueError(
                    f"n_samples='all' enumerates every permutation of the feature groups and "
                    f"allows at most {_MAX_ALL_GROUPS} groups, got {m}: give an int n_samples "
                    "or fewer groups through feature_mask"
                )
            return np.array(list(itertools.permutations(range(m))), dtype=np.int64).reshape(
                -1, m)
        rng = check_random_state(self.random_state)
        perms = np.argsort(rng.random_sample((int(self.n_samples), m)), axis=1)
        if self.antithetic:
            perms = np.concatenate([perms, perms[:, ::-1]])
        return perms

    @property
    def _goal_description(self) -> str:
        return "f(x) - mean f(X_ref)"

    def _reference_pairs(self, perms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``baselines="rows"``: permutations and the reference row index of each."""
        rows = getattr(self, "reference_rows_", None)
        if rows is None:
            raise ValueError("ShapleyValueSampling(baselines='rows') uses the rows of X_ref as "
                             "baselines: call fit(model, X_ref)")
        r = rows[0].shape[0]
        if self.n_samples == "all":
            return np.tile(perms, (r, 1)), np.repeat(np.arange(r), perms.shape[0])
        rng = check_random_state(self.random_state)
        rng.random_sample((int(self.n_samples), perms.shape[1]))  # the permutations' draws
        n_draw = int(self.n_samples)
        idx = np.tile(rng.permutation(r), -(-n_draw // r))[:n_draw]
        return perms, (np.concatenate([idx, idx]) if self.antithetic else idx)

    def _attribute(self, xs, selection, batch_size):
        labels = self._labels(xs)
        groups, inverse = np.unique(np.concatenate(labels), return_inverse=True)
        m = len(groups)
        perms = self._permutations(m)
        rows_mode = _per_input(self.baselines, len(xs), "baselines")
        rows_mode = [b == "rows" if isinstance(b, str) else False for b in rows_mode]
        if any(rows_mode) and not all(rows_mode):
            raise ValueError("baselines='rows' must be used for every input or for none")
        ref_idx = None
        if all(rows_mode):
            perms, ref_idx = self._reference_pairs(perms)
        n_perm = perms.shape[0]
        rank = np.empty_like(perms)
        rank[np.arange(n_perm)[:, None], perms] = np.arange(m)[None, :]  # position of group
        # state j of a permutation: its first j groups added, the others at the baseline.
        # States 1..m-1 per permutation, then state 0 (all at the baseline) once.
        steps = np.arange(1, m)
        device = xs[0].device
        masks, offset = [], 0
        for lab in labels:
            g = inverse[offset:offset + len(lab)]
            offset += len(lab)
            ablated = rank[:, None, g] >= steps[None, :, None]  # (P, m-1, E)
            full = np.concatenate([ablated.reshape(-1, len(lab)), np.ones((1, len(lab)), bool)])
            masks.append(torch.as_tensor(full, device=device))
        preds = selection.pick(predict(self.model_, xs, batch_size))
        goal = None
        if ref_idx is None:
            bases = self._bases(xs)
        else:  # one reference row per permutation; f(row) computed once per row
            refs = [r.to(x.dtype) for r, x in zip(self.reference_rows_, xs)]
            pick = torch.as_tensor(np.repeat(ref_idx, max(m - 1, 0)), device=device)
            bases = [torch.cat([r.reshape(r.shape[0], -1)[pick], r.reshape(r.shape[0], -1)[:1]])
                     for r in refs]
            f_ref = selection.pick(predict(self.model_, refs, batch_size)).to(torch.float64)
            goal = (preds.to(torch.float64) - f_ref.mean(0)).to(xs[0].dtype)
        v = ablation_outputs(self.model_, xs, masks, bases, selection, batch_size)
        n, k = v.shape[0], v.shape[2]
        inner = v[:, :-1].reshape(n, n_perm, m - 1, k)
        if ref_idx is None:
            base = v[:, -1:][:, None].expand(n, n_perm, 1, k)
        else:
            base = f_ref[torch.as_tensor(ref_idx, device=device)][None, :, None, :].expand(
                n, n_perm, 1, k)
        top = preds.to(torch.float64)[:, None, None, :].expand(n, n_perm, 1, k)
        states = torch.cat([base, inner, top], dim=2)  # (n, P, m+1, K)
        steps_diff = states[:, :, 1:] - states[:, :, :-1]  # (n, P, m, K): gain of position j
        idx = torch.as_tensor(rank, device=device)[None, :, :, None].expand(n, -1, -1, k)
        per_group = torch.gather(steps_diff, 2, idx).mean(1)  # (n, m, K)
        nonfinite = ~torch.isfinite(per_group)
        if bool((nonfinite.any(2) & torch.isfinite(preds).all(1)[:, None]).any()):
            warnings.warn(
                "the model returned NaN/inf on perturbed copies of some samples (their own "
                "outputs are finite); the attributions of the groups those permutations "
                "touch are NaN",
                RuntimeWarning, stacklevel=4,
            )
        self.n_permutations_ = n_perm
        values, offset = [], 0
        for lab, x in zip(labels, xs):
            g = torch.as_tensor(inverse[offset:offset + len(lab)], device=device)
            offset += len(lab)
            attr = per_group[:, g]  # (n, E, K)
            values.append(attr.reshape(x.shape[0], *x.shape[1:], -1).to(x.dtype))
        return values, preds.to(xs[0].dtype), goal
