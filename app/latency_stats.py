"""Tail latency: session percentiles of TTFT and inter-token latency, and an ITL histogram.

A mean hides the slow tokens a user feels as stutter; p95 and p99 show them.
The session keeps every turn's TTFT and every inter-token gap it has seen.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from app.metrics import percentile

PERCENTILES = (50, 95, 99)


@dataclass
class Percentiles:
    p50: float | None
    p95: float | None
    p99: float | None
    count: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Percentiles:
        p50, p95, p99 = (percentile(values, q) for q in PERCENTILES)
        return cls(p50, p95, p99, len(values))


@dataclass
class SessionLatency:
    """TTFTs and inter-token gaps of every turn this session (ms)."""

    ttft_ms: list[float] = field(default_factory=list)
    itl_ms: list[float] = field(default_factory=list)

    def add_turn(self, ttft_ms: float | None, itl_ms: Iterable[float]) -> None:
        if ttft_ms is not None:
            self.ttft_ms.append(ttft_ms)
        self.itl_ms.extend(itl_ms)

    def ttft(self) -> Percentiles:
        return Percentiles.of(self.ttft_ms)

    def itl(self) -> Percentiles:
        return Percentiles.of(self.itl_ms)


@dataclass
class Histogram:
    edges: list[float]  # len(counts) + 1 bin edges, ms
    counts: list[int]


def itl_histogram(itl_ms: Sequence[float], bins: int = 30) -> Histogram:
    """Equal-width bins from 0 to the largest gap (a tail is then plain to see)."""
    if not itl_ms:
        return Histogram([0.0, 1.0], [0])
    top = max(itl_ms)
    top = top if top > 0 else 1.0
    width = top / bins
    counts = [0] * bins
    for value in itl_ms:
        counts[min(bins - 1, max(0, math.floor(value / width)))] += 1
    return Histogram([i * width for i in range(bins + 1)], counts)
