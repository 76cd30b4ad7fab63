"""Functional gradient methods on any torch module: tensors in, tensors out.

Same maths as the explainer classes (:class:`sknn_explain.Gradient` and its kin), without
``fit``: the module is used as it is (its dtype and device) in eval mode. The user's module
is never modified, not even for the duration of the call (so calls from several threads on
one module are safe): a module whose submodules are all in eval mode is run directly (an
eval-mode forward changes no state), a module with any submodule in train mode is
deep-copied once per call and the copy switched to eval mode (this costs one copy of its
parameters and buffers; call ``model.eval()`` beforehand to avoid it). Output nodes are
selected with 0-based ``output_idx`` (default: the first ten of the first output).

Examples
--------
>>> import torch
>>> from sknn_explain.functional import torch_intgrad
>>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
>>> torch_intgrad(net, torch.randn(6, 4), n=20).shape
torch.Size([6, 4, 3])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from ._batching import gradient_batch_size
from ._data import check_readable_tensor, default_axis_names, find_batch_first_rnn
from ._model import as_numpy, call_forward, copy_model, flag_nonfinite_outputs, flatten_outputs
from ._naming import default_output_names
from ._output_selection import resolve_outputs
from ._validation import (
    BATCH_SIZE,
    BOOLEAN,
    NON_NEGATIVE_REAL,
    POSITIVE_INT,
    RANDOM_STATE,
    check_reference_shapes,
    validate_arguments,
)
from .attribution import Attribution
from .explainers.base import make_attribution
from .explainers.gradient import (
    expgrad_attribution,
    gradient_attribution,
    intgrad_attribution,
    smoothgrad_attribution,
)

__all__ = ["torch_expgrad", "torch_grad", "torch_intgrad", "torch_smoothgrad"]

TensorOrList = torch.Tensor | Sequence[torch.Tensor]

#: the same constraints as the Explainer classes' (the model, data and output_idx are
#: checked when they are used)
_CONSTRAINTS = {
    "n": POSITIVE_INT,
    "noise_level": NON_NEGATIVE_REAL,
    "times_input": BOOLEAN,
    "random_state": RANDOM_STATE,
    "batch_size": BATCH_SIZE,
    "return_object": BOOLEAN,
}


def _constraints(*names: str) -> dict[str, list]:
    return {name: _CONSTRAINTS[name] for name in names}


def _as_tensors(x: TensorOrList, name: str) -> list[torch.Tensor]:
    xs = list(x) if isinstance(x, (list, tuple)) else [x]
    for i, t in enumerate(xs):
        label = name if len(xs) == 1 else f"{name}[{i}]"
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{label} must be a torch.Tensor, got {type(t).__name__}")
        check_readable_tensor(t, label)
        if not t.is_floating_point():
            raise TypeError(f"{label} must be a floating point tensor, got {t.dtype}")
        if t.ndim < 2:
            raise ValueError(f"{label} must have a leading sample axis, got shape {tuple(t.shape)}")
        if t.shape[0] == 0:
            raise ValueError(f"{label} is empty: it has 0 samples")
        if not torch.isfinite(t).all():
            raise ValueError(f"{label} contains NaN or infinite values")
    return [t.detach() for t in xs]


def _like_x(refs: list[torch.Tensor], x: TensorOrList) -> list[torch.Tensor]:
    """Reference tensors (shapes checked by ``check_reference_shapes``) in ``x``'s dtype /
    device, input by input."""
    return [r.to(t) for r, t in zip(refs, _as_tensors(x, "x"))]


def _eval_module(model: nn.Module) -> nn.Module:
    """``model`` itself when every submodule is in eval mode, else a private eval-mode copy.

    Switching the user's module to eval and back is not safe: another thread may run it in
    between (BatchNorm in train mode then updates its running statistics), and a restore
    racing with another call's switch leaves the module in eval mode.
    """
    if not any(m.training for m in model.modules()):
        return model
    return copy_model(model).eval()


def _run(
    method: str,
    compute: Callable,
    model: nn.Module,
    x: TensorOrList,
    output_idx: object,
    batch_size: int | None,
    return_object: bool,
    goal_description: str | None,
    **kwargs,
):
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch nn.Module, got {type(model).__name__}")
    xs = _as_tensors(x, "x")
    shapes = [tuple(t.shape[1:]) for t in xs]

    module = _eval_module(model)

    def forward(inputs):
        return flatten_outputs(module(*inputs), inputs[0].shape[0])

    with torch.no_grad():
        dims = [o.shape[1] for o in call_forward(forward, [t[:1] for t in xs])]
    names = default_output_names(dims)  # as the Explainer classes name them
    selection = resolve_outputs(output_idx, None, names)
    bs = int(batch_size) if batch_size is not None else gradient_batch_size(
        forward, xs, sum(selection.sizes))
    values, preds, goal = compute(forward, xs, selection, batch_size=bs, **kwargs)
    values = flag_nonfinite_outputs(
        values, preds, goal, [name for layer in selection.names for name in layer], stacklevel=4
    )
    if return_object:
        return make_attribution(
            method, values, preds, goal, selection, [as_numpy(t) for t in xs],
            [default_axis_names(s, sequence=find_batch_first_rnn(model) is not None)
             for s in shapes],
            goal_description=goal_description if goal is not None else None,
        )
    if len(selection.layers) == 1:
        return values[0] if len(values) == 1 else values
    per_layer = [selection.split(v) for v in values]
    return [[per_layer[i][li] for i in range(len(values))] for li in range(len(selection.layers))]


@validate_arguments(_constraints("times_input", "batch_size", "return_object"))
def torch_grad(
    model: nn.Module,
    x: TensorOrList,
    output_idx: object = None,
    times_input: bool = False,
    batch_size: int | None = None,
    return_object: bool = False,
) -> torch.Tensor | list | Attribution:
    """Gradient (``times_input``: Gradient x Input) of ``model`` at ``x``.

    Parameters
    ----------
    model : torch.nn.Module
        The network, used as it is (its dtype and device; never modified).
    x : torch.Tensor or list of torch.Tensor
        The samples to explain, ``(n, *input_shape)``; a list for a model with several inputs.
    output_idx : int, list of int, or list of (list of int or None), optional
        0-based output nodes to explain; a list of lists selects per output layer.
        Default: the first ten nodes of the first output layer.
    times_input : bool, default=False
        Multiply the gradient by the input (Gradient x Input).
    batch_size : int, optional
        Model rows per pass (samples x outputs); None picks one from the input width.
    return_object : bool, default=False
        Return an :class:`~sknn_explain.Attribution` instead of the bare values.

    Returns
    -------
    torch.Tensor, list of torch.Tensor or Attribution
        The attributions, ``(n, *input_shape, n_outputs)`` (a list for several inputs), or
        an :class:`~sknn_explain.Attribution` with ``return_object=True``.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Linear(3, 2)
    >>> g = torch_grad(net, torch.ones(4, 3))
    >>> torch.allclose(g[0, :, 1], net.weight[1])
    True
    """
    return _run(
        "Gradient", gradient_attribution, model, x, output_idx, batch_size, return_object,
        "f(x) - f(0)", times_input=bool(times_input),
    )


@validate_arguments(_constraints(
    "n", "noise_level", "times_input", "random_state", "batch_size", "return_object"))
def torch_smoothgrad(
    model: nn.Module,
    x: TensorOrList,
    output_idx: object = None,
    n: int = 50,
    noise_level: float = 0.1,
    times_input: bool = False,
    random_state: object = None,
    batch_size: int | None = None,
    return_object: bool = False,
) -> torch.Tensor | list | Attribution:
    """SmoothGrad of ``model`` at ``x`` (see :class:`sknn_explain.SmoothGrad`).

    Parameters
    ----------
    model : torch.nn.Module
        The network, used as it is (its dtype and device; never modified).
    x : torch.Tensor or list of torch.Tensor
        The samples to explain, ``(n, *input_shape)``; a list for a model with several inputs.
    output_idx : int, list of int, or list of (list of int or None), optional
        0-based output nodes to explain; a list of lists selects per output layer.
        Default: the first ten nodes of the first output layer.
    n : int, default=50
        Number of noisy copies of each sample.
    noise_level : float, default=0.1
        Standard deviation of the Gaussian noise, relative to the range of each sample.
    times_input : bool, default=False
        Multiply the gradient by the input.
    random_state : int, numpy.random.Generator or None, default=None
        Seed of the random draws (None: not reproducible).
    batch_size : int, optional
        Model rows per pass (samples x noisy copies); None picks one from the input width.
    return_object : bool, default=False
        Return an :class:`~sknn_explain.Attribution` instead of the bare values.

    Returns
    -------
    torch.Tensor, list of torch.Tensor or Attribution
        The attributions, ``(n, *input_shape, n_outputs)`` (a list for several inputs), or
        an :class:`~sknn_explain.Attribution` with ``return_object=True``.

    Examples
    --------
    >>> import torch
    >>> from sknn_explain.functional import torch_smoothgrad
    >>> net = torch.nn.Linear(3, 2)
    >>> torch_smoothgrad(net, torch.ones(4, 3), n=5, random_state=0).shape
    torch.Size([4, 3, 2])
    """
    return _run(
        "SmoothGrad", smoothgrad_attribution, model, x, output_idx, batch_size, return_object,
        None, n=int(n), noise_level=float(noise_level), times_input=bool(times_input),
        random_state=random_state,
    )


@validate_arguments(_constraints("n", "times_input", "batch_size", "return_object"))
def torch_intgrad(
    model: nn.Module,
    x: TensorOrList,
    x_ref: TensorOrList | None = None,
    output_idx: object = None,
    n: int = 50,
    times_input: bool = True,
    batch_size: int | None = None,
    return_object: bool = False,
) -> torch.Tensor | list | Attribution:
    """Integrated gradients of ``model`` at ``x`` from the baseline ``x_ref`` (default 0).

    Parameters
    ----------
    model : torch.nn.Module
        The network, used as it is (its dtype and device; never modified).
    x : torch.Tensor or list of torch.Tensor
        The samples to explain, ``(n, *input_shape)``; a list for a model with several inputs.
    x_ref : torch.Tensor or list of torch.Tensor, optional
        The baseline: one row per input (``(1, *shape)``) or several rows whose mean is
        used. None: zeros.
    output_idx : int, list of int, or list of (list of int or None), optional
        0-based output nodes to explain; a list of lists selects per output layer.
        Default: the first ten nodes of the first output layer.
    n : int, default=50
        Number of steps of the path integral.
    times_input : bool, default=True
        Multiply the gradient by ``x - x_ref``.
    batch_size : int, optional
        Model rows per pass (samples x steps); None picks one from the input width.
    return_object : bool, default=False
        Return an :class:`~sknn_explain.Attribution` instead of the bare values.

    Returns
    -------
    torch.Tensor, list of torch.Tensor or Attribution
        The attributions, ``(n, *input_shape, n_outputs)`` (a list for several inputs), or
        an :class:`~sknn_explain.Attribution` with ``return_object=True``.

    Examples
    --------
    >>> import torch
    >>> from sknn_explain.functional import torch_intgrad
    >>> net = torch.nn.Linear(3, 2)
    >>> a = torch_intgrad(net, torch.ones(4, 3), n=10)
    >>> torch.allclose(a.sum(1), net(torch.ones(4, 3)) - net(torch.zeros(1, 3)))
    True
    """
    refs = None
    if x_ref is not None:
        check_reference_shapes(x, x_ref, "x_ref")
        refs = [r.mean(0, keepdim=True) for r in _as_tensors(x_ref, "x_ref")]
        refs = _like_x(refs, x)
    return _run(
        "IntegratedGradients", intgrad_attribution, model, x, output_idx, batch_size,
        return_object, "f(x) - f(x_ref)", x_ref=refs, n=int(n), times_input=bool(times_input),
    )


@validate_arguments(_constraints("n", "random_state", "batch_size", "return_object"))
def torch_expgrad(
    model: nn.Module,
    x: TensorOrList,
    data_ref: TensorOrList,
    output_idx: object = None,
    n: int = 50,
    random_state: object = None,
    batch_size: int | None = None,
    return_object: bool = False,
) -> torch.Tensor | list | Attribution:
    """Expected gradients of ``model`` at ``x`` against the reference data ``data_ref``.

    Parameters
    ----------
    model : torch.nn.Module
        The network, used as it is (its dtype and device; never modified).
    x : torch.Tensor or list of torch.Tensor
        The samples to explain, ``(n, *input_shape)``; a list for a model with several inputs.
    data_ref : torch.Tensor or list of torch.Tensor
        Reference data the baselines are drawn from, ``(n_ref, *input_shape)``.
    output_idx : int, list of int, or list of (list of int or None), optional
        0-based output nodes to explain; a list of lists selects per output layer.
        Default: the first ten nodes of the first output layer.
    n : int, default=50
        Number of baseline draws (and path points) per sample.
    random_state : int, numpy.random.Generator or None, default=None
        Seed of the random draws (None: not reproducible).
    batch_size : int, optional
        Model rows per pass (samples x draws); None picks one from the input width.
    return_object : bool, default=False
        Return an :class:`~sknn_explain.Attribution` instead of the bare values.

    Returns
    -------
    torch.Tensor, list of torch.Tensor or Attribution
        The attributions, ``(n, *input_shape, n_outputs)`` (a list for several inputs), or
        an :class:`~sknn_explain.Attribution` with ``return_object=True``.

    Examples
    --------
    >>> import torch
    >>> from sknn_explain.functional import torch_expgrad
    >>> net = torch.nn.Linear(3, 2)
    >>> torch_expgrad(net, torch.ones(4, 3), torch.zeros(8, 3), n=5, random_state=0).shape
    torch.Size([4, 3, 2])
    """
    check_reference_shapes(x, data_ref, "data_ref")
    refs = _as_tensors(data_ref, "data_ref")
    refs = _like_x(refs, x)
    return _run(
        "ExpectedGradients", expgrad_attribution, model, x, output_idx, batch_size,
        return_object, "f(x) - mean f(X_ref)", data_ref=refs, n=int(n),
        random_state=random_state,
    )
