"""The gradient family: Gradient, SmoothGrad, IntegratedGradients, ExpectedGradients.

The ``*_attribution`` functions hold the maths, on any differentiable
``forward(list[Tensor]) -> list[Tensor]``; the Explainer classes and the functional API
(:mod:`sknn_explain.functional`) both call them. Semantics follow innsight 0.3.2:

* Gradient: ``df/dx`` (``times_input``: ``x * df/dx``, goal ``f(x) - f(0)``).
* SmoothGrad: mean of gradients at ``x + N(0, sd^2)`` with ``sd = noise_level * (max(X) -
  min(X))`` over the whole explained batch; ``times_input`` multiplies by the *noisy* input.
  ``nt_type="smoothgrad_sq"`` / ``"vargrad"``: mean of the squares / variance of those
  noisy attributions (captum's NoiseTunnel).
* IntegratedGradients: right Riemann sum, ``alpha = 1/n, 2/n, ..., 1`` (captum's
  ``riemann_right``), times ``x - x_ref``; goal ``f(x) - f(x_ref)``.
* ExpectedGradients: per instance ``n`` references drawn with replacement from ``X_ref`` and
  ``n`` ``alpha ~ U(0, 1)``; mean of ``grad(ref + alpha (x - ref)) * (x - ref)``; goal
  ``f(x) - mean f(X_ref)``.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch

from .._batching import (
    Forward,
    accumulate_paths,
    block_rows,
    gradient_batch_size,
    output_gradients,
    root_module,
)
from .._data import InputBatch
from .._model import predict
from .._output_selection import OutputSelection
from .._random import row_context, row_generator, row_keys
from .._validation import (
    BOOLEAN,
    NON_NEGATIVE_REAL,
    POSITIVE_INT,
    RANDOM_STATE,
    SPACE,
    StrOptions,
)
from .base import Explainer
from .embedding import EMBEDDINGS, EmbeddingSupport

__all__ = [
    "ExpectedGradients",
    "Gradient",
    "IntegratedGradients",
    "SmoothGrad",
    "expgrad_attribution",
    "gradient_attribution",
    "intgrad_attribution",
    "smoothgrad_attribution",
]

Result = tuple[list[torch.Tensor], torch.Tensor, torch.Tensor | None]


def _path_kwargs(xs: Sequence[torch.Tensor], batch_size: int, verbose: bool, desc: str) -> dict:
    return dict(
        batch_size=batch_size, dtype=xs[0].dtype, device=xs[0].device, verbose=verbose, desc=desc
    )


def _shapes(xs: Sequence[torch.Tensor]) -> list[tuple[int, ...]]:
    return [tuple(x.shape[1:]) for x in xs]


def _rows(explainer: Explainer, xs: Sequence[torch.Tensor], selection: OutputSelection,
          batch_size: int) -> int:
    """The automatic ``batch_size`` for the gradients of ``explainer.model_`` at ``xs``
    (:func:`~sknn_explain._batching.gradient_batch_size`); a user-given one is kept."""
    if explainer.batch_size is not None:
        return batch_size
    return min(batch_size, gradient_batch_size(explainer.model_, xs, sum(selection.sizes)))


def _predict_selected(
    forward: Forward, xs: Sequence[torch.Tensor], selection: OutputSelection, batch_size: int
) -> torch.Tensor:
    """The selected outputs at ``xs``, ``(n, K_total)``, written chunk by chunk into one
    tensor (no concatenation of every output of every chunk followed by a second copy)."""
    n = xs[0].shape[0]
    out = None
    for start in range(0, n, batch_size):  # one chunk per ``predict`` call
        picked = selection.pick(predict(forward, [x[start : start + batch_size] for x in xs],
                                        batch_size))
        if out is None:
            out = picked.new_empty((n, picked.shape[1]))
        out[start : start + picked.shape[0]] = picked
    return out


def _state_token(model: object) -> tuple:
    """Identity, storage and in-place version of every tensor of the module behind
    ``model`` (the graph or the private copy): changes when any of them is replaced or
    edited in place."""
    root = root_module(model)
    if root is None:
        return ()
    return tuple((id(t), t.data_ptr(), t._version)
                 for t in (*root.parameters(), *root.buffers()))


def _cached_outputs(explainer: object, attr: str, rows: Sequence[torch.Tensor],
                    reference: object) -> list[torch.Tensor]:
    """Every output layer of ``explainer.model_`` at the one-row ``rows``, cached in
    ``explainer.<attr>`` per input shape, valid while ``model_`` and ``reference`` (the
    fitted object ``rows`` come from, or None for constant rows) are the same objects and
    no tensor of the model was replaced or edited in place (e.g. ``graph_`` changed by hand
    after fit)."""
    state = _state_token(explainer.model_)
    cache = explainer.__dict__.get(attr)
    if (cache is None or cache[0] is not explainer.model_ or cache[1] is not reference
            or cache[3] != state):
        cache = (explainer.model_, reference, {}, state)
        explainer.__dict__[attr] = cache  # one store: safe when threads explain concurrently
    key = tuple((tuple(x.shape[1:]), x.dtype, x.device) for x in rows)
    outs = cache[2].get(key)
    if outs is None:
        outs = predict(explainer.model_, list(rows), 1)
        cache[2][key] = outs
    return outs


def gradient_attribution(
    forward: Forward,
    xs: Sequence[torch.Tensor],
    selection: OutputSelection,
    *,
    times_input: bool = False,
    batch_size: int = 1024,
    verbose: bool = False,
    zero_outputs: Sequence[torch.Tensor] | None = None,
) -> Result:
    """Vanilla gradient (``times_input``: Gradient x Input) of all selected outputs.

    ``zero_outputs`` (every output layer of ``forward`` on one all-zero row) may be passed
    when known; with ``times_input`` it is computed otherwise (the goal ``f(x) - f(0)``).

    One forward and one (batched) backward pass per chunk of ``batch_size`` rows, written
    straight into the result: a plain gradient needs none of the path machinery of
    :func:`~sknn_explain._batching.accumulate_paths` (one step per sample, nothing to sum).
    A (sample, output) pair whose model output is NaN / inf gets NaN values.
    """
    n = xs[0].shape[0]
    values: list[torch.Tensor] = []
    outputs = None
    starts = range(0, n, batch_size)
    if verbose:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="Gradient", unit="chunk")
    for start in starts:
        pts = [x[start : start + batch_size] for x in xs]
        grads, picked = output_gradients(forward, pts, selection)
        if outputs is None:
            values = [g.new_empty((n, *g.shape[1:]), dtype=x.dtype) for g, x in zip(grads, xs)]
            # a model may promote the inputs' dtype (float64 buffers): keep the inputs'
            outputs = picked.new_empty((n, picked.shape[1]), dtype=xs[0].dtype)
        stop = start + picked.shape[0]
        for v, g, p in zip(values, grads, pts):
            v[start:stop] = g * p.unsqueeze(-1) if times_input else g
        outputs[start:stop] = picked
    bad = ~torch.isfinite(outputs)
    if bool(bad.any()):  # no gradient answer where the model is undefined
        for v in values:
            v.masked_fill_(bad.reshape(n, *([1] * (v.ndim - 2)), bad.shape[1]), float("nan"))
    goal = None
    if times_input:
        if zero_outputs is None:
            zero_outputs = predict(forward, [torch.zeros_like(x[:1]) for x in xs], 1)
        goal = outputs - selection.pick(list(zero_outputs))
    return values, outputs, goal


_NT_REDUCE = {"smoothgrad": "mean", "smoothgrad_sq": "mean_sq", "vargrad": "var"}


def smoothgrad_attribution(
    forward: Forward,
    xs: Sequence[torch.Tensor],
    selection: OutputSelection,
    *,
    n: int = 50,
    noise_level: float = 0.1,
    times_input: bool = False,
    random_state: object = None,
    batch_size: int = 1024,
    verbose: bool = False,
    noisy: Sequence[bool] | None = None,
    noise_scale: str = "batch",
    feature_range: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
    nt_type: str = "smoothgrad",
) -> Result:
    """SmoothGrad: mean gradient over ``n`` Gaussian-perturbed copies of each sample.

    ``nt_type`` (captum's NoiseTunnel types): ``"smoothgrad"`` the mean of the per-copy
    attributions (gradient, or noisy input x gradient with ``times_input``),
    ``"smoothgrad_sq"`` the mean of their squares, ``"vargrad"`` their variance.

    ``noise_scale="batch"`` (innsight): ``sd = noise_level * (max - min)`` over the whole
    input; ``"feature"``: one ``sd`` per feature, ``noise_level`` times that feature's range
    over ``feature_range`` (per input ``(max, min)``, e.g. of the reference data) or, when
    None, over the explained data.

    ``noisy`` (per input) leaves the inputs flagged False without noise (embedding outputs).

    The noise of sample ``i`` comes from its own random stream keyed by ``random_state``
    and its global row index (see :func:`~sknn_explain._random.row_generator`), so
    it does not depend on ``batch_size`` or on how a Dask collection is chunked.
    """
    if nt_type not in _NT_REDUCE:
        raise ValueError(
            f"nt_type must be one of {sorted(_NT_REDUCE)}, got {nt_type!r}")
    noisy = [True] * len(xs) if noisy is None else list(noisy)
    ctx = row_context()
    sds = []
    for i, (x, flag) in enumerate(zip(xs, noisy)):
        if not flag:
            sds.append(0.0)
            continue
        if noise_scale == "feature" and feature_range is not None and i < len(feature_range):
            hi, lo = feature_range[i]  # the reference data's range: batch-independent
        elif ctx.data_range is not None and i < len(ctx.data_range):
            hi, lo = ctx.data_range[i]  # a Dask block: per-feature range of the whole data
        else:
            hi, lo = x.amax(dim=0), x.amin(dim=0)
        hi = torch.as_tensor(np.asarray(hi), dtype=x.dtype, device=x.device)
        lo = torch.as_tensor(np.asarray(lo), dtype=x.dtype, device=x.device)
        if noise_scale == "feature":
            sds.append(float(noise_level) * (hi - lo))
        else:
            sds.append(float(noise_level) * float(hi.max() - lo.min()))
    keys = row_keys(random_state, len(xs))

    def rows(si, st):
        si_np, st_np = si.cpu().numpy(), st.cpu().numpy()
        pts = []
        for x, sd, key in zip(xs, sds, keys):
            noise = np.empty((len(si_np), *x.shape[1:]))
            for s in np.unique(si_np):
                here = np.flatnonzero(si_np == s)
                gen = row_generator(key, ctx.offset + int(s))
                steps = st_np[here]
                if (len(here) == n and here[-1] - here[0] == n - 1
                        and (steps == np.arange(n)).all()):  # every step, in order
                    gen.standard_normal(out=noise[here[0]:here[0] + n])  # the same draws
                else:
                    noise[here] = gen.standard_normal((n, *x.shape[1:]))[steps]
            pts.append(x[si] + sd * torch.as_tensor(noise, dtype=x.dtype, device=x.device))
        return pts, (pts if times_input else [None] * len(pts))

    values, _ = accumulate_paths(
        forward, xs[0].shape[0], _shapes(xs), selection, rows, n_steps=n,
        reduce=_NT_REDUCE[nt_type], **_path_kwargs(xs, batch_size, verbose, "SmoothGrad"),
    )
    return values, _predict_selected(forward, xs, selection, batch_size), None


def intgrad_attribution(
    forward: Forward,
    xs: Sequence[torch.Tensor],
    selection: OutputSelection,
    *,
    x_ref: Sequence[torch.Tensor] | None = None,
    n: int = 50,
    times_input: bool = True,
    batch_size: int = 1024,
    verbose: bool = False,
    held: Sequence[bool] | None = None,
    ref_outputs: Callable[[Sequence[torch.Tensor]], list[torch.Tensor]] | None = None,
) -> Result:
    """Integrated gradients, right Riemann sum with ``n`` steps from ``x_ref`` (default 0).

    ``held`` (per input) keeps the inputs flagged True at ``x`` along the whole path, in the
    reference too (the integer ids of an embedding model, whose embedding outputs are the
    interpolated inputs: a padding mask computed from the ids stays the sample's own); their
    attribution is zero and the goal is ``f(x) - f(x_ref with the held inputs at x)``.

    The last point of every path is the sample itself (exactly: not ``x_ref + 1 * (x -
    x_ref)``), so the predictions come from that step, with no forward pass of their own.
    ``ref_outputs(refs)`` (every output layer of ``forward`` at the one-row references,
    e.g. a cached value) is used for the goal when nothing is held; default: a forward pass.
    """
    refs = [torch.zeros_like(x[:1]) for x in xs] if x_ref is None else list(x_ref)
    held = [False] * len(xs) if held is None else list(held)
    alphas = torch.arange(1, n + 1, dtype=xs[0].dtype, device=xs[0].device) / n

    def rows(si, st):
        # x - x_ref per chunk: no second (n, *shape) copy of the data
        pts, mults = [], []
        for x, r, h in zip(xs, refs, held):
            if h:
                pts.append(x[si])
                mults.append(torch.zeros_like(x[si]) if times_input else None)
                continue
            xi = x[si]
            d = xi - r
            a = alphas[st].reshape(-1, *([1] * (d.ndim - 1)))
            point = r + a * d
            last = st == n - 1  # the path ends at the sample itself, exactly
            point[last] = xi[last]
            pts.append(point)
            mults.append(d if times_input else None)
        return pts, mults

    values, preds = accumulate_paths(
        forward, xs[0].shape[0], _shapes(xs), selection, rows, n_steps=n, keep_outputs=True,
        **_path_kwargs(xs, batch_size, verbose, "IntegratedGradients"),
    )
    if any(held):
        values = [torch.zeros_like(v) if h else v for v, h in zip(values, held)]
    preds = preds.to(xs[0].dtype)
    goal = None
    if times_input and any(held):  # the reference output per row: its held inputs are x's
        n_rows = xs[0].shape[0]
        ref_rows = [x if h else r.expand(n_rows, *r.shape[1:]) for x, r, h in zip(xs, refs, held)]
        goal = preds - selection.pick(predict(forward, ref_rows, batch_size))
    elif times_input:
        outs = predict(forward, refs, 1) if ref_outputs is None else ref_outputs(refs)
        goal = preds - selection.pick(list(outs))
    return values, preds, goal


def expgrad_attribution(
    forward: Forward,
    xs: Sequence[torch.Tensor],
    selection: OutputSelection,
    *,
    data_ref: Sequence[torch.Tensor],
    n: int = 50,
    random_state: object = None,
    ref_output_mean: Sequence[torch.Tensor] | None = None,
    batch_size: int = 1024,
    verbose: bool = False,
    held: Sequence[bool] | None = None,
) -> Result:
    """Expected gradients (GradientSHAP without noise) against the distribution ``data_ref``.

    ``ref_output_mean`` (per output layer, mean model output over ``data_ref``) may be
    precomputed; otherwise it is computed here.

    ``held`` (per input) keeps the inputs flagged True at ``x`` along the path and in every
    drawn reference (the ids of an embedding model, see :func:`intgrad_attribution`); their
    attribution is zero. Where the model's output depends on the held inputs other than
    through what is interpolated (a padding mask computed from ids), the goal is
    ``f(x) - mean_j f(x_ref_j with the held inputs at x)``, computed over every reference row.
    """
    held = [False] * len(xs) if held is None else list(held)
    n_ref = data_ref[0].shape[0]
    (key,) = row_keys(random_state, 1)
    offset = row_context().offset  # global index of xs[0] (Dask blocks)
    device, dtype = xs[0].device, xs[0].dtype

    def rows(si, st):
        # per sample, its own stream keyed by the global row: chunking-independent draws
        si_np, st_np = si.cpu().numpy(), st.cpu().numpy()
        j_np, a_np = np.empty(len(si_np), np.int64), np.empty(len(si_np))
        for s in np.unique(si_np):
            here = si_np == s
            gen = row_generator(key, offset + int(s))
            j_np[here] = gen.integers(0, n_ref, size=n)[st_np[here]]
            a_np[here] = gen.random(n)[st_np[here]]
        j = torch.as_tensor(j_np, device=device)
        a = torch.as_tensor(a_np, dtype=dtype, device=device)
        pts, mults = [], []
        for x, d, h in zip(xs, data_ref, held):
            if h:
                pts.append(x[si])
                mults.append(torch.zeros_like(x[si]))
                continue
            ref = d[j]
            diff = x[si] - ref
            pts.append(ref + a.reshape(-1, *([1] * (diff.ndim - 1))) * diff)
            mults.append(diff)
        return pts, mults

    values, _ = accumulate_paths(
        forward, xs[0].shape[0], _shapes(xs), selection, rows, n_steps=n,
        **_path_kwargs(xs, batch_size, verbose, "ExpectedGradients"),
    )
    if any(held):
        values = [torch.zeros_like(v) if h else v for v, h in zip(values, held)]
    preds = _predict_selected(forward, xs, selection, batch_size)
    held_means = _held_reference_means(forward, xs, data_ref, held, batch_size)
    if held_means is not None:
        return values, preds, preds - selection.pick(held_means)
    if ref_output_mean is None:
        ref_output_mean = [o.mean(0) for o in predict(forward, data_ref, batch_size)]
    goal = preds - selection.pick([m.reshape(1, -1) for m in ref_output_mean])
    return values, preds, goal


#: reference rows on which :func:`_held_reference_means` checks whether held inputs matter
_HELD_PROBES = 4


def _held_reference_means(forward: Forward, xs: Sequence[torch.Tensor],
                          data_ref: Sequence[torch.Tensor], held: Sequence[bool],
                          batch_size: int) -> list[torch.Tensor] | None:
    """Per row, the mean output over the reference rows with the held inputs at ``x``; None
    when nothing is held or the output does not depend on the held inputs.

    Dependence is checked on up to :data:`_HELD_PROBES` reference rows per explained row
    (``f(ref_j with held inputs at x)`` against ``f(ref_j)``, exact comparison); when any
    differs, the means run over every reference row (one forward pass of the batch each).
    """
    if not any(held):
        return None
    n, n_ref = xs[0].shape[0], data_ref[0].shape[0]

    def outputs(j: int, with_x: bool) -> list[torch.Tensor]:
        rows = [x if (h and with_x) else d[j:j + 1].expand(n, *d.shape[1:])
                for x, d, h in zip(xs, data_ref, held)]
        return predict(forward, rows, batch_size)

    if all(torch.equal(a, b) for j in range(min(_HELD_PROBES, n_ref))
           for a, b in zip(outputs(j, True), outputs(j, False))):
        return None
    total = None
    for j in range(n_ref):
        out = outputs(j, True)
        total = out if total is None else [t + o for t, o in zip(total, out)]
    return [t / n_ref for t in total]


_COMMON_DOC = """
    ignore_last_act : bool, default=True
        Explain the output before the model's last activation (softmax / sigmoid).
    channels_first : bool, default=True
        Image / signal layout of the data: ``(n, C, ...)`` (True) or ``(n, ..., C)``.
    dtype : {"float", "double"}, default="float"
        Precision of the computation (on a private copy of the model).
    device : {"cpu", "cuda", "cuda:<index>", "auto"} or torch.device, default="cpu"
        Where to compute.
    batch_size : int, optional
        Model rows per pass (samples x steps); None picks one from the input width.
    verbose : bool, default=False
        Show a progress bar over chunks.
    space : {"network", "raw"}, default="network"
        For a pipeline of scalers in front of a network: explain the network's own inputs
        (per original column) or the raw columns with the scalers folded in.
"""

#: the ``embeddings`` parameter of the gradient explainers (after ``_COMMON_DOC``)
_EMBEDDINGS_DOC = """embeddings : "auto", list of str or None, default="auto"
        Categorical embeddings of torch / skorch models: with "auto", every ``nn.Embedding``
        fed by integer category codes of the input is explained through its output, and its
        attribution, summed over the embedding dimension, is reported for the column of
        codes that feeds it (see "Categorical embeddings" in the user guide's pipelines
        page). A list names the embedding modules (paths as in ``named_modules``); None
        explains the model as is.
"""


class _RowBlocks:
    """Explain a large ``X`` block by block (:meth:`Explainer._attribute_blocks`): the rows
    of every sample are independent, and random draws are keyed by the global row."""

    def _block_rows(self, shapes, n_outputs: int, batch_size: int) -> int:
        return block_rows(shapes, n_outputs, batch_size)


class Gradient(_RowBlocks, EmbeddingSupport, Explainer):
    __doc__ = f"""Vanilla gradient (saliency) and Gradient x Input.

    Parameters
    ----------
    times_input : bool, default=False
        Multiply the gradient by the input (Gradient x Input); its decomposition goal is
        ``f(x) - f(0)``, met exactly by linear models and bias-free ReLU networks.
    {_COMMON_DOC}    {_EMBEDDINGS_DOC}
    Examples
    --------
    >>> import torch
    >>> from sknn_explain import Gradient
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> X = torch.randn(10, 4)
    >>> Gradient(times_input=True).fit(net).explain(X).values.shape
    (10, 4, 3)
    """

    method_name = "Gradient"
    _goal_description = "f(x) - f(0)"
    _parameter_constraints = {
        **Explainer._parameter_constraints, "times_input": BOOLEAN, "embeddings": EMBEDDINGS,
        "space": SPACE,
    }

    def __init__(
        self, times_input=False, *, ignore_last_act=True, channels_first=True, dtype="float",
        device="cpu", batch_size=None, verbose=False, embeddings="auto", space="network",
    ):
        super().__init__(
            ignore_last_act=ignore_last_act, channels_first=channels_first, dtype=dtype,
            device=device, batch_size=batch_size, verbose=verbose,
        )
        self.times_input = times_input
        self.embeddings = embeddings
        self.space = space

    def _attribute(self, xs, selection, batch_size):
        return self._attribute_with_embeddings(xs, lambda ext: gradient_attribution(
            self.model_, ext, selection, times_input=bool(self.times_input),
            batch_size=_rows(self, ext, selection, batch_size), verbose=self.verbose,
            zero_outputs=self._zero_outputs(ext) if self.times_input else None,
        ))

    def _zero_outputs(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """The model's outputs on one all-zero row shaped like ``xs`` (Gradient x Input's
        reference ``f(0)``), cached per input shape with the fitted model (a refit starts a
        new cache): a one-row forward pass is a fixed cost of every call otherwise."""
        return _cached_outputs(self, "_zero_output_cache_",
                               [torch.zeros_like(x[:1]) for x in xs], None)


class SmoothGrad(_RowBlocks, EmbeddingSupport, Explainer):
    __doc__ = f"""SmoothGrad (Smilkov et al., 2017): gradients averaged over noisy copies.

    Parameters
    ----------
    n : int, default=50
        Noisy copies per sample (gradients evaluated per sample).
        ``n`` is innsight's name: points per sample on the gradient path / noise. The
        perturbation and model-agnostic explainers count their model evaluations per
        sample with ``n_samples`` (captum's and shap's name).
    noise_level : float, default=0.1
        Noise standard deviation relative to the data range (see ``noise_scale``).
    times_input : bool, default=False
        Multiply each noisy gradient by its noisy input.
    random_state : int, RandomState, Generator or None
        Seed of the noise; an int gives identical attributions on every call.
    noise_scale : {{"auto", "feature", "batch"}}, default="auto"
        ``"batch"`` (innsight's convention): one ``sd = noise_level * (max(X) - min(X))``
        over the whole explained input, right for images and signals whose values share a
        scale. ``"feature"``: one ``sd`` per feature, ``noise_level`` times that feature's
        range over ``X_ref`` (or over the explained ``X`` without ``X_ref``), right for
        tabular columns on different scales. ``"auto"``: ``"feature"`` for tabular inputs,
        ``"batch"`` for signals and images.
    nt_type : {{"smoothgrad", "smoothgrad_sq", "vargrad"}}, default="smoothgrad"
        How the ``n`` noisy attributions (gradients, or noisy input x gradient with
        ``times_input``) are combined, as captum's ``NoiseTunnel``: their mean, the mean
        of their squares (``smoothgrad_sq``, Hooker et al., 2019) or their variance
        (``vargrad``, Adebayo et al., 2018; ``mean(a^2) - mean(a)^2``). The two variants
        are non-negative magnitudes: they do not decompose the output, and their units
        are squared.
    {_COMMON_DOC}    {_EMBEDDINGS_DOC}
    Examples
    --------
    >>> import torch
    >>> from sknn_explain import SmoothGrad
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    >>> result = SmoothGrad(n=20, random_state=0).fit(net).explain(torch.randn(5, 4))
    >>> result.values.shape
    (5, 4, 2)
    """

    method_name = "SmoothGrad"
    _uses_data_range = True  # sd = noise_level * (max - min) of the explained data
    _parameter_constraints = {
        **Explainer._parameter_constraints,
        "n": POSITIVE_INT,
        "noise_level": NON_NEGATIVE_REAL,
        "times_input": BOOLEAN,
        "random_state": RANDOM_STATE,
        "noise_scale": [StrOptions({"auto", "feature", "batch"})],
        "nt_type": [StrOptions(set(_NT_REDUCE))],
        "embeddings": EMBEDDINGS, "space": SPACE,
    }

    def __init__(
        self, n=50, noise_level=0.1, times_input=False, random_state=None, *,
        noise_scale="auto", nt_type="smoothgrad", ignore_last_act=True, channels_first=True,
        dtype="float", device="cpu", batch_size=None, verbose=False, embeddings="auto",
        space="network",
    ):
        super().__init__(
            ignore_last_act=ignore_last_act, channels_first=channels_first, dtype=dtype,
            device=device, batch_size=batch_size, verbose=verbose,
        )
        self.n = n
        self.noise_level = noise_level
        self.times_input = times_input
        self.random_state = random_state
        self.noise_scale = noise_scale
        self.nt_type = nt_type
        self.embeddings = embeddings
        self.space = space

    def _fit_reference(self, ref: InputBatch | None) -> None:
        super()._fit_reference(ref)
        # per-feature (max, min) of X_ref: the "feature" noise scale, batch-independent
        self.feature_range_ = None if ref is None else [
            (np.nanmax(a, axis=0), np.nanmin(a, axis=0)) for a in ref.arrays]

    def _noise_scale(self, xs) -> str:
        if self.noise_scale != "auto":
            return self.noise_scale
        return "feature" if all(x.ndim == 2 for x in xs) else "batch"

    def _attribute(self, xs, selection, batch_size):
        return self._attribute_with_embeddings(xs, lambda ext: smoothgrad_attribution(
            self.model_, ext, selection, n=int(self.n), noise_level=float(self.noise_level),
            times_input=bool(self.times_input), random_state=self.random_state,
            batch_size=_rows(self, ext, selection, batch_size), verbose=self.verbose,
            noisy=self._noisy_inputs(xs), noise_scale=self._noise_scale(xs),
            feature_range=getattr(self, "feature_range_", None), nt_type=self.nt_type,
        ))


class IntegratedGradients(_RowBlocks, EmbeddingSupport, Explainer):
    __doc__ = f"""Integrated Gradients (Sundararajan et al., 2017), right Riemann sum.

    The baseline comes from ``fit(model, X_ref)``: no ``X_ref`` -> zeros, one row -> that
    row, several rows -> their mean. With ``times_input`` the attributions of a sample sum
    to ``f(x) - f(x_ref)`` up to the discretisation error, which shrinks as ``n`` grows.

    Parameters
    ----------
    n : int, default=50
        Riemann steps, ``alpha = 1/n, ..., 1`` (gradients evaluated per sample).
        ``n`` is innsight's name: points per sample on the gradient path / noise. The
        perturbation and model-agnostic explainers count their model evaluations per
        sample with ``n_samples`` (captum's and shap's name).
    times_input : bool, default=True
        Multiply the averaged gradient by ``x - x_ref``.
    {_COMMON_DOC}    {_EMBEDDINGS_DOC}
    Examples
    --------
    >>> import torch
    >>> from sknn_explain import IntegratedGradients
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    >>> X = torch.randn(5, 4)
    >>> res = IntegratedGradients(n=200).fit(net).explain(X)
    >>> bool(abs(res.decomp_sum - res.decomp_goal).max() < 1e-2)
    True
    """

    method_name = "IntegratedGradients"
    _goal_description = "f(x) - f(x_ref)"
    _parameter_constraints = {
        **Explainer._parameter_constraints, "n": POSITIVE_INT, "times_input": BOOLEAN,
        "embeddings": EMBEDDINGS, "space": SPACE,
    }

    def __init__(
        self, n=50, times_input=True, *, ignore_last_act=True, channels_first=True,
        dtype="float", device="cpu", batch_size=None, verbose=False, embeddings="auto",
        space="network",
    ):
        super().__init__(
            ignore_last_act=ignore_last_act, channels_first=channels_first, dtype=dtype,
            device=device, batch_size=batch_size, verbose=verbose,
        )
        self.n = n
        self.times_input = times_input
        self.embeddings = embeddings
        self.space = space

    def _fit_reference(self, ref: InputBatch | None) -> None:
        if ref is None:
            self.x_ref_ = None
        else:
            self.x_ref_ = [  # embedding outputs: their mean over X_ref
                t.mean(0, keepdim=True)
                for t in self._with_embeddings(ref.to_tensors(self.dtype_, self.device_))
            ]

    def _attribute(self, xs, selection, batch_size):
        return self._attribute_with_embeddings(xs, lambda ext: intgrad_attribution(
            self.model_, ext, selection, x_ref=self.x_ref_, n=int(self.n),
            times_input=bool(self.times_input), verbose=self.verbose,
            batch_size=_rows(self, ext, selection, batch_size), held=self._held_inputs(xs),
            ref_outputs=self._reference_outputs,
        ))

    def _reference_outputs(self, refs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """The model's outputs at the one-row reference ``refs`` (the goal's ``f(x_ref)``),
        cached with the fitted model and reference per input shape (a refit starts anew):
        a one-row forward pass is a fixed cost of every call otherwise."""
        return _cached_outputs(self, "_reference_output_cache_", refs, self.x_ref_)


class ExpectedGradients(_RowBlocks, EmbeddingSupport, Explainer):
    __doc__ = f"""Expected Gradients (Erion et al., 2021) against a reference distribution.

    ``fit(model, X_ref)`` requires ``X_ref``: for every sample, ``n`` references are drawn
    from it with replacement together with ``n`` values ``alpha ~ U(0, 1)``. Attributions sum
    to ``f(x) - mean f(X_ref)`` in expectation.

    Parameters
    ----------
    n : int, default=50
        Reference/alpha draws per sample (gradients evaluated per sample).
        ``n`` is innsight's name: points per sample on the gradient path / noise. The
        perturbation and model-agnostic explainers count their model evaluations per
        sample with ``n_samples`` (captum's and shap's name).
    random_state : int, RandomState, Generator or None
        Seed of the draws; an int gives identical attributions on every call.
    {_COMMON_DOC}    {_EMBEDDINGS_DOC}
    Examples
    --------
    >>> import torch
    >>> from sknn_explain import ExpectedGradients
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    >>> eg = ExpectedGradients(n=30, random_state=0).fit(net, torch.randn(50, 4))
    >>> eg.explain(torch.randn(3, 4)).values.shape
    (3, 4, 2)
    """

    method_name = "ExpectedGradients"
    _requires_reference = True
    _goal_description = "f(x) - mean f(X_ref)"
    _parameter_constraints = {
        **Explainer._parameter_constraints, "n": POSITIVE_INT, "random_state": RANDOM_STATE,
        "embeddings": EMBEDDINGS, "space": SPACE,
    }

    def __init__(
        self, n=50, random_state=None, *, ignore_last_act=True, channels_first=True,
        dtype="float", device="cpu", batch_size=None, verbose=False, embeddings="auto",
        space="network",
    ):
        super().__init__(
            ignore_last_act=ignore_last_act, channels_first=channels_first, dtype=dtype,
            device=device, batch_size=batch_size, verbose=verbose,
        )
        self.n = n
        self.random_state = random_state
        self.embeddings = embeddings
        self.space = space

    def _fit_reference(self, ref: InputBatch) -> None:
        self.data_ref_ = self._with_embeddings(ref.to_tensors(self.dtype_, self.device_))
        outs = predict(self.model_, self.data_ref_, self._batch_size(ref.shapes))
        self.ref_output_mean_ = [o.mean(0) for o in outs]

    def _attribute(self, xs, selection, batch_size):
        return self._attribute_with_embeddings(xs, lambda ext: expgrad_attribution(
            self.model_, ext, selection, data_ref=self.data_ref_, n=int(self.n),
            random_state=self.random_state, ref_output_mean=self.ref_output_mean_,
            batch_size=_rows(self, ext, selection, batch_size), verbose=self.verbose,
            held=self._held_inputs(xs),
        ))


def _deprecated_alias(cls: type, old_name: str) -> type:
    """A subclass of ``cls`` named ``old_name`` whose instantiation warns that it is renamed.

    It keeps ``cls``'s signature (``get_params``, ``clone``, ``repr``) and pickles by name.
    """

    def __init__(self, *args, **kwargs):
        warnings.warn(
            f"{old_name} (innsight's name) is deprecated and will be removed in 0.3: use "
            f"{cls.__name__}, which it is an alias of",
            DeprecationWarning, stacklevel=2,
        )
        cls.__init__(self, *args, **kwargs)

    __init__.__signature__ = inspect.signature(cls.__init__)
    params = ", ".join(p for p in inspect.signature(cls.__init__).parameters if p != "self")
    doc = (f"Deprecated alias of :class:`{cls.__name__}` (innsight's name).\n\n"
           f"    .. deprecated:: 0.2.0\n       Use :class:`{cls.__name__}`; ``{old_name}`` "
           "will be removed in 0.3.\n\n"
           f"    Parameters\n    ----------\n    {params}\n        As :class:`{cls.__name__}`."
           f"\n\n    Examples\n    --------\n    >>> import warnings\n"
           f"    >>> from sknn_explain import {cls.__name__}, {old_name}\n"
           "    >>> with warnings.catch_warnings(record=True) as caught:\n"
           "    ...     warnings.simplefilter('always')\n"
           f"    ...     explainer = {old_name}()\n"
           f"    >>> isinstance(explainer, {cls.__name__}), caught[0].category.__name__\n"
           "    (True, 'DeprecationWarning')\n")
    return type(old_name, (cls,), {"__init__": __init__, "__doc__": doc,
                                   "__module__": __name__, "__qualname__": old_name})


#: innsight's names, deprecated: they warn when instantiated
IntegratedGradient = _deprecated_alias(IntegratedGradients, "IntegratedGradient")
ExpectedGradient = _deprecated_alias(ExpectedGradients, "ExpectedGradient")
