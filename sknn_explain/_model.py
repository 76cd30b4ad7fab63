"""Model adapters: one uniform, differentiable ``forward(list[Tensor]) -> list[Tensor]``.

Explainers never run the user's object. :func:`as_model` takes a torch ``nn.Module`` or a
fitted skorch net and returns a :class:`TorchModel` holding a *private copy* of the module
(deep-copied, cast to the requested dtype/device, in eval mode, parameters frozen), so the
user's model keeps its parameters, ``training`` flags, ``requires_grad`` flags and hooks.

The functional API (:mod:`sknn_explain.functional`) runs the user's module directly when it is
entirely in eval mode, and a private eval-mode copy otherwise: it never switches the user's
module to eval and back (not thread-safe).

Every model adapter an explainer holds as ``model_`` (:class:`TorchModel`, the converted
:class:`~sknn_explain.convert.GraphModel`, the model-agnostic ``SklearnModel`` /
``FunctionModel`` / ``NativeInputs``) implements the :class:`ModelAdapter` protocol in full;
:class:`AdapterBase` gives the defaults of an adapter that converts nothing.
"""

from __future__ import annotations

import copy
import functools
import itertools
import warnings
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from ._module_copy import deepcopy_module
from ._naming import class_names_for, default_output_names
from ._skorch import check_skorch_fitted, is_skorch_net, skorch_activation, skorch_classes
from .layers import torch_activation_modules

__all__ = [
    "ACTIVATIONS", "AdapterBase", "ModelAdapter", "TorchModel", "as_model", "copy_model",
    "flag_nonfinite_outputs", "flatten_outputs", "private_copy", "strip_last_activation",
]

#: modules treated as "the last activation" by ``ignore_last_act`` on unconverted models
ACTIVATIONS: tuple[type[nn.Module], ...] = torch_activation_modules()


@runtime_checkable
class ModelAdapter(Protocol):
    """What an explainer's ``model_`` is: a uniform, picklable forward plus what it knows.

    Attributes
    ----------
    n_inputs : int or None
        Number of model inputs (None: not known before the first call).
    input_shapes, input_names : list or None
        Per-sample input shapes / names per input axis, when the model determines them.
    pending : bool
        Whether a conversion still waits for the input shapes (finished by :meth:`ensure`).
    shapes_from_first_call : bool
        Whether the converted graph was built for the shapes of the first explained ``X``.
    conversion_error : str or None
        Why the model runs unconverted (the plain-copy fallback), else None.
    removed_activation : str or None
        The activation dropped by ``ignore_last_act``.
    graph : Graph or None
        The explained layer graph (None: not converted, or not yet).
    preprocess, column_groups, raw_names : optional
        A Pipeline's preprocessing that runs before the network, the encoded features per
        original column and the original column names (None unless the model was split).
    """

    n_inputs: int | None
    input_shapes: list[tuple[int, ...]] | None
    input_names: list | None
    pending: bool
    shapes_from_first_call: bool
    conversion_error: str | None
    removed_activation: str | None
    graph: object | None
    preprocess: object | None
    column_groups: object | None
    raw_names: list | None

    def __call__(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """The model's outputs on ``xs`` as ``(n, k)`` tensors, one per output layer."""

    def output_names(self, dims: Sequence[int]) -> list[list]:
        """Names of every output node per output layer, for output widths ``dims``."""

    def ensure(self, xs: Sequence[torch.Tensor]) -> object:
        """Finish a pending conversion for inputs like ``xs`` (no-op when not pending)."""

    def check_inputs(self, xs: Sequence[torch.Tensor]) -> None:
        """Run the model on ``xs`` (raising as it would) without finishing a conversion."""


class AdapterBase:
    """The :class:`ModelAdapter` defaults of an adapter that converts nothing."""

    n_inputs: int | None = None
    input_shapes: list[tuple[int, ...]] | None = None
    input_names: list | None = None
    pending = False
    shapes_from_first_call = False
    conversion_error: str | None = None
    removed_activation: str | None = None
    graph: object | None = None
    preprocess: object | None = None
    column_groups: object | None = None
    raw_names: list | None = None

    def __call__(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:  # pragma: no cover
        raise NotImplementedError

    def output_names(self, dims: Sequence[int]) -> list[list]:
        """``Y1..`` (see :func:`~sknn_explain._naming.default_output_names`)."""
        return default_output_names(dims)

    def ensure(self, xs: Sequence[torch.Tensor]) -> object:
        """Nothing to finish: no conversion is pending."""
        return None

    def check_inputs(self, xs: Sequence[torch.Tensor]) -> None:
        with torch.no_grad():
            self(list(xs))


def flatten_outputs(out: object, n: int | None = None) -> list[torch.Tensor]:
    """Model output (tensor or tuple/list of tensors) -> list of ``(n, k)`` tensors.

    ``n`` is the number of input rows, when known. It makes outputs squeezed by the model
    (``forward`` ending in ``.squeeze()``) unambiguous: for one input row a 0-d output is
    ``(1, 1)`` and a ``(k,)`` output is ``(1, k)``; for ``n`` rows a ``(n,)`` output is
    ``(n, 1)``. Without ``n`` a 1-D output is one column and a 0-d output an error.

    Examples
    --------
    >>> import torch
    >>> [o.shape for o in flatten_outputs(torch.tensor(3.0), n=1)]
    [torch.Size([1, 1])]
    >>> [o.shape for o in flatten_outputs((torch.zeros(4), torch.zeros(4, 2, 3)), n=4)]
    [torch.Size([4, 1]), torch.Size([4, 6])]
    """
    if isinstance(out, dict):  # which outputs to explain is the user's choice
        raise ValueError(f"the model returns a dict with keys {list(out)}; choose the "
                         "output(s) to explain with fit(..., output_key=<key or list of keys>)")
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    flat = []
    for i, o in enumerate(outs):
        if not isinstance(o, torch.Tensor):
            raise TypeError(f"model output {i} is a {type(o).__name__}, expected a torch.Tensor")
        if n is None:
            if o.ndim == 0:
                raise ValueError(
                    f"model output {i} is a 0-d tensor (a scalar); the model must return one "
                    "row per input row"
                )
            flat.append(o.reshape(o.shape[0], -1) if o.ndim != 1 else o.reshape(-1, 1))
        elif o.ndim >= 1 and o.shape[0] == n:
            flat.append(o.reshape(n, -1))
        elif n == 1:  # the model squeezed the sample axis of a one-row batch
            flat.append(o.reshape(1, -1))
        else:
            raise ValueError(
                f"model output {i} has shape {tuple(o.shape)} for {n} input rows; expected a "
                f"leading sample axis of length {n}"
            )
    return flat


def strip_last_activation(module: nn.Module) -> tuple[nn.Module, str | None]:
    """Drop a trailing activation module of a (nested) ``nn.Sequential``.

    Returns the (possibly new) module and the removed activation's class name, or None.
    Works on a module the caller owns: the input is not modified, a new Sequential shares
    the remaining children.
    """
    if isinstance(module, nn.Sequential) and len(module) > 0:
        last = module[-1]
        if isinstance(last, ACTIVATIONS):
            return nn.Sequential(*list(module)[:-1]), type(last).__name__
        inner, removed = strip_last_activation(last)
        if removed is not None:
            return nn.Sequential(*list(module)[:-1], inner), removed
    return module, None


class TorchModel(AdapterBase):
    """Picklable wrapper around a private module copy.

    Parameters
    ----------
    module : nn.Module
        The module to call (already a private copy).
    output_nonlinearity : callable or None
        Applied after the module (skorch's predict nonlinearity when ``ignore_last_act``
        is False).
    class_names : sequence, optional
        Output names (e.g. skorch ``classes_``), used when they match the output width.
    removed_activation : str, optional
        Class name of the activation dropped by ``ignore_last_act``, for the record.
    """

    def __init__(
        self,
        module: nn.Module,
        output_nonlinearity: Callable[[torch.Tensor], torch.Tensor] | None = None,
        class_names: Sequence | None = None,
        removed_activation: str | None = None,
    ) -> None:
        self.module = module
        self.output_nonlinearity = output_nonlinearity
        self.class_names = None if class_names is None else np.asarray(class_names).tolist()
        self.removed_activation = removed_activation
        self.n_inputs = None

    def __call__(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        out = self.module(*xs)
        if self.output_nonlinearity is not None:  # as skorch: on the first output only
            outs = list(out) if isinstance(out, (tuple, list)) else [out]
            out = [self.output_nonlinearity(outs[0]), *outs[1:]]
        return flatten_outputs(out, xs[0].shape[0] if len(xs) else None)

    def output_names(self, dims: Sequence[int]) -> list[list]:
        """Names of every output node, per output layer (``Y1..`` unless classes match)."""
        names = default_output_names(dims)
        if dims:
            given = class_names_for(self.class_names, dims[0])  # one unit: classes_[1]
            if given is not None:
                names[0] = list(given)
        return names


def _skorch_parts(net: object, ignore_last_act: bool):
    if not is_skorch_net(net):
        return None
    check_skorch_fitted(net)
    nonlinearity = None
    if not ignore_last_act:
        kind, detail = skorch_activation(net)  # the one mapping (binary: one unit)
        if kind == "softmax":
            nonlinearity = functools.partial(torch.softmax, dim=detail)
        elif kind == "sigmoid":
            nonlinearity = torch.sigmoid
        elif kind == "other":
            nonlinearity = detail
    return net.module_, nonlinearity, skorch_classes(net)


def copy_model(model: object) -> object:
    """A deep copy of ``model``; a ``TypeError`` naming the model if it cannot be copied.

    Torch modules are copied by :func:`~sknn_explain._module_copy.deepcopy_module` (the
    same copy as ``copy.deepcopy``, built faster)."""
    try:
        return deepcopy_module(model) if isinstance(model, nn.Module) else copy.deepcopy(model)
    except Exception as err:  # noqa: BLE001 - any copy failure is reported the same way
        raise TypeError(
            f"could not copy the model ({type(model).__name__}) to explain it safely: {err}"
        ) from err


def private_copy(module: nn.Module, dtype: torch.dtype, device: torch.device) -> nn.Module:
    """An eval-mode, frozen deep copy of ``module`` cast to ``dtype`` / ``device``."""
    private = copy_model(module)
    if not _already_on(private, dtype, device):
        private = private.to(device=device, dtype=dtype)
    private.eval()
    for p in private.parameters():
        p.requires_grad_(False)
    return private


def _already_on(module: nn.Module, dtype: torch.dtype, device: torch.device) -> bool:
    """Whether ``module.to(device=device, dtype=dtype)`` would change nothing (every
    tensor on ``device``, every floating one of ``dtype``, none complex)."""
    for m in module.modules():  # the registries directly: parameters() is 3x slower
        for t in itertools.chain(m._parameters.values(), m._buffers.values()):
            if t is None:
                continue
            if t.device != device or t.is_complex() or (
                    t.is_floating_point() and t.dtype != dtype):
                return False
    return True


def as_model(
    model: object,
    *,
    ignore_last_act: bool,
    dtype: torch.dtype,
    device: torch.device,
) -> TorchModel:
    """Build a :class:`TorchModel` from a torch module or a fitted skorch net.

    Raises
    ------
    TypeError
        For objects that are neither.
    ValueError
        For an unfitted skorch net.
    """
    parts = _skorch_parts(model, ignore_last_act)
    if parts is not None:
        module, nonlinearity, classes = parts
    elif isinstance(model, nn.Module):
        module, nonlinearity, classes = model, None, None
    else:
        raise TypeError(
            f"cannot explain a {type(model).__name__}: expected a torch nn.Module or a fitted "
            "skorch NeuralNet"
        )
    private = private_copy(module, dtype, device)
    removed = None
    if ignore_last_act:
        private, removed = strip_last_activation(private)
    return TorchModel(private, nonlinearity, classes, removed)


def predict(
    forward: Callable[[Sequence[torch.Tensor]], list[torch.Tensor]],
    xs: Sequence[torch.Tensor],
    batch_size: int,
) -> list[torch.Tensor]:
    """All outputs of ``forward`` on ``xs`` without gradients, in chunks of ``batch_size``."""
    n = xs[0].shape[0]
    chunks: list[list[torch.Tensor]] = []
    with torch.no_grad():
        for start in range(0, n, batch_size):
            chunks.append(call_forward(forward, [x[start : start + batch_size] for x in xs]))
    return [torch.cat([c[i] for c in chunks]) for i in range(len(chunks[0]))]


def call_forward(
    forward, xs: Sequence[torch.Tensor], hint: Callable[[], str] | None = None
) -> list[torch.Tensor]:
    """Run ``forward`` and turn a shape/dtype failure inside the model into a ValueError.

    ``hint``, when given, is called only on failure and its text (e.g. "; did you mean
    channels_first=False?") is appended to the message.
    """
    try:
        return forward(xs)
    except (RuntimeError, IndexError, TypeError) as err:
        needs_int = integer_input_error(err, xs)
        if needs_int is not None:
            raise needs_int from err
        if isinstance(err, TypeError):
            raise
        shapes = ", ".join(str(tuple(x.shape)) for x in xs)
        extra = hint() if hint is not None else ""
        raise ValueError(
            f"the model failed on input(s) of shape {shapes}: {str(err).splitlines()[0]}{extra}"
        ) from err


#: fragments of torch's messages for an operation that needs bool / integer tensors
_INTEGER_OP_HINTS = (
    "Long, Int", "scalar type Long", "LongTensor", "must be long", "Boolean", "boolean",
    "integer", "not implemented for 'Float'", "not implemented for 'Double'",
    "not implemented for 'Half'", "not implemented for 'BFloat16'",
)


def integer_input_error(err: BaseException, xs: Sequence[torch.Tensor]) -> TypeError | None:
    """A clear ``TypeError`` when a model failed on float inputs because it needs bool / int.

    Gradient-based and propagation methods evaluate the model at float inputs (gradients,
    interpolations and noise are not defined for bool / integer values). Returns None when
    ``err`` does not look like such a dtype failure.
    """
    text = str(err)
    if not xs or not all(x.is_floating_point() for x in xs):
        return None
    if not any(hint in text for hint in _INTEGER_OP_HINTS):
        return None
    return TypeError(
        f"the model failed on floating point input(s) ({text.splitlines()[0]}): it seems to "
        "need bool / integer inputs. Gradient-based and propagation methods need float inputs "
        "(gradients are not defined for bool / integer values); explain such a model with "
        "KernelSHAP or LIME fitted on bool / integer X_ref, which pass those dtypes to the "
        "model unchanged"
    )


def as_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu").numpy()


def describe_rows(rows: Sequence[int], limit: int = 10) -> str:
    """``[3, 17]``, or the first ``limit`` rows and how many there are in all."""
    rows = [int(r) for r in rows]
    if len(rows) <= limit:
        return str(rows)
    shown = ", ".join(str(r) for r in rows[:limit])
    return f"[{shown}, ...] ({len(rows)} rows in all)"


def nonfinite_message(mask: torch.Tensor, names: Sequence, where: str) -> str:
    """Describe the True entries of a ``(n, K)`` mask: rows and output names."""
    rows = torch.nonzero(mask.any(1)).flatten().tolist()
    outs = [str(names[j]) for j in torch.nonzero(mask.any(0)).flatten().tolist()]
    shown = repr(outs[0]) if len(outs) == 1 else str(outs)
    label = "output" if len(outs) == 1 else "outputs"
    return f"the model returned NaN/inf for rows {describe_rows(rows)} {where} ({label} {shown})"


def flag_nonfinite_outputs(
    values: Sequence[torch.Tensor],
    predictions: torch.Tensor,
    goal: torch.Tensor | None,
    names: Sequence,
    *,
    stacklevel: int = 3,
) -> list[torch.Tensor]:
    """Warn about NaN / infinite model outputs; their attributions become NaN.

    A row whose selected model output is NaN or infinite has no meaningful attribution,
    even when the computed numbers look finite (a finite gradient of ``log(x)`` at
    ``x < 0``, say). Such (row, output) pairs get NaN attributions and a ``RuntimeWarning``
    names the rows (0-based) and outputs. A non-finite decomposition goal with finite
    outputs (the model returned NaN / inf at the reference) is warned about too.

    Parameters
    ----------
    values : list of Tensor
        Per input, ``(n, *input_shape, K)`` attributions.
    predictions : Tensor
        ``(n, K)`` selected outputs at the explained rows.
    goal : Tensor or None
        ``(n, K)`` decomposition goal.
    names : sequence
        The ``K`` selected output names.
    stacklevel : int
        Passed to :func:`warnings.warn` (point at the user's call).

    Returns
    -------
    list of Tensor
        ``values``, with NaN for the affected rows and outputs (modified in place).
    """
    values = list(values)
    bad = ~torch.isfinite(predictions)
    if bool(bad.any()):
        warnings.warn(
            nonfinite_message(bad.cpu(), names, "of X")
            + "; their attributions are set to NaN",
            RuntimeWarning, stacklevel=stacklevel,
        )
        for i, v in enumerate(values):
            mask = bad.to(v.device).reshape(bad.shape[0], *([1] * (v.ndim - 2)), bad.shape[1])
            values[i] = v.masked_fill(mask, float("nan"))
    if goal is not None:
        bad_goal = (~torch.isfinite(goal)) & ~bad.to(goal.device)
        if bool(bad_goal.any()):
            outs = [str(names[j]) for j in torch.nonzero(bad_goal.any(0)).flatten().tolist()]
            warnings.warn(
                f"the decomposition goal is NaN/inf for outputs {outs} although the model's "
                "outputs at X are finite: the model returned NaN/inf at the reference "
                "(X_ref / baseline)",
                RuntimeWarning, stacklevel=stacklevel,
            )
    return values
