"""The ``Source`` interface every converter implements, and the verification of its graph.

Every converter turns a user model into a :class:`Source`: an object that knows the model's
number of inputs (and, when the model stores it, their shapes and names), can ``build`` the
layer graph from a batch of example inputs (shapes are needed for reshapes, broadcasting and
negative axes) and can run the *original* model as an independent ``reference``. The graph is
accepted only when it reproduces the reference (see :func:`verify`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .._model import flatten_outputs
from .errors import ConversionError, VerificationError
from .graph import Graph

__all__ = ["Source", "TOLERANCE", "example_inputs", "finish", "private_inputs", "verify",
           "wrap_unexpected"]

#: maximal relative deviation of the graph from the original model, per dtype
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-10}


class Source:
    """A model prepared for conversion (private copy, cast to ``dtype`` / ``device``).

    Attributes
    ----------
    description : str
        What the model is, for messages (``"MLPClassifier"``, ``"torch module Net"``).
    n_inputs : int
    input_shapes : list of tuple or None
        Per-sample input shapes when the model itself determines them.
    input_names, output_names : nested lists or None
        Names the model carries (``feature_names_in_``, ``classes_``).
    ends_with_activation : bool
        Whether the first output is produced by an activation (for ``ignore_last_act``).
    """

    description = "model"
    n_inputs = 1
    input_shapes: list[tuple[int, ...]] | None = None
    input_names: list | None = None
    output_names: list | None = None
    ends_with_activation = False

    def __init__(self, dtype: torch.dtype, device: torch.device) -> None:
        self.dtype, self.device = dtype, device

    def build(self, xs: Sequence[torch.Tensor]) -> Graph:
        """The layer graph; ``xs`` is an example batch (model layout, ``dtype``/``device``)."""
        raise NotImplementedError

    def as_example(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Random example inputs made valid for the model (e.g. ids of embeddings)."""
        return xs

    def reference(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor] | None:
        """The original model's outputs on ``xs`` as ``(n, k)`` tensors (None: no reference)."""
        return None

    def check_inputs(self, xs: Sequence[torch.Tensor]) -> None:
        """Raise (as the original model would) when the model cannot run on ``xs``."""
        self.reference(private_inputs(xs))


def example_inputs(
    shapes: Sequence[tuple[int, ...]], n: int, dtype: torch.dtype, device: torch.device, seed: int
) -> list[torch.Tensor]:
    """Seeded standard-normal inputs (a private generator: the global RNG is left alone)."""
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn((n, *s), generator=gen, dtype=torch.float64).to(dtype=dtype,
                                                                        device=device)
            for s in shapes]


def private_inputs(xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Detached copies of ``xs`` that a model may modify in place without harm.

    The original model and the converted graph (or the caller's data and a model run) must
    never share input tensors: a model whose forward does ``x.sub_(mean)`` would otherwise
    change what the other side sees (and, before this copy, let a graph that drops the
    in-place operation pass its own verification).
    """
    return [x.detach().clone() for x in xs]


def verify(graph: Graph, reference: list[torch.Tensor], xs: Sequence[torch.Tensor],
           description: str) -> float:
    """Compare the graph's outputs on ``xs`` with the original model's (``reference``).

    The deviation is ``max |graph - model| / max(1, max |model|)`` per output; it must stay
    below :data:`TOLERANCE` (1e-5 for float, 1e-10 for double).

    Returns
    -------
    float
        The largest deviation.

    Raises
    ------
    VerificationError
        With the size of the difference.
    """
    tol = TOLERANCE.get(xs[0].dtype, 1e-5)
    with torch.no_grad():
        got = flatten_outputs(graph(*private_inputs(xs)))
    if len(got) != len(reference):
        raise VerificationError(
            f"the converted graph of the {description} has {len(got)} output(s), the model "
            f"{len(reference)}"
        )
    worst = 0.0
    for i, (g, r) in enumerate(zip(got, reference)):
        r = r.to(dtype=g.dtype, device=g.device)
        if g.shape != r.shape:
            raise VerificationError(
                f"output {i} of the converted graph of the {description} has shape "
                f"{tuple(g.shape)}, the model's {tuple(r.shape)}"
            )
        if not bool(torch.isfinite(r).all()):
            raise VerificationError(
                f"the {description} returns NaN or inf on the example inputs (X_ref), so its "
                "conversion cannot be verified on them (e.g. attention whose key padding "
                "mask pads every key); pass example rows on which the model is finite")
        scale = max(1.0, float(r.abs().max())) if r.numel() else 1.0
        diff = float((g - r).abs().max()) / scale if r.numel() else 0.0
        if not np.isfinite(diff) or diff > tol:
            raise VerificationError(
                f"the converted graph does not reproduce the {description}: output {i} "
                f"differs by {diff:.3g} (max |difference| / max(1, max |output|); tolerance "
                f"{tol:g} for {str(g.dtype).replace('torch.', '')}). This is a converter "
                "bug or an operation the converter misreads; please report the model structure"
            )
        worst = max(worst, diff)
    return worst


def finish(
    source: Source,
    shapes: Sequence[tuple[int, ...]],
    check_data: Sequence[torch.Tensor] | None = None,
    *,
    check: bool = True,
) -> Graph:
    """Build the graph for per-sample input ``shapes`` and verify it against the model.

    The graph is built from a seeded random batch of 2 and verified on a different batch
    (3 random rows plus up to 8 rows of ``check_data``), so batch-size dependent code is
    caught.
    """
    shapes = [tuple(int(d) for d in s) for s in shapes]
    if len(shapes) != source.n_inputs:
        raise ValueError(
            f"the {source.description} takes {source.n_inputs} input(s), got "
            f"{len(shapes)} input shape(s)"
        )
    build_xs = source.as_example(example_inputs(shapes, 2, source.dtype, source.device, seed=0))
    graph = source.build(build_xs)  # build may run (and so modify) its private example batch
    if check:
        xs = source.as_example(example_inputs(shapes, 3, source.dtype, source.device, seed=1))
        if check_data is not None:
            xs = [
                torch.cat([x, d[:8].detach().to(dtype=x.dtype, device=x.device)])
                for x, d in zip(xs, check_data)
            ]
        with torch.no_grad():  # each side gets its own copy: a model may modify its input
            ref = source.reference(private_inputs(xs))
        if ref is not None:
            verify(graph, ref, xs, source.description)
    graph.input_shapes = shapes
    if graph.input_names is None and source.input_names is not None:
        graph.input_names = source.input_names
    if graph.output_names is None and source.output_names is not None:
        graph.output_names = source.output_names
    return graph


def wrap_unexpected(err: Exception, description: str) -> ConversionError:
    """A converter failure that is not a ConversionError, reported as one."""
    if isinstance(err, ConversionError):
        return err
    msg = str(err).splitlines()[0] if str(err) else type(err).__name__
    return ConversionError(f"could not convert the {description}: {type(err).__name__}: {msg}")
