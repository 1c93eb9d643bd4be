"""What a turn went through, beyond its TurnMetrics: the record the timeline and diagnosis read.

TurnMetrics holds the figures every engine can report. A few facts about a turn
come from events around it instead: whether it waited for a model load (a cold
start), how many old messages were left out to fit the context, the engine's
timestamp of each token. TraceRecorder gathers them from the same events the
CLI and GUI already receive, so nothing new crosses the worker pipe.

All times are time.monotonic_ns() (CLOCK_MONOTONIC in every process on Linux).
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from app.engine import cpu_activity
from app.engine import events as ev
from app.metrics import TurnMetrics, ns_to_ms

# Turns shorter than this say little about the decode rate (the first steps warm up).
BASELINE_MIN_TOKENS = 16


@dataclass
class TurnTrace:
    request_id: int | None = None
    submit_ns: int | None = None  # derived: the worker's start minus the queue time
    started_ns: int | None = None  # the worker took the turn (TurnStarted.t_ns)
    queue_ms: float | None = None
    load_wait_ms: float = 0.0  # the part of the queue spent waiting for a model load
    load_ms: float | None = None  # that load's own time (ModelLoaded.load_ms)
    dropped_messages: int = 0  # oldest messages left out to fit the context
    prompt_tokens: int | None = None
    prompt_tokens_cached: int | None = None
    token_times_ns: list[int] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)  # when the events carried them
    metrics: TurnMetrics | None = None
    # Cores' worth of CPU other programs used while the turn ran (None: unknown).
    # A busy machine slows every figure, so the diagnosis does not blame the model.
    others_cores: float | None = None
    cpu_before: cpu_activity.CpuSnapshot | None = None

    @property
    def itl_ms(self) -> list[float]:
        """Inter-token latencies of this turn, in order."""
        t = self.token_times_ns
        return [(b - a) / 1e6 for a, b in itertools.pairwise(t)]

    def to_dict(self) -> dict[str, object]:
        return {
            "queue_ms": self.queue_ms,
            "load_wait_ms": self.load_wait_ms,
            "load_ms": self.load_ms,
            "dropped_messages": self.dropped_messages,
            "others_cores": self.others_cores,
        }


def child_pids(proc: str = "/proc") -> list[int]:
    """This process's children (the engine worker among them), from /proc; [] elsewhere.

    For callers that do not know the worker's pid: its CPU time is ours, not
    another program's.
    """
    me, found = os.getpid(), []
    try:
        entries = os.listdir(proc)
    except OSError:
        return []
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"{proc}/{name}/stat", encoding="ascii", errors="replace") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields and int(fields[1]) == me:  # field 4, the parent pid
            found.append(int(name))
    return found


class TraceRecorder:
    """Builds a TurnTrace per request from engine events (any thread, one at a time).

    Feed it every event with on_event(); or, where events arrive in pieces (the
    GUI), call model_loaded / turn_started / tokens / turn_finished directly.
    It also keeps this model's baseline decode rate: the best seen this session
    on turns long enough to measure.
    """

    def __init__(self, pids: Callable[[], Iterable[int | None]] | None = None) -> None:
        # Our processes (this one and the worker), left out of "other programs' CPU";
        # without them (the worker's pid unknown) other programs' CPU is not measured.
        self._pids = pids
        self._traces: dict[int | None, TurnTrace] = {}
        self._loaded_at_ns: int | None = None
        self._load_ms: float | None = None
        self.best_decode_tok_s: float | None = None
        self.finished: list[TurnTrace] = []

    def on_event(self, event: ev.EngineEvent) -> TurnTrace | None:
        """Take one event; returns the trace when the event finished a turn."""
        if isinstance(event, ev.ModelLoaded):
            self.model_loaded(event.load_ms)
        elif isinstance(event, ev.ModelLoadStarted):
            self.best_decode_tok_s = None  # another model: another baseline
        elif isinstance(event, ev.TurnStarted):
            self.turn_started(event)
        elif isinstance(event, ev.Token):
            self.tokens(event.request_id, [event.t_ns], [event.token_id])
        elif isinstance(event, ev.TurnFinished):
            return self.turn_finished(event.request_id, event.metrics)
        return None

    def model_loaded(self, load_ms: float, now_ns: int | None = None) -> None:
        self._loaded_at_ns = time.monotonic_ns() if now_ns is None else now_ns
        self._load_ms = load_ms

    def turn_started(self, event: ev.TurnStarted) -> TurnTrace:
        trace = self._traces.setdefault(event.request_id, TurnTrace(request_id=event.request_id))
        trace.started_ns = event.t_ns or None
        trace.queue_ms = event.queue_ms
        trace.dropped_messages = event.dropped_messages
        trace.prompt_tokens = event.prompt_tokens
        trace.prompt_tokens_cached = event.prompt_tokens_cached
        trace.cpu_before = self._snapshot()
        if event.t_ns:
            trace.submit_ns = event.t_ns - round(event.queue_ms * 1e6)
            loaded = self._loaded_at_ns
            # Loads happen between turns, so a load that ended after this request was
            # sent is one it waited for: the cold start. (Not also "before the turn
            # started": a caller that stamps the load when it gets round to the event,
            # a busy GUI thread, may stamp it after the worker started the turn.)
            if loaded is not None and trace.submit_ns < loaded:
                trace.load_wait_ms = min(event.queue_ms, ns_to_ms(loaded - trace.submit_ns))
                trace.load_ms = self._load_ms
        return trace

    def tokens(self, request_id: int | None, t_ns: list[int], ids: list[int] | None = None) -> None:
        trace = self._traces.setdefault(request_id, TurnTrace(request_id=request_id))
        trace.token_times_ns.extend(t_ns)
        trace.token_ids.extend(ids or ())

    def turn_finished(self, request_id: int | None, metrics: TurnMetrics) -> TurnTrace:
        trace = self._traces.pop(request_id, None) or TurnTrace(request_id=request_id)
        trace.metrics = metrics
        if trace.cpu_before is not None:
            after = self._snapshot()
            trace.others_cores = cpu_activity.others_cores(
                trace.cpu_before, after, cpu_activity.cpu_count()
            )
        if trace.queue_ms is None:
            trace.queue_ms = metrics.queue_ms
        rate = metrics.decode_tok_s
        if rate and (metrics.output_tokens or 0) >= BASELINE_MIN_TOKENS:
            self.best_decode_tok_s = max(self.best_decode_tok_s or 0.0, rate)
        self.finished.append(trace)
        return trace

    def _snapshot(self) -> cpu_activity.CpuSnapshot | None:
        if self._pids is None:
            return None
        pids = {os.getpid(), *(p for p in self._pids() if p)}
        return cpu_activity.snapshot(pids)
