"""Why was this turn slow? One named cause per turn, from the turn's own split.

A turn's wait splits into parts that have different fixes: waiting for a model
load (cold start), waiting behind other requests (queue), evaluating the prompt
(prefill, which decides time to first token) and producing the answer token by
token (decode). A turn is slow when its first token comes late or the whole
reply takes long, or when it decodes slower than anyone reads. Its cause is the
part that took the most time, named by what made that part big:

- prefill: a long prompt, or a full context (old messages were left out, so the
  history that was in the cache is evaluated again);
- decode: a long answer, or a model too large for the hardware (decode slower
  than reading speed, memory too tight to hold it, or far under this machine's
  bandwidth ceiling while slower than the model's own best);
- queue: waiting behind other requests; the load part of it: cold start.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.bandwidth import decode_ceiling_tok_s
from app.engine.events import ModelLoaded
from app.metrics import TurnMetrics
from app.models.fit import verdict_for
from app.turn_trace import TraceRecorder, TurnTrace

NOT_SLOW = "not_slow"
LONG_PROMPT = "long_prompt"
LONG_ANSWER = "long_answer"
QUEUE_WAIT = "queue_wait"
FULL_CONTEXT = "full_context"
TOO_LARGE = "too_large"
COLD_START = "cold_start"

CAUSES: tuple[str, ...] = (
    NOT_SLOW,
    LONG_PROMPT,
    LONG_ANSWER,
    QUEUE_WAIT,
    FULL_CONTEXT,
    TOO_LARGE,
    COLD_START,
)

LABELS: dict[str, str] = {
    NOT_SLOW: "not slow",
    LONG_PROMPT: "long prompt",
    LONG_ANSWER: "long answer",
    QUEUE_WAIT: "queue wait",
    FULL_CONTEXT: "full context",
    TOO_LARGE: "model too large for this hardware",
    COLD_START: "cold start",
}

ADVICE: dict[str, str] = {
    NOT_SLOW: "Nothing to fix: the first token came quickly and the reply finished soon.",
    LONG_PROMPT: "Shorten the prompt or the pasted text; a prompt the cache already holds "
    "(the same start as the last turn) costs almost nothing to evaluate again.",
    LONG_ANSWER: "Ask for a shorter answer or lower max tokens: every output token costs "
    "one more pass over the whole model.",
    QUEUE_WAIT: "Wait for the running reply to finish or stop it; requests are served one "
    "at a time, so each one waits for all those ahead.",
    FULL_CONTEXT: "Start a new conversation or raise the context size: the oldest messages "
    "no longer fit, so the history was cut and evaluated again.",
    TOO_LARGE: "Use a smaller or more compressed model (a lower quantization), or offload "
    "more layers to a GPU: decoding reads the whole model for every token.",
    COLD_START: "Keep the model loaded between turns: the first request after a start "
    "waits for the model to load.",
}


@dataclass(frozen=True)
class Thresholds:
    """When a turn counts as slow. Defaults: what a person at a chat window notices."""

    slow_ttft_ms: float = 1000.0  # a first token later than about a second
    slow_total_ms: float = 2000.0  # a whole reply that takes more than a couple of seconds
    slow_wait_ms: float = 500.0  # waiting before any work starts (a load, a queue)
    reading_tok_s: float = 8.0  # people read about 5-8 tokens a second
    # Decode far under the bandwidth ceiling and under half the model's own best.
    far_under_ceiling: float = 0.25
    under_baseline: float = 0.5
    # Other programs using this many cores' worth of CPU during the turn make every
    # rate slow; then a slow decode says nothing about the model's size.
    busy_cores: float = 0.5


@dataclass
class ModelContext:
    """What the diagnosis knows about the model and the machine (all optional)."""

    baseline_decode_tok_s: float | None = None  # this model's best decode rate this session
    ceiling_decode_tok_s: float | None = None  # bandwidth / bytes read per token
    memory_verdict: str | None = None  # app.models.fit verdict: "fits", "tight", "won't fit"
    n_layers: int | None = None
    n_layers_offloaded: int | None = None
    gpu_offload_supported: bool = False


@dataclass
class Diagnosis:
    cause: str
    label: str
    sentence: str  # what happened, with the numbers
    advice: str  # one plain sentence: what to do about it
    parts_ms: dict[str, float] = field(default_factory=dict)  # the split it was decided on

    def to_dict(self) -> dict[str, Any]:
        return {
            "cause": self.cause,
            "label": self.label,
            "sentence": self.sentence,
            "advice": self.advice,
            "parts_ms": {k: round(v, 1) for k, v in self.parts_ms.items()},
        }

    def line(self) -> str:
        """One line for a terminal: the cause, what happened, what to do."""
        return f"diagnosis: {self.label}. {self.sentence} {self.advice}"


def split_ms(m: TurnMetrics, trace: TurnTrace | None = None) -> dict[str, float]:
    """The turn's time in parts: load wait, queue, prefill (to first token), decode."""
    queue_total = m.queue_ms or 0.0
    load = min(trace.load_wait_ms, queue_total) if trace is not None else 0.0
    ttft = m.ttft_ms
    prefill = max(0.0, ttft - queue_total) if ttft is not None else (m.prefill_ms or 0.0)
    if m.decode_ms is not None:
        decode = m.decode_ms
    elif m.total_ms is not None and m.ttft_ms is not None:
        decode = max(0.0, m.total_ms - m.ttft_ms)
    else:
        decode = 0.0
    return {"load": load, "queue": queue_total - load, "prefill": prefill, "decode": decode}


def _too_large_evidence(
    m: TurnMetrics, model: ModelContext, th: Thresholds, busy: bool
) -> str | None:
    """Why decode looks limited by the model's size on this hardware, or None."""
    rate = m.decode_tok_s
    if rate is None or (m.output_tokens or 0) < 2:
        return None
    if busy:
        if model.memory_verdict in ("tight", "won't fit"):
            return f"its memory need is {model.memory_verdict} for this machine's RAM"
        return None
    if rate < th.reading_tok_s:
        return f"it decoded {rate:.1f} tok/s, slower than people read"
    if model.memory_verdict in ("tight", "won't fit"):
        return f"its memory need is {model.memory_verdict} for this machine's RAM"
    base, ceiling = model.baseline_decode_tok_s, model.ceiling_decode_tok_s
    if (
        ceiling
        and base
        and rate < th.far_under_ceiling * ceiling
        and rate < th.under_baseline * base
    ):
        return (
            f"it decoded {rate:.1f} tok/s, {rate / ceiling:.0%} of this machine's ceiling "
            f"and under half its best ({base:.1f} tok/s)"
        )
    if (
        model.gpu_offload_supported
        and model.n_layers
        and (model.n_layers_offloaded or 0) < model.n_layers
        and base
        and rate < th.under_baseline * base
    ):
        return f"only {model.n_layers_offloaded or 0} of {model.n_layers} layers are on the GPU"
    return None


def diagnose(
    m: TurnMetrics,
    trace: TurnTrace | None = None,
    model: ModelContext | None = None,
    thresholds: Thresholds | None = None,
) -> Diagnosis:
    """Name the dominant cause of this turn's wait, or "not slow"."""
    th = thresholds or Thresholds()
    model = model or ModelContext()
    parts = split_ms(m, trace)
    others = trace.others_cores if trace is not None else None
    busy = others is not None and others >= th.busy_cores
    too_large = _too_large_evidence(m, model, th, busy)
    ttft = m.ttft_ms if m.ttft_ms is not None else parts["load"] + parts["queue"] + parts["prefill"]
    total = m.total_ms if m.total_ms is not None else sum(parts.values())
    waited = parts["load"] + parts["queue"]
    slow = (
        ttft > th.slow_ttft_ms
        or total > th.slow_total_ms
        or waited > th.slow_wait_ms
        or too_large is not None
    )
    if not slow:
        return _result(NOT_SLOW, f"First token after {ttft:.0f} ms, done in {total:.0f} ms.", parts)
    dropped = trace.dropped_messages if trace is not None else 0
    prefill_cause = FULL_CONTEXT if dropped else LONG_PROMPT
    decode_cause = TOO_LARGE if too_large else LONG_ANSWER
    by_cause = {
        COLD_START: parts["load"],
        QUEUE_WAIT: parts["queue"],
        prefill_cause: parts["prefill"],
        decode_cause: parts["decode"],
    }
    cause = max(by_cause, key=lambda c: by_cause[c])
    sentence = _sentence(cause, m, parts, total, dropped, too_large)
    if busy:
        sentence += (
            f" Other programs kept {others:.1f} cores busy meanwhile, which slowed every part."
        )
    return _result(cause, sentence, parts)


def _sentence(
    cause: str,
    m: TurnMetrics,
    parts: dict[str, float],
    total: float,
    dropped: int,
    too_large: str | None,
) -> str:
    of_total = f"of the {total / 1000:.1f} s turn"
    if cause == COLD_START:
        return f"It waited {parts['load'] / 1000:.1f} s {of_total} for the model to load."
    if cause == QUEUE_WAIT:
        return f"It waited {parts['queue'] / 1000:.1f} s {of_total} behind other requests."
    evaluated = m.prompt_tokens_evaluated if m.prompt_tokens_evaluated is not None else "?"
    if cause == LONG_PROMPT:
        return (
            f"Evaluating {evaluated} prompt tokens took {parts['prefill'] / 1000:.1f} s {of_total}."
        )
    if cause == FULL_CONTEXT:
        return (
            f"The context was full: {dropped} oldest messages were left out and "
            f"{evaluated} prompt tokens evaluated again: "
            f"{parts['prefill'] / 1000:.1f} s {of_total}."
        )
    if cause == LONG_ANSWER:
        return f"Writing {m.output_tokens} tokens took {parts['decode'] / 1000:.1f} s {of_total}."
    return f"Decoding was slow: {too_large}."


def _result(cause: str, sentence: str, parts: dict[str, float]) -> Diagnosis:
    return Diagnosis(cause, LABELS[cause], sentence, ADVICE[cause], parts)


def total_memory_bytes(meminfo: str = "/proc/meminfo") -> int | None:
    """MemTotal: the machine's RAM (after a load, MemAvailable no longer counts the model)."""
    try:
        with open(meminfo, encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def model_context(
    loaded: ModelLoaded | None,
    recorder: TraceRecorder | None = None,
    bandwidth_bytes_s: float | None = None,
    kv_bytes_used: int | None = None,
) -> ModelContext:
    """What the diagnosis needs to know of the loaded model, from what the CLI or GUI has."""
    if loaded is None:
        return ModelContext(recorder.best_decode_tok_s if recorder else None)
    weights = loaded.model_size_bytes
    ceiling = (
        decode_ceiling_tok_s(bandwidth_bytes_s, weights, kv_bytes_used)
        if bandwidth_bytes_s and weights
        else None
    )
    ram = total_memory_bytes()
    verdict = verdict_for(weights + loaded.kv_bytes_total, ram) if ram and weights else None
    return ModelContext(
        baseline_decode_tok_s=recorder.best_decode_tok_s if recorder else None,
        ceiling_decode_tok_s=ceiling,
        memory_verdict=verdict,
        n_layers=loaded.n_layers,
        n_layers_offloaded=loaded.n_layers_offloaded,
        gpu_offload_supported=loaded.gpu_offload_supported,
    )


def diagnose_trace(
    trace: TurnTrace,
    loaded: ModelLoaded | None,
    recorder: TraceRecorder | None = None,
    bandwidth_bytes_s: float | None = None,
) -> Diagnosis:
    """diagnose() for a finished trace, with the model's context filled in."""
    m = trace.metrics or TurnMetrics()
    return diagnose(m, trace, model_context(loaded, recorder, bandwidth_bytes_s, m.kv_bytes_used))
