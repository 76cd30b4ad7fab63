"""Wall time and peak memory of one call.

Peak memory is the resident-set high-water mark (Linux ``VmHWM``) over the RSS just before
the call, in MiB. ``tracemalloc`` does not see torch's allocator, RSS does. The mark is reset
before each call by writing ``5`` to ``/proc/self/clear_refs``, so one process can measure
many calls; where that file is not writable, ``resource.getrusage(...).ru_maxrss`` is used and
only the first call of a process is meaningful (run one cell per process then). Freed heap
memory is returned to the OS (``malloc_trim``) before each reset.

The suite measures the calls of one cell together (:func:`measure_group`): their timed calls
alternate, so that the machine's speed drift hits both sides alike.

Time and memory of a fast call (under :data:`HEAVY_S`) come from separate calls: the memory
from one call right after the reset, the time from calls in the steady state that repeated
calls reach (no ``malloc_trim`` between them: handing the heap back before every call made
each call fault its pages in again, about 2 ms on a 5 ms ResNet call, on both sides).
"""

from __future__ import annotations

import ctypes
import re
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass

#: a warm-up longer than this is timed only once more (the suite must fit in minutes)
HEAVY_S = 0.5


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        return int(re.search(rf"{field}:\s+(\d+)", fh.read()).group(1))


def _release_free_memory() -> None:
    """Hand memory freed by earlier calls back to the OS (glibc ``malloc_trim``), so that the
    next call's peak counts what it needs, not what an earlier call left in the heap.
    (No ``gc.collect()``: it takes seconds in a process holding torch, captum and shap, and
    tensors are freed by reference counting.)"""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def reset_peak() -> bool:
    """Reset the RSS high-water mark; False where the kernel does not allow it."""
    _release_free_memory()
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def rss_mib() -> float:
    try:
        return _status_kib("VmRSS") / 1024
    except (OSError, AttributeError):
        return 0.0


def peak_mib() -> float:
    try:
        return _status_kib("VmHWM") / 1024
    except (OSError, AttributeError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class Measurement:
    value: object  # what the warm-up call returned
    seconds: float  # best wall time of the timed calls
    peak_mib: float  # RSS high-water over the RSS before the call, max over the timed calls


#: a fast call is timed at least this many times more (best of), within :data:`FAST_BUDGET_S`
FAST_REPEATS_MAX = 15
FAST_BUDGET_S = 0.2  # 0.3 s took the suite past 10 minutes on a slower 2-core host
#: a peer way whose first call took this many times its rival way's (and over
#: :data:`HEAVY_S`) is not timed again: it cannot be the faster way
SLOWER_WAY = 2.0

#: a first call longer than this is the measurement itself: its one-off costs (hooks set up,
#: allocator growth: milliseconds) are below 1 % of it, and a second call would double the
#: suite's time in the slow peers' cells (2.0 s until the sixth #20 session: the suite took
#: 641 s on a slower 2-core host; 0.5 s was tried and measured some of our first calls,
#: which pay one-off set-up of up to 0.3 s at one output)
SINGLE_S = 1.0


def best_seconds(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """The fastest of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones, in seconds
    (no memory measurement: for scripts that only time)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def measure(fn: Callable[[], object], repeats: int) -> Measurement:
    """Warm up once (its result is kept for the correctness check), then time and measure.

    A first call longer than :data:`SINGLE_S` is the measurement (time and memory). Else a
    second call measures the memory (after :func:`reset_peak`); when it took longer than
    :data:`HEAVY_S` it is also the time, else (a fast call) the time is the best of
    ``repeats`` (up to :data:`FAST_REPEATS_MAX` within :data:`FAST_BUDGET_S`) steady-state
    calls.
    """
    return measure_group({0: fn}, repeats)[0]


def measure_group(calls: dict[object, Callable[[], object]], repeats: int,
                  groups: dict[object, object] | None = None) -> dict[object, Measurement]:
    """:func:`measure` for calls that are compared with each other (ours and each peer
    way of one cell), their timed calls interleaved round by round.

    This machine's speed drifts by up to 2x over seconds (other tenants of the host): timed
    one side after the other, a slow phase could land on one side only. Here every call is
    warmed up first, then each gets its memory call (after :func:`reset_peak`, also timed),
    side by side; the fast calls (memory call under :data:`HEAVY_S`) then get the same
    number of further rounds, ``ours, peer, ours, peer, ...``, each one's time the best of
    its calls; a slower call keeps the time of its memory call. A first call over
    :data:`SINGLE_S` is that call's measurement, as in :func:`measure`.

    ``groups`` maps keys to rival groups (the ways of one peer, of which the faster is
    reported): a call whose first call took over :data:`HEAVY_S` and over
    :data:`SLOWER_WAY` times its group's fastest first call cannot be the faster way and is
    not called again (its warm-up is its measurement).
    """
    groups = groups or {}
    results: dict[object, Measurement] = {}
    values: dict[object, object] = {}
    warm: dict[object, tuple[float, float]] = {}
    for key, fn in calls.items():
        reset_peak()
        before = rss_mib()
        t0 = time.perf_counter()
        value = fn()
        seconds = time.perf_counter() - t0
        warm[key] = (seconds, peak_mib() - before)
        if seconds > SINGLE_S:
            results[key] = Measurement(value, seconds, warm[key][1])
        else:
            values[key] = value
    for key in list(values):
        rivals = [warm[k][0] for k in calls if k in groups and groups[k] == groups.get(key)]
        seconds = warm[key][0]
        if key in groups and seconds > HEAVY_S and seconds > SLOWER_WAY * min(rivals):
            results[key] = Measurement(values.pop(key), seconds, warm[key][1])
    best: dict[object, float] = {}
    peaks: dict[object, float] = {}
    for key in values:
        reset_peak()
        before = rss_mib()
        t0 = time.perf_counter()
        calls[key]()
        best[key] = time.perf_counter() - t0
        peaks[key] = peak_mib() - before
    fast = [key for key in values if best[key] <= HEAVY_S]
    if fast:
        slowest = max(best[key] for key in fast)
        rounds = min(FAST_REPEATS_MAX, max(repeats, int(FAST_BUDGET_S / max(slowest, 1e-4))))
        for _ in range(rounds):
            for key in fast:
                t0 = time.perf_counter()
                calls[key]()
                best[key] = min(best[key], time.perf_counter() - t0)
    for key, value in values.items():
        results[key] = Measurement(value, best[key], peaks[key])
    return {key: results[key] for key in calls}
