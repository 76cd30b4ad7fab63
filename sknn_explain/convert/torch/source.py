"""``TorchSource``: a torch module prepared for conversion (private copy, fx trace, support
check), built into a graph on an example batch and run as the reference."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from ..._forward_binding import output_names_for_keys
from ..._model import flatten_outputs, private_copy
from ..._naming import class_names_for
from ...layers import Activation
from ..errors import ConversionError, ExampleInputsError, UnsupportedLayerError
from ..graph import Graph
from ..source import Source, private_inputs
from .attention import code_inputs
from .handlers import ends_with_activation, handler_for, scan
from .recurrent import intercept
from .shapes import Recorder, infer_input_shapes
from .tracing import trace_module
from .walker import Converter

__all__ = ["TorchSource"]


class TorchSource(Source):
    """A torch module: private copy, fx trace, shape-free support check.

    Parameters
    ----------
    module : nn.Module
        The user's module (copied; never modified).
    post : Activation, optional
        Applied to the first output (skorch's predict nonlinearity).
    class_names : sequence, optional
        Names of the first output's units.
    """

    def __init__(self, module: nn.Module, dtype: torch.dtype, device: torch.device, *,
                 post: Activation | None = None, class_names: Sequence | None = None,
                 description: str | None = None) -> None:
        super().__init__(dtype, device)
        self.description = description or f"torch module {type(module).__name__}"
        self.module = private_copy(module, dtype, device)
        self.post = post
        self.gm, self.inputs = trace_module(self.module)
        self.n_inputs = len(self.inputs)
        if self.n_inputs == 0:
            raise ConversionError(f"the {self.description} takes no tensor input")
        self.ends_with_activation = post is not None or ends_with_activation(self.gm)
        try:
            scan(self.gm, self.inputs)
        except UnsupportedLayerError as err:
            err.with_ends_with_activation(self.ends_with_activation)  # for the fallback
            raise
        self.input_shapes = infer_input_shapes(self.gm, self.inputs)
        self.code_inputs = code_inputs(self.gm, self.inputs)  # ids of nn.Embedding: int64
        self.class_names = None if class_names is None else list(class_names)

    def _run_original(self, xs: Sequence[torch.Tensor]) -> object:
        with torch.no_grad():  # on copies: the module may modify its inputs in place
            return self.module(*self._cast_codes(private_inputs(xs)))

    def _cast_codes(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        return [x.long() if code else x for x, code in zip(xs, self.code_inputs)]

    def as_example(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Random rows -> valid ids (``0 .. num_embeddings - 1``) for the embedding inputs."""
        return [x if not code else (x.abs() * 997).floor() % code
                for x, code in zip(xs, self.code_inputs)]

    def check_inputs(self, xs: Sequence[torch.Tensor]) -> None:
        self._run_original(xs)

    def build(self, xs: Sequence[torch.Tensor]) -> Graph:
        rec = Recorder(self.gm)
        try:
            with torch.no_grad():
                rec.run(*self._cast_codes(private_inputs(xs)))
        except Exception as err:  # noqa: BLE001
            shapes = ", ".join(str(tuple(x.shape[1:])) for x in xs)
            raise ExampleInputsError(
                f"the {self.description} failed on example inputs of per-sample shape "
                f"{shapes}: {str(err).splitlines()[0] if str(err) else type(err).__name__}; "
                "pass the right input_shape (channels first) or X_ref"
            ) from err
        graph = Converter(self.gm, self.inputs, rec.values, self.dtype, self.device,
                          handler_for, intercept).run(
            None if self.post is None else copy.deepcopy(self.post))
        if self.class_names is not None:
            with torch.no_grad():
                first = graph(*private_inputs(xs))[0]
            k = first.reshape(first.shape[0], -1).shape[1] if first.ndim > 1 else 1
            names = class_names_for(self.class_names, k)
            if names is not None:
                graph.output_names = [names] + [None] * (len(graph.outputs) - 1)
        label = getattr(self.module, "output_label", None)
        if callable(label) and label() is not None and graph.output_names is None:
            graph.output_names = output_names_for_keys(label(), graph, xs)
        return graph

    def reference(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        outs = flatten_outputs(self._run_original(xs))
        if self.post is not None:
            with torch.no_grad():
                outs[0] = flatten_outputs(self.post(outs[0]))[0]
        return outs

