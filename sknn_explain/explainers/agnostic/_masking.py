"""The model on masked inputs: every sample under every coalition, in bounded chunks.

:func:`masked_outputs` evaluates the model with the switched-off features replaced by
reference values; :func:`spread` maps feature values back onto the input elements.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch

from ..._model import call_forward, nonfinite_message
from ..._output_selection import OutputSelection
from ..._segmentation import FeatureMap

__all__ = ["masked_outputs", "nonfinite_perturbations", "spread"]

#: element masks (coalitions x input elements) are gathered once up front up to this many
#: values (32 MiB as bool, 256 MiB as float64 blend weights); larger ones, e.g. thousands of
#: coalitions over image pixels, are gathered per chunk from the feature labels
_MAX_PREGATHERED_MASK = 2**25


def masked_outputs(
    forward,
    xs: Sequence[torch.Tensor],
    fmap: FeatureMap,
    z: np.ndarray,
    bases: Sequence[torch.Tensor],
    selection: OutputSelection,
    batch_size: int,
    *,
    base_index: np.ndarray | None = None,
    verbose: bool = False,
    desc: str = "",
) -> torch.Tensor:
    """Mean selected model output of every sample under every coalition.

    For sample ``a`` and coalition ``s`` the model sees ``where(z[s], x_a, b)`` for every
    base row ``b`` (``base_index is None``: all rows of ``bases``, averaged) or for the single
    row ``bases[base_index[s]]``. Rows are built and evaluated ``batch_size`` at a time: every
    model call gets at most ``batch_size`` rows, also when there are more base rows than that.

    Returns
    -------
    Tensor, float64, ``(n, S, K_total)``

    Examples
    --------
    >>> import numpy as np, torch
    >>> from sknn_explain._output_selection import resolve_outputs
    >>> from sknn_explain._segmentation import build_feature_map
    >>> forward = lambda xs: [xs[0].sum(1, keepdim=True)]
    >>> x, background = torch.ones(1, 3), torch.zeros(2, 3)
    >>> z = np.array([[True, False, False], [True, True, False]])
    >>> sel = resolve_outputs(None, None, [["Y1"]])
    >>> fmap = build_feature_map([(3,)])
    >>> masked_outputs(forward, [x], fmap, z, [background], sel, 64)[0, :, 0]
    tensor([1., 2.], dtype=torch.float64)
    """
    n, s_total = xs[0].shape[0], z.shape[0]
    device, dtype = xs[0].device, xs[0].dtype
    flat_x = [x.reshape(n, -1) for x in xs]
    flat_b = [b.reshape(b.shape[0], -1) for b in bases]
    # lerp(off, on, w) with w in {0, 1} returns exactly `off` or `on` and runs several times
    # faster than where(); it needs on - off to be finite, so huge values use where()
    largest = max(float(t.abs().max()) for t in (*flat_x, *flat_b))
    use_lerp = dtype.is_floating_point and largest < torch.finfo(dtype).max / 4
    zt = torch.as_tensor(z, device=device).to(dtype if use_lerp else torch.bool)

    def blend(mask: torch.Tensor, on: torch.Tensor, off: torch.Tensor) -> torch.Tensor:
        return torch.lerp(off, on, mask) if use_lerp else torch.where(mask, on, off)

    elem_masks = []  # per input: (S, P) element masks, or the labels to gather them per chunk
    for lab in fmap.flat_labels():
        if len(lab) == z.shape[1] and (lab == np.arange(len(lab))).all():
            elem_masks.append(zt)
        elif s_total * len(lab) <= _MAX_PREGATHERED_MASK:
            elem_masks.append(zt[:, torch.as_tensor(lab, device=device)])
        else:
            elem_masks.append(torch.as_tensor(lab, device=device))
    shapes = [tuple(x.shape[1:]) for x in xs]
    reps = flat_b[0].shape[0] if base_index is None else 1
    bidx = None if base_index is None else torch.as_tensor(base_index, device=device)
    cols = [torch.as_tensor(idx, device=device) for idx in selection.indices]

    first = np.asarray(selection.indices[0])
    in_order = bool((first == np.arange(len(first))).all())  # 0, 1, ..., K - 1

    def pick(outs: list[torch.Tensor]) -> torch.Tensor:
        if len(cols) == 1:
            o = outs[selection.layers[0]]
            # every node of the layer in order: the layer itself, no gather
            return o if in_order and o.shape[1] == len(first) else o[:, cols[0]]
        return torch.cat([outs[layer][:, c] for layer, c in zip(selection.layers, cols)], 1)

    def masks_of(em: torch.Tensor, s: torch.Tensor | slice) -> torch.Tensor:
        return em[s] if em.dtype == zt.dtype else zt[s][:, em]

    if reps <= batch_size:  # whole background per pair, several pairs per call
        per_chunk, bg_slices = batch_size // reps, [slice(None)]
    else:  # one pair per call, the background in slices of batch_size rows
        per_chunk = 1
        bg_slices = [slice(b0, min(reps, b0 + batch_size)) for b0 in range(0, reps, batch_size)]
    total = n * s_total
    out = None
    starts = range(0, total, per_chunk)
    if verbose:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=desc, unit="chunk")
    with torch.inference_mode():
        for start in starts:
            stop = min(total, start + per_chunk)
            a0 = start // s_total
            one_sample = (stop - 1) // s_total == a0
            if one_sample:  # slices and broadcasting, no gathers
                s = slice(start - a0 * s_total, stop - a0 * s_total)
            else:
                pair = torch.arange(start, stop, device=device)
                a = torch.div(pair, s_total, rounding_mode="floor")
                s = pair - a * s_total
            mean = None
            for bg in bg_slices:
                pts = []
                for x, em, b, shape in zip(flat_x, elem_masks, flat_b, shapes):
                    mask = masks_of(em, s)
                    if bidx is None:
                        on = x[a0] if one_sample else x[a][:, None, :]
                        rows = blend(mask[:, None, :], on, b[bg][None])
                    else:
                        rows = blend(mask, x[a0] if one_sample else x[a], b[bidx[s]])
                    pts.append(rows.reshape(-1, *shape))
                picked = pick(call_forward(forward, pts))
                if reps == 1:
                    part = picked.to(torch.float64)
                elif len(bg_slices) == 1:
                    part = picked.reshape(stop - start, reps, -1).mean(1, dtype=torch.float64)
                else:
                    part = picked.reshape(stop - start, -1, picked.shape[1]).sum(
                        1, dtype=torch.float64)
                mean = part if mean is None else mean + part
            if len(bg_slices) > 1:
                mean = mean / reps
            if out is None:
                out = torch.empty((total, mean.shape[1]), dtype=torch.float64, device=device)
            out[start:stop] = mean
    return out.reshape(n, s_total, -1)


def nonfinite_perturbations(
    v: np.ndarray, fx: np.ndarray, selection: OutputSelection
) -> np.ndarray:
    """``(n, K)`` mask of samples / outputs with a NaN / inf model output on any perturbation.

    Warns (``RuntimeWarning``) about those whose own output ``fx`` is finite; those with a
    non-finite ``fx`` are reported by ``explain`` for the predictions.
    """
    bad = ~np.isfinite(v).all(1) | ~np.isfinite(fx)
    hidden = bad & np.isfinite(fx)
    if hidden.any():
        names = [name for layer in selection.names for name in layer]
        warnings.warn(
            nonfinite_message(torch.as_tensor(hidden), names, "of X on perturbed copies")
            + " (their own outputs are finite); their attributions are set to NaN",
            RuntimeWarning, stacklevel=4,
        )
    return bad


def spread(phi: np.ndarray, fmap: FeatureMap, shapes, like: torch.Tensor) -> list[torch.Tensor]:
    """``(n, M, K)`` feature values -> per input ``(n, *shape, K)``, split evenly per segment."""
    per_element = phi / fmap.sizes[None, :, None]
    out = []
    for lab, shape in zip(fmap.flat_labels(), shapes):
        v = per_element[:, lab, :].reshape(phi.shape[0], *shape, phi.shape[2])
        out.append(torch.as_tensor(v, dtype=like.dtype, device=like.device))
    return out
