"""TurnMetrics for a remote turn: what the client measured, plus what the server reported.

Measured here, on the client's monotonic clock: queue time (our side: submit
until the request is sent), TTFT (submit to the first streamed token), gaps
between streamed chunks (inter-token latency) and the decode rate.
Taken from the server where it reports them:
- llama.cpp server's `timings` (prompt_n, cache_n, prompt_ms, predicted_n, predicted_ms);
- the `usage` block (stream_options.include_usage: vLLM, llama.cpp, Ollama, OpenAI);
- the Prometheus /metrics KV cache usage (fetched after the turn, server-wide),
  used when the slot's own cells are not known.
Anything no one reported stays None: shown as unknown, never estimated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.metrics import TurnMetrics, decode_figures, ns_to_ms, rate_per_s

# Prometheus gauges of KV cache fill, as a fraction 0..1 despite vLLM's "perc".
KV_USAGE_GAUGES = (
    "vllm:kv_cache_usage_perc",  # vLLM V1
    "vllm:gpu_cache_usage_perc",  # vLLM V0
    "llamacpp:kv_cache_usage_ratio",  # llama.cpp server (older releases)
)


@dataclass
class ServerFigures:
    """What the server said about one turn (each part None when it said nothing)."""

    timings: dict[str, Any] | None = None
    usage: dict[str, Any] | None = None
    finish_reason: str | None = None
    kv_fill: float | None = None  # from /metrics, server-wide
    slot_n_ctx: int | None = None  # from /slots: the context of one slot
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ClientTimes:
    submit_ns: int
    sent_ns: int | None = None  # the request left our queue
    token_times: list[int] = field(default_factory=list)  # arrival of each content chunk
    end_ns: int | None = None


def _int(data: dict[str, Any] | None, key: str) -> int | None:
    value = (data or {}).get(key)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _float(data: dict[str, Any] | None, key: str) -> float | None:
    value = (data or {}).get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def stop_reason(finish_reason: str | None, had_stop_strings: bool) -> str | None:
    """OpenAI's finish_reason in our STOP_REASONS terms. "stop" covers both the
    model's end of turn and a stop string; without stop strings it can only be the first."""
    if finish_reason == "length":
        return "length"
    if finish_reason == "stop":
        return "stop" if had_stop_strings else "eos"
    return None


def build_metrics(times: ClientTimes, server: ServerFigures, reason: str | None) -> TurnMetrics:
    end = times.end_ns if times.end_ns is not None else times.submit_ns
    tokens = times.token_times
    timings, usage = server.timings, server.usage
    m = TurnMetrics(stop_reason=reason, total_ms=ns_to_ms(end - times.submit_ns))
    if times.sent_ns is not None:
        m.queue_ms = ns_to_ms(times.sent_ns - times.submit_ns)
    if tokens:
        m.ttft_ms = ns_to_ms(tokens[0] - times.submit_ns)
        for name, value in decode_figures(tokens).items():
            setattr(m, name, value)

    # Token counts: the server's own, else the streamed chunks we counted (one
    # chunk carries one token on llama.cpp servers; vLLM may pack several, and
    # reports usage, which then wins).
    counted = _int(usage, "completion_tokens")
    if counted is None:
        counted = _int(timings, "predicted_n")
    m.output_tokens = counted if counted is not None else len(tokens)
    if counted is not None and len(tokens) > 1 and counted != len(tokens):
        m.decode_tok_s = rate_per_s(counted - 1, tokens[-1] - tokens[0])

    evaluated = _int(timings, "prompt_n")
    cached = _int(timings, "cache_n")
    if cached is None:
        cached = _int((usage or {}).get("prompt_tokens_details"), "cached_tokens")
    prompt = _int(usage, "prompt_tokens")
    if prompt is None and evaluated is not None:
        prompt = evaluated + (cached or 0)
    if evaluated is None and prompt is not None and cached is not None:
        evaluated = prompt - cached
    m.prompt_tokens, m.prompt_tokens_cached, m.prompt_tokens_evaluated = prompt, cached, evaluated
    prompt_ms = _float(timings, "prompt_ms")
    if prompt_ms is not None:
        m.prefill_ms = prompt_ms
        if evaluated:
            m.prefill_tok_s = evaluated * 1000.0 / prompt_ms if prompt_ms > 0 else None

    # KV: the slot's context size from /slots; what this turn left in it from
    # timings (cached + evaluated prompt + generated tokens). When both are
    # known the fill is theirs, so the cells and the percentage shown together
    # agree; otherwise the server-wide fill from /metrics where exposed (vLLM).
    m.kv_cells_total = server.slot_n_ctx
    predicted = _int(timings, "predicted_n")
    if evaluated is not None and predicted is not None and timings is not None:
        m.kv_cells_used = (cached or 0) + evaluated + predicted
    if m.kv_cells_used is not None and m.kv_cells_total:
        m.kv_fill = m.kv_cells_used / m.kv_cells_total
    elif server.kv_fill is not None:
        m.kv_fill = server.kv_fill
    return m


def parse_prometheus(text: str) -> dict[str, float]:
    """The first sample of each metric in Prometheus text format (labels ignored)."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name_part, _, rest = line.partition(" ")
        if "{" in name_part or ("{" in line and "}" in line):
            name_part = line.split("{", 1)[0]
            rest = line.rsplit("}", 1)[1]
        values = rest.split()
        if not values:
            continue
        try:
            value = float(values[0])
        except ValueError:
            continue
        found.setdefault(name_part, value)
    return found


def kv_fill_from_metrics(text: str) -> float | None:
    samples = parse_prometheus(text)
    for name in KV_USAGE_GAUGES:
        if name in samples:
            return samples[name]
    return None
