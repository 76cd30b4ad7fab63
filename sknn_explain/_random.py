"""Randomness keyed by global row index, so that chunking never changes the draws.

Every random draw of an explanation (SmoothGrad's noise, ExpectedGradients' references and
alphas, ...) comes from a stream keyed by ``random_state`` and the *global* index of the
sample's row. A :class:`RowContext` tells a block of rows where it sits in the whole data
set (the Dask integration sets it per block), so an in-process run and a distributed run
with the same integer ``random_state`` give the same numbers.

This module is a bottom floor: it imports nothing from the package.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

import numpy as np

__all__ = ["ROW_CONTEXT", "RowContext", "random_stream", "random_streams", "row_context",
           "row_generator", "row_keys", "seed_entropy"]


def seed_entropy(random_state: object) -> int | None:
    """The integer entropy behind an sklearn-style ``random_state`` (None: fresh entropy).

    An int is used as is; a ``RandomState`` / ``Generator`` instance is consumed once.
    """
    if random_state is None:
        entropy = None
    elif isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        entropy = int(random_state)
    elif isinstance(random_state, np.random.RandomState):
        entropy = int(random_state.randint(0, 2**31 - 1))
    elif isinstance(random_state, np.random.Generator):
        entropy = int(random_state.integers(0, 2**32 - 1, endpoint=True))
    else:
        raise TypeError(
            f"random_state must be None, an int, a RandomState or a Generator, got "
            f"{type(random_state).__name__}"
        )
    return entropy


def random_streams(random_state: object, k: int) -> list[np.random.Generator]:
    """``k`` independent numpy generators derived from an sklearn-style ``random_state``.

    An int gives the same streams on every call (same seed, same attributions); None gives
    fresh entropy; a ``RandomState`` / ``Generator`` instance is consumed once for a seed.
    """
    entropy = seed_entropy(random_state)
    return [np.random.default_rng(s) for s in np.random.SeedSequence(entropy).spawn(k)]


def random_stream(random_state: object, index: int, k: int) -> np.random.Generator:
    """``random_streams(random_state, k)[index]``, without building the other streams."""
    entropy = seed_entropy(random_state)
    return np.random.default_rng(np.random.SeedSequence(entropy).spawn(k)[index])


def row_keys(random_state: object, k: int) -> list[np.ndarray]:
    """``k`` independent 128-bit Philox keys derived from ``random_state``.

    With :func:`row_generator` they give one random stream per *global* row index, so the
    draws of a sample do not depend on how the data are chunked (in-process batches or
    Dask blocks): the same ``random_state`` gives the same numbers either way.
    """
    entropy = seed_entropy(random_state)
    return [s.generate_state(2, np.uint64) for s in np.random.SeedSequence(entropy).spawn(k)]


def row_generator(key: np.ndarray, row: int) -> np.random.Generator:
    """The random stream of global row ``row`` under ``key`` (counter-based, no state)."""
    return np.random.Generator(np.random.Philox(key=key, counter=[0, 0, int(row), 0]))


@dataclass(frozen=True)
class RowContext:
    """Where a block of rows sits in the whole data set (set by the Dask integration).

    Attributes
    ----------
    offset : int
        Global index of the block's first row (keys the per-row random draws).
    data_range : list of (float, float) or None
        Per input, ``(max, min)`` over the whole data set (SmoothGrad's noise scale), or
        None to use the block itself (in-process: the block is the whole data set).
    """

    offset: int = 0
    data_range: tuple | None = None


#: the current block's context (a ContextVar: safe with threaded Dask workers)
ROW_CONTEXT: ContextVar[RowContext | None] = ContextVar("sknn_explain_row_context",
                                                         default=None)


def row_context() -> RowContext:
    """The current :class:`RowContext` (offset 0, no data range outside Dask blocks)."""
    return ROW_CONTEXT.get() or RowContext()
