"""Base class of the explainers that propagate through the layer graph (LRP, DeepLift, ...).

An estimator, so it lives with the explainers: the propagation maths
(:mod:`sknn_explain.propagation`) never depends on the estimator layer.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from .._validation import SPACE
from ..convert.graph import Graph
from .base import Explainer

__all__ = ["GraphExplainer"]


class GraphExplainer(Explainer):
    """An :class:`~sknn_explain.Explainer` that propagates through the converted layer graph.

    ``_requires_graph = True`` makes ``Explainer._prepare_model`` convert the model (or raise
    the conversion error); the fitted ``model_`` is the converter's adapter, whose ``graph``
    is the explained graph (last activation already removed with ``ignore_last_act``).
    """

    #: tells ``Explainer._prepare_model`` to convert the model to a Graph (or raise)
    _requires_graph = True
    _parameter_constraints = {**Explainer._parameter_constraints, "space": SPACE}

    def _prepare_model(self, model: object, dtype: torch.dtype, device: torch.device):
        adapter = super()._prepare_model(model, dtype, device)
        if not hasattr(adapter, "graph"):
            raise TypeError(
                f"{type(self).__name__} propagates through the model's layers and needs a model "
                f"that converts to a sknn_explain Graph; could not convert a "
                f"{type(model).__name__}"
            )
        return adapter

    @property
    def graph_(self) -> Graph:
        """The explained graph (a private copy)."""
        graph = self.model_.graph
        if graph is None:  # pragma: no cover - explain() finishes a pending conversion first
            raise RuntimeError("the model's conversion has not finished; call explain(X)")
        return graph

    def _forward_all(self, xs: Sequence[torch.Tensor],
                     graph: Graph | None = None) -> dict[str, torch.Tensor]:
        """Every value of ``graph`` (default: :attr:`graph_`) at the inputs ``xs``."""
        if self.model_.pending:
            with torch.no_grad():
                self.model_.ensure(list(xs))
        try:
            with torch.no_grad():
                return (self.graph_ if graph is None else graph).forward_all(*xs)
        except (RuntimeError, IndexError) as err:
            shapes = ", ".join(str(tuple(x.shape)) for x in xs)
            raise ValueError(
                f"the model failed on input(s) of shape {shapes}: {str(err).splitlines()[0]}"
            ) from err

    def _forward_values(self, xs: Sequence[torch.Tensor],
                        names: Sequence[str]) -> dict[str, torch.Tensor]:
        """The values ``names`` of :attr:`graph_` at the inputs ``xs`` (only the nodes they
        depend on run, BatchNorm merged where it does not hide one of ``names``; see
        :meth:`Graph.forward_values` and
        :meth:`~sknn_explain.convert.GraphModel.executed_graph`)."""
        executed = getattr(self.model_, "executed_graph", None)
        try:
            with torch.no_grad():
                graph = self.graph_ if executed is None else executed(xs, keep=tuple(names))
                return graph.forward_values(list(xs), names)
        except (RuntimeError, IndexError) as err:
            shapes = ", ".join(str(tuple(x.shape)) for x in xs)
            raise ValueError(
                f"the model failed on input(s) of shape {shapes}: {str(err).splitlines()[0]}"
            ) from err

    #: values per propagated state chunk (rows x outputs x widest layer) for batch_size=None
    _STATE_BUDGET = 2**19

    def _rows_per_chunk(self, xs: Sequence[torch.Tensor], n_outputs: int, batch_size: int) -> int:
        """``batch_size`` if given, else rows such that a chunk's widest state ``(K, rows,
        *shape)`` holds about ``_STATE_BUDGET`` values (cache-friendly: the pass is memory
        bound, and smaller chunks of K-wide states run faster than one big one)."""
        if self.batch_size is not None:
            return int(self.batch_size)
        widest = self._widest_state(xs)
        return int(max(1, min(8192, self._STATE_BUDGET // max(1, n_outputs * widest))))

    def _widest_state(self, xs: Sequence[torch.Tensor]) -> int:
        """Values per row of the graph's widest node for inputs shaped like ``xs``.

        The first call per input shape runs the graph on one row; the width is cached with
        the fitted model (a refit starts a new cache), so later calls need no sizing pass.
        """
        cache = self.__dict__.get("_widest_cache_")
        if cache is None or cache[0] is not self.model_:
            cache = (self.model_, {})
            self.__dict__["_widest_cache_"] = cache
        key = tuple(tuple(x.shape[1:]) for x in xs)
        widest = cache[1].get(key)
        if widest is None:
            values = self._forward_all([x[:1] for x in xs])
            widest = max(v[0].numel() for v in values.values())
            cache[1][key] = widest
        return widest

    def _chunks(self, total: int, batch_size: int, desc: str) -> Iterator[tuple[int, int]]:
        starts = range(0, total, batch_size)
        if self.verbose:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc=desc, unit="chunk")
        for start in starts:
            yield start, min(total, start + batch_size)
