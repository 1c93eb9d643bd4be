"""The one per-turn metrics record, shared by every engine, the CLI, storage and the GUI.

Field names are the export schema (JSON keys, SQLite columns). A figure a
backend cannot know is None, never invented. All times come from
time.monotonic_ns(); on Linux that is CLOCK_MONOTONIC in every process, so
worker and parent timestamps can be subtracted.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

STOP_REASONS: tuple[str, ...] = ("eos", "length", "stop", "cancelled", "error")

NS_PER_MS = 1_000_000


@dataclass
class TurnMetrics:
    queue_ms: float | None = None
    ttft_ms: float | None = None
    prefill_ms: float | None = None
    prompt_tokens: int | None = None
    prompt_tokens_cached: int | None = None
    prompt_tokens_evaluated: int | None = None
    prefill_tok_s: float | None = None
    output_tokens: int | None = None
    decode_ms: float | None = None
    decode_tok_s: float | None = None
    itl_ms_p50: float | None = None
    itl_ms_p95: float | None = None
    itl_ms_p99: float | None = None
    kv_cells_used: int | None = None
    kv_cells_total: int | None = None
    kv_fill: float | None = None
    kv_bytes_used: int | None = None
    kv_bytes_total: int | None = None
    stop_reason: str | None = None
    total_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TurnMetrics:
        return cls(**{name: data.get(name) for name in FIELD_NAMES})


FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(TurnMetrics))


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (numpy's default method); None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ns_to_ms(ns: int) -> float:
    return ns / NS_PER_MS


def rate_per_s(count: int, elapsed_ns: int) -> float | None:
    if count <= 0 or elapsed_ns <= 0:
        return None
    return count * 1e9 / elapsed_ns


def decode_figures(token_times_ns: Sequence[int]) -> dict[str, float | None]:
    """decode_ms, decode_tok_s and inter-token latency percentiles from token timestamps.

    decode_tok_s is (output_tokens - 1) over first-to-last token time: the
    first token's cost belongs to prefill (it is the TTFT).
    """
    gaps = [ns_to_ms(b - a) for a, b in itertools.pairwise(token_times_ns)]
    span = token_times_ns[-1] - token_times_ns[0] if len(token_times_ns) > 1 else 0
    return {
        "decode_ms": ns_to_ms(span) if len(token_times_ns) > 1 else None,
        "decode_tok_s": rate_per_s(len(token_times_ns) - 1, span),
        "itl_ms_p50": percentile(gaps, 50),
        "itl_ms_p95": percentile(gaps, 95),
        "itl_ms_p99": percentile(gaps, 99),
    }
