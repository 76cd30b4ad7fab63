"""Chunked evaluation: batch sizes, all-outputs gradients, path sums in bounded memory.

* :func:`auto_batch_size` picks rows per model call from the input width (every method);
  :func:`forward_batch_size` caps it for forward-only calls on CPU (perturbation and
  model-agnostic methods), :func:`gradient_batch_size` for gradient passes.
* :func:`output_gradients` computes the gradients of *all* selected output nodes in one
  forward pass and one batched backward pass (``is_grads_batched``, i.e. ``torch.func.vmap``
  over one-hot ``grad_outputs``) or, for images on CPU, one backward pass per output
  (:func:`gradient_strategy`).
* :func:`block_rows` bounds the rows an explainer of the gradient family explains at once.
* :func:`accumulate_paths` runs any "average of gradients at points" method (Gradient,
  SmoothGrad, IntegratedGradients, ExpectedGradients) over ``n_samples x n_steps`` rows in
  chunks of ``batch_size`` rows, so memory stays bounded whatever ``n`` is.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import torch

from ._model import call_forward, nonfinite_message
from ._output_selection import OutputSelection
from ._random import row_context
from .layers.base import to_channels_last

__all__ = ["BLOCK_VALUES", "CPU_FORWARD_SET", "CPU_PASS_SET", "CPU_WORKING_SET", "STRATEGIES",
           "Forward", "RowMaker", "accumulate_paths", "auto_batch_size", "block_rows",
           "forward_batch_size", "gradient_batch_size", "gradient_strategy",
           "output_gradients", "root_module"]

Forward = Callable[[Sequence[torch.Tensor]], list[torch.Tensor]]
#: (sample_idx, step_idx) -> (points per input, multipliers per input or None)
RowMaker = Callable[
    [torch.Tensor, torch.Tensor], tuple[list[torch.Tensor], list[torch.Tensor | None]]
]

#: on CPU, values (rows x input width x outputs) per batched backward pass: cache-sized
#: chunks measured 2-3x faster than one big chunk for CNNs (benchmarks/bench_gradient.py)
CPU_WORKING_SET = 2**20
#: on CPU, input values (rows x input width) per forward-only model call of the perturbation
#: and model-agnostic methods: 2^17-2^19 were the fastest on every benchmark model (the
#: 3x32x32 CNN and the ResNet 2.5-3x faster than chunks of 2^22 values, MLPs and the signal
#: CNN the same within noise); see docs/benchmarks.md
CPU_FORWARD_SET = 2**18
#: on CPU, input values (rows x width) per backward pass when each output gets its own pass
#: (images, signals): 2^17 ran fastest among 2^14-2^20 on the benchmark CNNs (3x64x64 CNN,
#: 100 outputs: 0.6x the time of one image per pass; 3x32x32 CNN, SmoothGrad over 512
#: points: 2^20 values per pass was 1.4x slower)
CPU_PASS_SET = 2**17


#: attribution values (rows x input width x outputs) of one block of rows that an explainer
#: of the gradient family computes at once: larger inputs are explained block by block, so
#: the working set (the block's copy in the computation dtype, its accumulators) stays
#: bounded whatever the number of rows (8 MiB per block in float32)
BLOCK_VALUES = 2**21


def block_rows(shapes: Sequence[tuple[int, ...]], n_outputs: int, batch_size: int) -> int:
    """Rows per block: about :data:`BLOCK_VALUES` attribution values, at least one chunk of
    ``batch_size`` rows."""
    per_row = _row_values(shapes) * max(int(n_outputs), 1)
    return max(int(batch_size), BLOCK_VALUES // per_row, 1)


def _row_values(shapes: Sequence[tuple[int, ...]]) -> int:
    """Input values of one row over every input (at least 1)."""
    return max(sum(math.prod(s) for s in shapes), 1)


def auto_batch_size(
    shapes: Sequence[tuple[int, ...]], budget: int = 2**22, n_outputs: int = 1,
    device_type: str | None = None,
) -> int:
    """Rows per chunk so that one chunk holds about ``budget`` input values (1..8192).

    The gradients of a chunk hold ``n_outputs`` values per input value; the rows are also
    capped so that they stay below ``16 * budget`` values (unchanged for up to 16 outputs,
    bounded memory for thousands of selected outputs). With ``device_type="cpu"`` the
    backward working set ``rows x width x n_outputs`` is further kept to
    ``CPU_WORKING_SET`` values, which is much faster on CPUs.
    """
    per_row = _row_values(shapes)
    k = max(int(n_outputs), 1)
    rows = min(budget // per_row, (16 * budget) // (per_row * k))
    if device_type == "cpu":
        rows = min(rows, CPU_WORKING_SET // (per_row * k))
    return int(min(8192, max(1, rows)))


def forward_batch_size(shapes: Sequence[tuple[int, ...]],
                       device_type: str | None = None) -> int:
    """Rows per forward-only model call (no gradients kept): :func:`auto_batch_size`, and on
    CPU (``device_type="cpu"``) at most :data:`CPU_FORWARD_SET` input values per call.

    Examples
    --------
    >>> forward_batch_size([(3, 32, 32)]), forward_batch_size([(3, 32, 32)], "cpu")
    (1365, 85)
    """
    rows = auto_batch_size(shapes)
    if device_type == "cpu":
        rows = min(rows, max(1, CPU_FORWARD_SET // _row_values(shapes)))
    return rows


def gradient_batch_size(forward: Forward, xs: Sequence[torch.Tensor], n_outputs: int) -> int:
    """Rows per chunk of the gradients of ``n_outputs`` outputs of ``forward`` at ``xs``.

    :func:`auto_batch_size` caps the chunk for the number of outputs (its gradients are
    ``n_outputs`` times the chunk). On CPU the chunk is also kept cache-sized: with one
    batched backward pass its working set is rows x width x outputs values
    (:data:`CPU_WORKING_SET`); with one backward pass per output (images and signals,
    :func:`gradient_strategy`) each pass works on rows x width only, so there the cap is
    :data:`CPU_PASS_SET` values per pass, whatever the number of outputs (the 3x64x64 CNN
    with 100 outputs ran 200 passes over one image each instead of 100 over its two).
    """
    shapes = [tuple(x.shape[1:]) for x in xs]
    device = xs[0].device.type
    if device == "cpu" and gradient_strategy(forward, xs)[0] == "looped":
        return min(auto_batch_size(shapes, n_outputs=n_outputs),
                   max(1, CPU_PASS_SET // _row_values(shapes)))
    return auto_batch_size(shapes, n_outputs=n_outputs, device_type=device)


_NO_GRAD = (
    "the selected model outputs do not depend on the input through differentiable "
    "operations (the model detaches its input, runs under torch.no_grad(), or returns "
    "constants), so their gradients are undefined"
)


#: the ways :func:`output_gradients` computes the gradients of ``k`` outputs
STRATEGIES = ("batched", "looped")


def root_module(forward: object) -> torch.nn.Module | None:
    """The ``nn.Module`` that runs ``forward``: the converted graph, or the private module
    copy of a model that could not be converted; wrappers (the modified-backward and layer
    forwards) name what they wrap ``model``. None for any other callable."""
    seen = 0
    while not isinstance(forward, torch.nn.Module) and seen < 8:
        seen += 1
        fallback = getattr(forward, "_fallback", None)
        if fallback is not None:
            forward = fallback
            continue
        for attr in ("graph", "module", "model"):
            inner = getattr(forward, attr, None)
            if inner is not None:
                forward = inner
                break
        else:
            return None
    return forward if isinstance(forward, torch.nn.Module) else None


def _convolutional(forward: object) -> bool:
    """Whether the model behind ``forward`` has a convolution (a converted ``Conv`` layer or
    a torch ``nn.ConvNd`` module)."""
    from .layers.conv import Conv

    flag = getattr(forward, "convolutional", None)  # a forward that knows (TailForward)
    if flag is not None:
        return bool(flag)
    root = root_module(forward)
    return root is not None and any(
        isinstance(m, (Conv, torch.nn.modules.conv._ConvNd)) for m in root.modules())


def gradient_strategy(forward: Forward, points: Sequence[torch.Tensor]) -> tuple[str, bool]:
    """How :func:`output_gradients` runs on ``points``: ``(backward, channels_last)``.

    The rule (measured with ``benchmarks/bench_grad_strategies.py``, see
    docs/benchmarks.md): for images (every input ``(n, C, H, W)``) on CPU, one backward pass
    per output ("looped") beat one ``is_grads_batched`` pass, whose vmapped convolution
    backward is slower than ``k`` plain ones (ResNet 16 rows, 10 outputs: 217 vs 292 ms;
    64x64 CNN 4 rows, 100 outputs: 3.5 vs 4.1 s), and a channels-last input made the
    convolutions of the converted graph 10-25 % faster still. The same holds for signals
    (every input ``(n, C, L)``) through a model with a convolution (signal 1D-CNN, 128 rows,
    10 outputs: 54 vs 77 ms on one thread, 33 vs 45 ms on two), but not for sequences
    through attention (batched 14 vs looped 17 ms), hence the convolution test for 3-D
    inputs. Everything else (dense models, sequences without convolutions) keeps
    "batched". Channels-last is only used for images on the converted graph, whose layers
    never ``view`` an activation (a user's module run as is may). Signals through the
    converted graph run channels-last too (stride 1 along the channels: the graph's 1-D
    convolutions and poolings then run as channels-last images of height 1,
    :func:`~sknn_explain.layers.base.is_channels_last_1d`; signal 1D-CNN, 32 rows, one
    output: forward and backward 2.1 vs 2.8 ms). The rule depends on the shapes and the
    model only, so a call is deterministic.
    """
    cpu = bool(points) and all(p.device.type == "cpu" for p in points)
    image = cpu and all(p.ndim == 4 for p in points)
    signal = cpu and not image and all(p.ndim == 3 for p in points) and _convolutional(forward)
    converted = bool(getattr(forward, "converted", False))
    return ("looped" if image or signal else "batched"), (image or signal) and converted


def output_gradients(
    forward: Forward,
    points: Sequence[torch.Tensor],
    selection: OutputSelection,
    *,
    strategy: str | None = None,
    channels_last: bool | None = None,
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Gradients of every selected output w.r.t. every input, in one forward pass.

    ``strategy`` ("batched": one ``is_grads_batched`` backward pass over one-hot
    ``grad_outputs``; "looped": one backward pass per output) and ``channels_last`` (run
    images and signals channels-last, :func:`~sknn_explain.layers.base.to_channels_last`)
    default to :func:`gradient_strategy`. Every
    strategy gives the same numbers (to rounding: tested < 1e-10 in double).

    Returns
    -------
    grads : list of Tensor
        Per input, ``(n, *input_shape, K_total)``.
    picked : Tensor
        The selected outputs at ``points``, ``(n, K_total)``.
    """
    if torch.is_inference_mode_enabled():
        raise ValueError(
            "gradient attributions cannot be computed inside torch.inference_mode(); call "
            "explain outside it (torch.no_grad() is fine)"
        )
    auto_strategy, auto_cl = gradient_strategy(forward, points)
    strategy = auto_strategy if strategy is None else strategy
    channels_last = auto_cl if channels_last is None else channels_last
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if channels_last and all(p.ndim in (3, 4) for p in points):
        leaves = [to_channels_last(p.detach()).requires_grad_(True) for p in points]
    else:
        leaves = [p.detach().requires_grad_(True) for p in points]
    with torch.enable_grad():
        picked = selection.pick(call_forward(forward, leaves))
        k = picked.shape[1]
        if not picked.requires_grad:
            raise ValueError(_NO_GRAD)
        grads = None
        if k == 1:
            grads = torch.autograd.grad(picked.sum(), leaves, allow_unused=True)
            grads = [g.unsqueeze(0) if g is not None else None for g in grads]
        elif strategy == "batched":
            eye = torch.eye(k, dtype=picked.dtype, device=picked.device)
            grad_outputs = eye[:, None, :].expand(k, picked.shape[0], k)
            try:
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message=".*performance drop.*")
                    grads = torch.autograd.grad(
                        picked, leaves, grad_outputs=grad_outputs, is_grads_batched=True,
                        allow_unused=True, retain_graph=True,
                    )
            except (RuntimeError, NotImplementedError):
                grads = None  # an op without a batching rule: one backward per output
        if grads is None:
            grads = [[] for _ in leaves]
            for j in range(k):
                gs = torch.autograd.grad(
                    picked[:, j].sum(), leaves, retain_graph=j < k - 1, allow_unused=True
                )
                for i, g in enumerate(gs):
                    grads[i].append(g)
            grads = [None if g[0] is None else torch.stack(g) for g in grads]
    if all(g is None for g in grads):
        raise ValueError(_NO_GRAD)
    out = []
    for leaf, g in zip(leaves, grads):
        if g is None:  # input not used by the selected outputs
            g = torch.zeros((k, *leaf.shape), dtype=leaf.dtype, device=leaf.device)
        out.append(torch.movedim(g, 0, -1))
    return out, picked.detach()


def accumulate_paths(
    forward: Forward,
    n_samples: int,
    input_shapes: Sequence[tuple[int, ...]],
    selection: OutputSelection,
    make_rows: RowMaker,
    *,
    n_steps: int,
    batch_size: int,
    dtype: torch.dtype,
    device: torch.device,
    keep_outputs: bool = False,
    verbose: bool = False,
    desc: str = "",
    reduce: str = "mean",
) -> tuple[list[torch.Tensor], torch.Tensor | None]:
    """Mean over steps of ``grad(point) * multiplier`` for every sample and output.

    ``reduce="mean_sq"`` averages the squares of those products instead, ``"var"`` returns
    their (population) variance over the steps, ``mean(a^2) - mean(a)^2`` clamped at 0
    (captum's NoiseTunnel ``smoothgrad_sq`` and ``vargrad``).

    Rows ``r = sample * n_steps + step`` are processed in order, ``batch_size`` at a time;
    ``make_rows`` builds the evaluation points (and multipliers) of a chunk, so random
    draws made in row order do not depend on ``batch_size``.

    A (sample, output) pair whose model output is NaN / inf at any of its points gets NaN
    values (and, unless ``keep_outputs`` with one step, a ``RuntimeWarning`` naming the
    samples).

    Returns
    -------
    values : list of Tensor
        Per input, ``(n_samples, *input_shape, K_total)``.
    outputs : Tensor or None
        With ``keep_outputs``, the selected outputs at each sample's last point (step
        ``n_steps - 1``), ``(n_samples, K_total)``: the predictions when that point is the
        sample itself (one step of a gradient; the last step of a right Riemann sum that
        ends at the sample exactly).
    """
    k = sum(selection.sizes)
    if reduce not in ("mean", "mean_sq", "var"):
        raise ValueError(f"reduce must be 'mean', 'mean_sq' or 'var', got {reduce!r}")
    acc = [torch.zeros((n_samples, *s, k), dtype=dtype, device=device) for s in input_shapes]
    # the sums of squares (vargrad needs both moments)
    acc_sq = ([torch.zeros_like(a) for a in acc] if reduce == "var" else [None] * len(acc))
    outputs = torch.zeros((n_samples, k), dtype=dtype, device=device) if keep_outputs else None
    # (sample, output) pairs with a NaN / inf model output at some evaluation point
    n_bad = torch.zeros((n_samples, k), dtype=torch.int32, device=device)
    total = n_samples * n_steps
    starts = range(0, total, batch_size)
    if verbose:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=desc, unit="chunk")
    for start in starts:
        rows = torch.arange(start, min(total, start + batch_size), device=device)
        sample_idx = torch.div(rows, n_steps, rounding_mode="floor")
        step_idx = rows - sample_idx * n_steps
        points, mults = make_rows(sample_idx, step_idx)
        grads, picked = output_gradients(forward, points, selection)
        for a, a2, g, m in zip(acc, acc_sq, grads, mults):
            g = (g if m is None else g * m.unsqueeze(-1)).to(a.dtype)
            if a2 is not None:
                a2.index_add_(0, sample_idx, g * g)
            a.index_add_(0, sample_idx, g * g if reduce == "mean_sq" else g)
        if outputs is not None:  # a model may promote the inputs' dtype (float64 buffers)
            last = step_idx == n_steps - 1
            outputs[sample_idx[last]] = picked[last].to(outputs.dtype)
        n_bad.index_add_(0, sample_idx, (~torch.isfinite(picked)).to(torch.int32))
    if n_steps > 1:
        for a in acc:
            a.div_(n_steps)
    if reduce == "var":
        for a, a2 in zip(acc, acc_sq):
            a2.div_(n_steps).sub_(a * a).clamp_(min=0)
            a.copy_(a2)
        del acc_sq
    bad = n_bad > 0
    if bool(bad.any()):  # an average over points where the model is undefined is no answer
        for a in acc:
            a.masked_fill_(bad.reshape(n_samples, *([1] * (a.ndim - 2)), k), float("nan"))
        if not (keep_outputs and n_steps == 1):  # else: the predictions, the caller checks
            names = [name for layer in selection.names for name in layer]
            offset = row_context().offset  # a block of a larger X: name its global rows
            mask = bad.cpu()
            if offset:
                mask = torch.cat([torch.zeros((offset, k), dtype=torch.bool), mask])
            warnings.warn(
                nonfinite_message(mask, names, f"at the {desc or 'path'} evaluation points "
                                  "(noisy / interpolated inputs) of X")
                + "; their attributions are set to NaN",
                RuntimeWarning, stacklevel=5,
            )
    return acc, outputs
