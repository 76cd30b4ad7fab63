"""``torch.fx`` tracing under a process-wide lock, with the fx patches never left behind."""

from __future__ import annotations

import inspect
import threading

import torch
from torch import fx, nn

from ..._forward_binding import BoundForward
from ..errors import ConversionError

__all__ = ["trace_module"]

#: serialises our ``torch.fx`` traces: tracing patches ``nn.Module.__call__`` and
#: ``nn.Module.__getattr__`` process-wide, and two overlapping traces restore each other's
#: patches (one of them then stays installed for good)
_TRACE_LOCK = threading.RLock()
_MODULE_CALL = nn.Module.__call__
_MODULE_GETATTR = nn.Module.__getattr__


class _Tracer(fx.Tracer):
    """Default leaves (``torch.nn`` modules except containers), with source locations.

    While a trace runs, ``torch.fx`` routes *every* module call of the process through the
    tracer. Calls from other threads (another explainer running its model) are passed
    straight to the original ``nn.Module.__call__`` / attribute lookup, so they neither fail
    (``NameError: module is not installed as a submodule``) nor end up in this trace.
    """

    def __init__(self) -> None:
        super().__init__()
        self.record_stack_traces = True
        self._thread = threading.get_ident()

    def call_module(self, m, forward, args, kwargs):  # noqa: D102 - see class docstring
        if threading.get_ident() != self._thread:
            return forward(*args, **kwargs)
        return super().call_module(m, forward, args, kwargs)

    def getattr(self, attr, attr_val, parameter_proxy_cache):  # noqa: D102
        if threading.get_ident() != self._thread:
            return attr_val
        return super().getattr(attr, attr_val, parameter_proxy_cache)


def _trace(tracer: _Tracer, module: nn.Module, concrete: dict) -> fx.Graph:
    """``tracer.trace`` under the process-wide lock; the fx patches never outlive it."""
    with _TRACE_LOCK:
        call = nn.Module.__dict__["__call__"]
        getattr_ = nn.Module.__dict__["__getattr__"]
        try:
            return tracer.trace(module, concrete_args=concrete or None)
        finally:
            # fx restores its patches itself; this guards against a patch left behind
            if nn.Module.__dict__["__call__"] is not call:
                nn.Module.__call__ = call
            if nn.Module.__dict__["__getattr__"] is not getattr_:
                nn.Module.__getattr__ = getattr_


def trace_module(module: nn.Module) -> tuple[fx.GraphModule, list[str]]:
    """Symbolically trace ``module``; return the GraphModule and the input placeholder names.

    ``forward`` parameters with default values are fixed to those defaults; a
    :class:`~sknn_explain._forward_binding.BoundForward` is traced as its inner module with
    the bound arguments fixed, and keeps only the chosen outputs.

    Raises
    ------
    ConversionError
        When ``torch.fx`` cannot trace the module (e.g. data-dependent control flow).
    """
    binding = module if isinstance(module, BoundForward) else None
    fixed: dict[str, object] = {}
    if binding is not None:
        module, fixed = binding.trace_target()
    try:
        sig = inspect.signature(module.forward)
    except (TypeError, ValueError):  # pragma: no cover - builtin forwards
        sig = None
    concrete: dict[str, object] = {}
    if sig is not None:
        for p in sig.parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise ConversionError(
                    f"cannot convert {type(module).__name__}: forward(*args / **kwargs) has no "
                    "fixed inputs; wrap it in a module with named tensor arguments"
                )
            if p.default is not p.empty:
                concrete[p.name] = p.default
            if p.name in fixed:
                concrete[p.name] = fixed[p.name]
    tracer = _Tracer()
    try:
        graph = _trace(tracer, module, concrete)
    except Exception as err:  # noqa: BLE001 - fx raises many kinds of errors
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConversionError(
            f"torch.fx could not trace {type(module).__name__}: {type(err).__name__}: {first}. "
            "Models with data-dependent control flow (if/for on tensor values, len(x), ...) "
            "cannot be converted to a layer graph; the gradient methods (Gradient, SmoothGrad, "
            "IntegratedGradients, ExpectedGradients) still work on them"
        ) from err
    gm = fx.GraphModule(tracer.root, graph, type(module).__name__)
    if binding is not None:
        for node in list(gm.graph.nodes):  # fx's guards that a fixed value is its default
            if node.op == "call_function" and node.target is torch._assert and any(
                    "has been specialized" in str(a) for a in node.args):
                gm.graph.erase_node(node)
        try:
            binding.select_traced_output(gm)
        except ValueError as err:
            raise ConversionError(str(err)) from err
    inputs = [n.name for n in gm.graph.nodes if n.op == "placeholder" and not n.args]
    return gm, inputs

