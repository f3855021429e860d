"""The one timer every row uses: interleaved rounds, medians, per-op seconds.

Invariants: a row's two sides are always timed alternately (``paired``), so a
swing of the shared disk hits both; only the work between the two clock reads
of ``seconds`` is timed (set-up such as deleting a view happens before it);
every duration in the table is formatted by ``us``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def seconds(work: Callable[[], object]) -> float:
    """Wall-clock seconds ``work()`` takes (``time.perf_counter``)."""
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def per_op(fn: Callable[[int], None], n: int) -> float:
    """Seconds per operation of ``fn(n)``, which performs ``n`` operations."""
    return seconds(lambda: fn(n)) / n


def paired(
    ours: Callable[[], float], base: Callable[[], float], rounds: int
) -> tuple[float, float]:
    """Run both alternately ``rounds`` times; medians of their per-op seconds.

    Odd rounds run the baseline first, so neither side always pays for a
    cold cache or profits from a warm one.
    """
    a: list[float] = []
    b: list[float] = []
    for i in range(rounds):
        if i % 2:
            b.append(base())
            a.append(ours())
        else:
            a.append(ours())
            b.append(base())
    return statistics.median(a), statistics.median(b)


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, nearest rank from below."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def us(duration: float) -> str:
    """A duration as the table prints it: µs under 10 ms, ms from there."""
    return f"{duration * 1e6:,.0f} µs" if duration < 0.01 else f"{duration * 1e3:,.1f} ms"
