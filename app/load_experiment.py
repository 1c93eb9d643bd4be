"""The load experiment: N requests at once, per-request latency against total throughput.

Batching raises throughput and per-user latency together; queueing raises
latency without raising throughput. This sends N chat requests at the same
moment to one engine and records each request's TurnMetrics (queue time, TTFT,
inter-token latency) and the round's aggregate output tokens per second, for
each N asked for.

Modes: "sequential" (the local engine serves one request at a time, the
others queue), "remote" (a server, with N requests in flight from us; how it
schedules them is its own business: llama-server slots, vLLM continuous
batching), "batched" (a local engine decoding N sequences in one batch).

Bounded: at most MAX_CONCURRENCY requests a round and MAX_TOKENS tokens each,
and a round that runs past its time limit cancels what is left, waits a
little for the cancellations, and records what came back.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from app.engine import events as ev
from app.errors import SettingsError
from app.metrics import TurnMetrics, ns_to_ms, percentile
from app.settings import SamplingSettings

MODES = ("sequential", "batched", "remote")
MAX_CONCURRENCY = 32
MAX_TOKENS = 2048
ROUND_TIMEOUT_S = 600.0
CANCEL_GRACE_S = 30.0  # after a round's time is up: how long cancelled requests get to end
TOPICS = ("a lighthouse", "a robot", "the sea", "a city at night", "a mountain", "a library")


@dataclass(frozen=True)
class LoadSettings:
    concurrency: tuple[int, ...] = (1, 2, 4, 8)
    max_tokens: int = 64
    temperature: float = 0.0
    seed: int | None = 0
    round_timeout_s: float = ROUND_TIMEOUT_S

    def validate(self) -> LoadSettings:
        if not self.concurrency:
            raise SettingsError("give at least one concurrency level, e.g. --concurrency 1,2,4")
        for level in self.concurrency:
            if not 1 <= level <= MAX_CONCURRENCY:
                raise SettingsError(
                    f"concurrency must be 1..{MAX_CONCURRENCY} requests at once, got {level}"
                )
        if not 1 <= self.max_tokens <= MAX_TOKENS:
            raise SettingsError(f"max tokens must be 1..{MAX_TOKENS}, got {self.max_tokens}")
        if self.round_timeout_s <= 0:
            raise SettingsError(f"round time limit must be above 0 s, got {self.round_timeout_s}")
        return self

    def sampling(self) -> SamplingSettings:
        return SamplingSettings(
            temperature=self.temperature, seed=self.seed, max_tokens=self.max_tokens
        ).validate()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["concurrency"] = list(self.concurrency)
        return data


def parse_concurrency(text: str) -> tuple[int, ...]:
    """ "1,2,4,8" -> (1, 2, 4, 8); a clear error for anything else."""
    try:
        levels = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise SettingsError(
            f"concurrency must be numbers separated by commas, e.g. 1,2,4,8; got {text!r}"
        ) from None
    return levels


class LoadEngine(Protocol):
    """What the experiment needs of an engine: LocalEngine and RemoteEngine have it."""

    def submit(
        self, messages: Any, sampling: SamplingSettings | None = None, request_id: int | None = None
    ) -> int: ...

    def cancel(self, request_id: int | None = None) -> None: ...

    def next_event(self, timeout: float | None = None) -> ev.EngineEvent: ...


@dataclass
class LoadRun:
    mode: str
    concurrency: int
    aggregate_tok_s: float | None
    wall_s: float
    requests: list[TurnMetrics] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    timed_out: bool = False
    stopped: bool = False  # Stop was asked for during this round

    def summary(self) -> dict[str, float | None]:
        """Medians over the round's requests, and the p95 of the per-request figures."""

        def values(name: str) -> list[float]:
            found = (getattr(m, name) for m in self.requests)
            return [v for v in found if v is not None]

        out: dict[str, float | None] = {}
        for name in ("queue_ms", "ttft_ms", "itl_ms_p50", "itl_ms_p95", "decode_tok_s"):
            out[f"{name}_median"] = percentile(values(name), 50)
        out["ttft_ms_p95"] = percentile(values("ttft_ms"), 95)
        out["queue_ms_p95"] = percentile(values("queue_ms"), 95)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "concurrency": self.concurrency,
            "aggregate_tok_s": self.aggregate_tok_s,
            "wall_s": self.wall_s,
            "timed_out": self.timed_out,
            "stopped": self.stopped,
            "errors": self.errors,
            "summary": self.summary(),
            "requests": [m.to_dict() for m in self.requests],
        }


def prompt_for(index: int) -> list[dict[str, str]]:
    """A different prompt per request: a prompt cache must not serve one from another."""
    topic = TOPICS[index % len(TOPICS)]
    return [{"role": "user", "content": f"Request {index + 1}: write a short story about {topic}."}]


def run_round(
    engine: LoadEngine,
    mode: str,
    concurrency: int,
    settings: LoadSettings,
    should_stop: Callable[[], bool] | None = None,
) -> LoadRun:
    """Submit `concurrency` requests at once and wait for each one's TurnFinished.

    Events of other requests (none, normally) are skipped. The engine's events
    must go to its internal queue (next_event), not to a listener.
    """
    sampling = settings.sampling()
    started = time.monotonic_ns()
    ids = [engine.submit(prompt_for(i), sampling) for i in range(concurrency)]
    waiting = set(ids)
    finished: dict[int, TurnMetrics] = {}
    errors: list[str] = []
    deadline = time.monotonic() + settings.round_timeout_s
    timed_out = stopped = False
    last_end = started
    while waiting:
        remaining = deadline - time.monotonic()
        if should_stop is not None and not stopped and should_stop():
            stopped = True  # the user's Stop: end this round as a late one ends
            remaining = 0.0
        if remaining <= 0 and not timed_out:
            timed_out = True
            for request_id in waiting:
                engine.cancel(request_id)
            deadline = time.monotonic() + CANCEL_GRACE_S
            continue
        if remaining <= 0:
            errors.append(f"{len(waiting)} requests did not end after their cancel")
            break
        try:
            event = engine.next_event(timeout=min(remaining, 1.0))
        except queue.Empty:  # check the deadline again
            continue
        if event.request_id not in waiting:
            continue
        if isinstance(event, ev.EngineError | ev.EngineCrashed):
            errors.append(event.message)
        elif isinstance(event, ev.TurnFinished):
            finished[event.request_id] = event.metrics
            waiting.discard(event.request_id)
            last_end = time.monotonic_ns()
    tokens = sum(m.output_tokens or 0 for m in finished.values())
    span_ns = last_end - started
    rate = tokens * 1e9 / span_ns if tokens and span_ns > 0 else None
    return LoadRun(
        mode=mode,
        concurrency=concurrency,
        aggregate_tok_s=rate,
        wall_s=ns_to_ms(span_ns) / 1000.0,
        requests=[finished[i] for i in ids if i in finished],
        errors=errors,
        timed_out=timed_out and not stopped,
        stopped=stopped,
    )


def run_experiment(
    engine: LoadEngine,
    mode: str,
    settings: LoadSettings,
    on_run: Callable[[LoadRun], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[LoadRun]:
    """One round per concurrency level, in the order given, until should_stop() says so."""
    if mode not in MODES:
        raise SettingsError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    runs = []
    for level in settings.validate().concurrency:
        if should_stop is not None and should_stop():
            break
        run = run_round(engine, mode, level, settings, should_stop)
        runs.append(run)
        if on_run is not None:
            on_run(run)
    return runs


def report(
    model: dict[str, Any], settings: dict[str, Any], runs: Sequence[LoadRun]
) -> dict[str, Any]:
    """The JSON document: {"model", "settings", "runs": [...]}."""
    return {"model": model, "settings": settings, "runs": [run.to_dict() for run in runs]}
