"""Summaries of timing samples: percentiles of latencies and medians of rates.

Pure arithmetic over numbers the benchmarks collected; must not time anything
itself, start processes or touch a database.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

NANOS_PER_MICRO = 1_000


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted samples (`fraction` in [0, 1])."""
    if not ordered:
        raise ValueError("no samples")
    rank = min(len(ordered), max(1, math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


@dataclass(frozen=True, slots=True)
class Latency:
    """Latency percentiles in microseconds over `samples` timed calls."""

    samples: int
    median_us: float
    p90_us: float
    p99_us: float
    max_us: float

    @classmethod
    def of_nanos(cls, nanos: Sequence[int]) -> Latency:
        ordered = sorted(nanos)
        return cls(
            samples=len(ordered),
            median_us=statistics.median(ordered) / NANOS_PER_MICRO,
            p90_us=percentile(ordered, 0.90) / NANOS_PER_MICRO,
            p99_us=percentile(ordered, 0.99) / NANOS_PER_MICRO,
            max_us=ordered[-1] / NANOS_PER_MICRO,
        )


def rate(count: int, nanos: int) -> float:
    """Items per second for `count` items handled in `nanos` nanoseconds."""
    return count * 1_000_000_000 / max(nanos, 1)


def median_rate(rates: Sequence[float]) -> float:
    return float(statistics.median(rates))
