"""One turn laid out in time, to scale: the segments a timeline view draws.

From submit to the last token: the wait for a model load (if the request came
before the model was ready), the queue, templating and tokenizing the prompt,
prefill (the cached part costs no time; the evaluated part does), the first
token, each decode step, and the stop. Times are ms from the submit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from app.metrics import TurnMetrics
from app.turn_trace import TurnTrace

LOAD, QUEUE, TEMPLATE, PREFILL, DECODE = "load", "queue", "template", "prefill", "decode"


@dataclass
class Segment:
    kind: str
    start_ms: float
    end_ms: float
    label: str

    @property
    def ms(self) -> float:
        return self.end_ms - self.start_ms


@dataclass
class Timeline:
    segments: list[Segment] = field(default_factory=list)
    token_ms: list[float] = field(default_factory=list)  # each token's time since the submit
    first_token_ms: float | None = None
    end_ms: float = 0.0
    stop_reason: str | None = None
    prompt_cached: int = 0
    prompt_evaluated: int = 0


def build_timeline(trace: TurnTrace, m: TurnMetrics | None = None) -> Timeline:
    """The turn's segments from its trace (token times) and metrics (prefill time)."""
    m = m or trace.metrics or TurnMetrics()
    out = Timeline(stop_reason=m.stop_reason)
    queue = trace.queue_ms if trace.queue_ms is not None else (m.queue_ms or 0.0)
    load = min(trace.load_wait_ms, queue)
    t = 0.0
    if load > 0:
        out.segments.append(Segment(LOAD, 0.0, load, f"model load {load:.0f} ms"))
        t = load
    out.segments.append(Segment(QUEUE, t, queue, f"queue {queue - t:.0f} ms"))
    t = queue
    cached = m.prompt_tokens_cached or trace.prompt_tokens_cached or 0
    evaluated = m.prompt_tokens_evaluated
    if evaluated is None and trace.prompt_tokens is not None:
        evaluated = trace.prompt_tokens - cached
    out.prompt_cached, out.prompt_evaluated = cached, evaluated or 0
    submit = trace.submit_ns
    times = trace.token_times_ns
    if submit is not None and times:
        out.token_ms = [(x - submit) / 1e6 for x in times]
        first = out.token_ms[0]
    elif m.ttft_ms is not None:
        first = m.ttft_ms
    else:
        first = t + (m.prefill_ms or 0.0)
    prefill = m.prefill_ms or 0.0
    prefill_start = max(t, first - prefill)
    if prefill_start > t:
        out.segments.append(
            Segment(TEMPLATE, t, prefill_start, f"template + tokenize {prefill_start - t:.0f} ms")
        )
    out.segments.append(
        Segment(
            PREFILL,
            prefill_start,
            first,
            f"prefill {first - prefill_start:.0f} ms: {cached} cached + {evaluated or 0} evaluated",
        )
    )
    out.first_token_ms = first
    end = out.token_ms[-1] if out.token_ms else first + (m.decode_ms or 0.0)
    n = m.output_tokens if m.output_tokens is not None else len(out.token_ms)
    rate = f" @ {m.decode_tok_s:.1f} tok/s" if m.decode_tok_s else ""
    out.segments.append(Segment(DECODE, first, end, f"decode {n} tok {end - first:.0f} ms{rate}"))
    out.end_ms = end
    return out
