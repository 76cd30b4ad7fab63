"""Forwards with extra, non-explained arguments, and models that return dicts / tuples.

``Explainer.fit(model, X_ref, forward_kwargs={...}, output_key=...)`` wraps the torch module in
a :class:`BoundForward`: the model's inputs are the ``forward`` parameters that are neither
bound nor defaulted; the bound ones are **constants of the model** (the same for every row:
flags like ``return_all=False``, a fixed attention mask, a temperature). They are fit
parameters because they define which function is explained. A per-sample tensor (one row
per sample) is data: pass it as another model input (``X`` as a list of inputs), so that it
is split into batches with ``X``; bound tensors are never split (and are refused when they
look per-sample, see :func:`bind_forward`).

``output_key`` picks the explained output(s) of a model that returns a dict (keys), a tuple,
list or namedtuple (positions or field names); a list picks several, in order. The graph
conversion traces the module with the bound values fixed (``torch.fx`` concrete arguments)
and keeps the chosen outputs only; the gradient family runs the wrapper itself.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence

import torch
from torch import fx, nn

__all__ = ["BoundForward", "bind_forward", "output_names_for_keys", "select_output"]


def _describe_keys(out: object) -> str:
    if isinstance(out, Mapping):
        return f"keys {list(out)}"
    fields = getattr(out, "_fields", None)
    if fields is not None:
        return f"fields {list(fields)} (or positions 0..{len(out) - 1})"
    return f"positions 0..{len(out) - 1}"


def select_output(out: object, key: object) -> object:
    """The output(s) ``key`` (a key / position / field name, or a list of them) of ``out``.

    Raises
    ------
    ValueError
        Naming the available keys when ``key`` is not one of them.
    """
    if isinstance(key, list):
        return tuple(select_output(out, k) for k in key)
    if isinstance(out, Mapping):
        if key in out:
            return out[key]
    elif isinstance(out, (tuple, list)):
        fields = getattr(out, "_fields", None)
        if isinstance(key, str) and fields is not None and key in fields:
            return out[fields.index(key)]
        if isinstance(key, int) and not isinstance(key, bool) and -len(out) <= key < len(out):
            return out[key]
    else:
        raise ValueError(f"output_key={key!r} was given, but the model returns a single "
                         f"{type(out).__name__}, not a dict or tuple")
    raise ValueError(f"output_key={key!r} is not an output of the model; it returns "
                     f"{type(out).__name__} with {_describe_keys(out)}")


class BoundForward(nn.Module):
    """``module`` with ``forward`` arguments bound and output(s) selected (see the module
    docstring). Tensor values are buffers (they move with ``.to``)."""

    def __init__(self, module: nn.Module, kwargs: Mapping[str, object],
                 output_key: object = None) -> None:
        super().__init__()
        self.module = module
        self.output_key = output_key
        self.constants: dict[str, object] = {}
        self.tensor_names: list[str] = []
        for name, value in kwargs.items():
            if isinstance(value, torch.Tensor):
                self.register_buffer(f"bound_{name}", value.detach().clone())
                self.tensor_names.append(name)
            else:
                self.constants[name] = value

    def bound(self) -> dict[str, object]:
        """The bound arguments (tensors in the module's current dtype / device)."""
        out = dict(self.constants)
        out.update({n: getattr(self, f"bound_{n}") for n in self.tensor_names})
        return out

    def forward(self, *inputs: torch.Tensor) -> object:
        out = self.module(*inputs, **self.bound())
        return out if self.output_key is None else select_output(out, self.output_key)

    def output_label(self) -> list[str] | None:
        """The explained output names (one per output layer), or None."""
        if self.output_key is None:
            return None
        keys = self.output_key if isinstance(self.output_key, list) else [self.output_key]
        return [k if isinstance(k, str) else f"output_{k}" for k in keys]

    def trace_target(self) -> tuple[nn.Module, dict[str, object]]:
        """What ``torch.fx`` traces: the inner module with the bound arguments fixed."""
        return self.module, self.bound()

    def select_traced_output(self, gm: fx.GraphModule) -> None:
        """Keep only the chosen output(s) in the traced program (in place)."""
        if self.output_key is None:
            return
        (out_node,) = [n for n in gm.graph.nodes if n.op == "output"]
        value = out_node.args[0]
        if (isinstance(value, fx.Node) and value.op == "call_function"
                and isinstance(value.target, type) and hasattr(value.target, "_fields")):
            value = value.target(*value.args, **value.kwargs)  # a namedtuple of fx nodes
        if isinstance(value, fx.Node):
            raise ValueError(
                "output_key needs the model's forward to return a dict / tuple literal (e.g. "
                "return {'logits': z, ...}); its output is computed by "
                f"'{value.name}', which the converter cannot look into")
        out_node.args = (select_output(value, self.output_key),)
        gm.graph.eliminate_dead_code()
        gm.recompile()


def output_names_for_keys(keys: Sequence[str], graph: object,
                          xs: Sequence[torch.Tensor]) -> list[list[str]]:
    """Output node names that say their key: ``"logits[0]"``, ``"logits[1]"``, ..."""
    with torch.no_grad():
        outs = graph(*xs)
    return [[f"{key}[{j}]" for j in range(o.reshape(o.shape[0], -1).shape[1])]
            for key, o in zip(keys, outs)]


def bind_forward(model: object, forward_kwargs: Mapping[str, object] | None,
                 output_key: object, n_ref: int | None = None) -> object:
    """``model`` itself, or a :class:`BoundForward` when arguments or outputs are chosen.

    Raises
    ------
    TypeError
        ``forward_kwargs`` not a mapping, names ``forward`` does not take, or the model is
        not a torch ``nn.Module``.
    ValueError
        A bound tensor with one row per reference sample (``n_ref`` > 1 rows): per-sample
        values are data, pass them as a model input.
    """
    if forward_kwargs is None and output_key is None:
        return model
    if not isinstance(model, nn.Module):
        raise TypeError(
            "forward_kwargs / output_key need a torch nn.Module (got "
            f"{type(model).__name__}); for a skorch net pass net.module_")
    kwargs = dict(forward_kwargs or {})
    if forward_kwargs is not None and not isinstance(forward_kwargs, Mapping):
        raise TypeError(f"forward_kwargs must be a dict, got {type(forward_kwargs).__name__}")
    params = inspect.signature(model.forward).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    named = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    unknown = [k for k in kwargs if k not in named and not takes_any]
    if unknown:
        raise TypeError(f"forward_kwargs {unknown} are not arguments of "
                        f"{type(model).__name__}.forward, which takes {named}")
    required = [n for n, p in params.items()
                if p.kind is p.KEYWORD_ONLY and p.default is p.empty and n not in kwargs]
    if required:
        raise TypeError(f"{type(model).__name__}.forward needs the keyword argument(s) "
                        f"{required}: pass them in forward_kwargs")
    for name, value in kwargs.items():
        if (isinstance(value, torch.Tensor) and n_ref is not None and n_ref > 1
                and value.ndim >= 1 and value.shape[0] == n_ref):
            raise ValueError(
                f"forward_kwargs[{name!r}] has one row per reference sample ({n_ref}): bound "
                "arguments are constants of the model, the same for every row. Pass a "
                "per-sample tensor as another model input (X as a list of inputs)")
    return BoundForward(model, kwargs, output_key)
