"""Scenarios: each cause of a slow turn, reproduced on a real model, for teaching.

A scenario is a few chat requests sent to a LocalEngine on the chosen model,
built so that one cause dominates one request (the focus): a long prompt, a
long answer, requests queued behind each other, a full context, a cold start.
The result carries every request's metrics and diagnosis (app.diagnosis); the
scenario's claim is that the focus request's diagnosis names its cause.

Sizes are kept small so a scenario runs in seconds on a 2-core CPU with the
bundled 135M model, yet each cause still takes most of the focus turn's time.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app import bandwidth
from app import diagnosis as dx
from app.engine import events as ev
from app.engine.local import LocalEngine
from app.errors import EngineTimeoutError, GlassboxError
from app.settings import RuntimeSettings, SamplingSettings
from app.turn_trace import TraceRecorder, TurnTrace

EVENT_TIMEOUT_S = 600.0
Message = dict[str, str]

_FACTS = (
    "The lighthouse keeper logged the weather every morning at six.",
    "Copper wire carries current with little loss over short distances.",
    "A sourdough starter needs flour, water and a warm kitchen.",
    "The river delta shifted east after the spring floods.",
    "Orbiting satellites correct their paths with small thruster bursts.",
    "Old maps marked unexplored land with drawings of sea monsters.",
    "Bees communicate the direction of flowers with a waggle dance.",
    "The library kept its rare books in a cool and dry basement.",
)


def filler_text(sentences: int) -> str:
    """Plain numbered sentences: text whose only job is to be long."""
    return " ".join(f"({i + 1}) {_FACTS[i % len(_FACTS)]}" for i in range(sentences))


def _user(text: str) -> Message:
    return {"role": "user", "content": text}


def _assistant(text: str) -> Message:
    return {"role": "assistant", "content": text}


@dataclass(frozen=True)
class Request:
    messages: tuple[Message, ...]
    max_tokens: int
    label: str


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str  # for a menu
    cause: str  # app.diagnosis cause the focus request must be given
    explains: str  # the view that shows why, for a teacher
    description: str  # what it does, in plain words
    # Requests in waves: a wave's requests are submitted together (the queue scenario),
    # the next wave once they have all finished.
    waves: tuple[tuple[Request, ...], ...]
    n_ctx: int = 2048
    fresh_engine: bool = False  # start a new worker and send before the model is loaded
    focus: int = -1  # index, over all requests in order, of the one the cause is about


def _full_context_waves() -> tuple[tuple[Request, ...], ...]:
    # Four exchanges of ~200 tokens: three plus a question fit 1024 cells, four do not.
    history: list[Message] = []
    for i in range(4):
        history.append(_user(f"Remember these notes, part {i + 1}: {filler_text(12)}"))
        history.append(_assistant(f"Noted part {i + 1}. " + filler_text(3)))
    first = (*history[:6], _user("Which part did I send last? Answer briefly."))
    second = (*history, _user("And now which part was the last one? Answer briefly."))
    return (
        (Request(first, 16, "history fits: cached after this turn"),),
        (Request(second, 16, "one more exchange: the oldest is dropped"),),
    )


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "long-prompt",
            "Long prompt",
            dx.LONG_PROMPT,
            "Turn timeline (the prefill bar) and the TTFT plot",
            "One message of about a thousand tokens and a short answer: the wait is prefill.",
            ((Request((_user(filler_text(70) + "\nSummarize in one sentence."),), 12, "long"),),),
        ),
        Scenario(
            "long-answer",
            "Long answer",
            dx.LONG_ANSWER,
            "Turn timeline (the decode steps) and the live tokens plot",
            "A short request for a long reply: the wait is decode, token by token.",
            (
                (
                    Request(
                        (_user("Write the word hello 400 times, separated by spaces."),),
                        400,
                        "400 tokens",
                    ),
                ),
            ),
        ),
        Scenario(
            "queue",
            "Queue (three requests at once)",
            dx.QUEUE_WAIT,
            "Turn timeline (the queue bar) and the TTFT plot's orange part",
            "Three requests sent together: the engine serves one at a time, the last one waits.",
            (
                tuple(
                    Request(
                        (_user(f"Write a short story about a {animal} in five sentences."),),
                        64,
                        f"request {i + 1} of 3",
                    )
                    for i, animal in enumerate(("cat", "dog", "fox"))
                ),
            ),
        ),
        Scenario(
            "full-context",
            "Full context",
            dx.FULL_CONTEXT,
            "KV cache view (what was dropped and evaluated again) and the timeline",
            "A 1024-token context: one more exchange pushes out the oldest, and the whole "
            "history is evaluated again instead of coming from the cache.",
            _full_context_waves(),
            n_ctx=1024,
        ),
        Scenario(
            "cold-start",
            "Cold start",
            dx.COLD_START,
            "Turn timeline (the model load bar)",
            "A fresh engine: the request arrives before the model is loaded and waits for it.",
            # Three tokens: an answer far shorter than the load, even on a busy machine.
            ((Request((_user("Say hello in three words."),), 3, "first request"),),),
            fresh_engine=True,
        ),
    )
}

SCENARIO_SAMPLING = SamplingSettings(temperature=0.0, top_k=1, repeat_penalty=1.0, seed=0)


@dataclass
class RequestResult:
    label: str
    trace: TurnTrace
    diagnosis: dx.Diagnosis

    def to_dict(self) -> dict[str, Any]:
        m = self.trace.metrics
        return {
            "label": self.label,
            "metrics": m.to_dict() if m else None,
            "trace": self.trace.to_dict(),
            "diagnosis": self.diagnosis.to_dict(),
        }


@dataclass
class ScenarioResult:
    scenario: Scenario
    model: ev.ModelLoaded | None
    requests: list[RequestResult] = field(default_factory=list)

    @property
    def focus(self) -> RequestResult:
        return self.requests[self.scenario.focus]

    @property
    def reproduced(self) -> bool:
        """The focus request's diagnosis names the scenario's cause."""
        return self.focus.diagnosis.cause == self.scenario.cause

    def to_dict(self) -> dict[str, Any]:
        s = self.scenario
        return {
            "scenario": s.name,
            "expected_cause": s.cause,
            "description": s.description,
            "explains": s.explains,
            "model": self.model.model_name if self.model else None,
            "n_ctx": self.model.n_ctx if self.model else None,
            "focus": s.focus % len(self.requests) if self.requests else None,
            "reproduced": self.reproduced if self.requests else False,
            "requests": [r.to_dict() for r in self.requests],
            "diagnosis": self.focus.diagnosis.to_dict() if self.requests else None,
        }


class ScenarioRunner:
    """Runs scenarios on one model file; keeps a loaded engine per context size between them.

    on_event sees every engine event (a progress display); it must not block.
    """

    def __init__(
        self,
        model_path: str | Path,
        runtime: RuntimeSettings | None = None,
        on_event: Callable[[ev.EngineEvent], None] | None = None,
    ) -> None:
        self.model_path = str(model_path)
        self.runtime = runtime or RuntimeSettings()
        self._on_event = on_event or (lambda event: None)
        self._engines: dict[int, tuple[LocalEngine, queue.Queue[ev.EngineEvent], Any]] = {}
        self._bandwidth: float | None = None  # measured (or read) at the first run
        self._loaded_at: dict[int, int] = {}  # id(ModelLoaded event) -> arrival, monotonic ns

    def close(self) -> None:
        for engine, _events, _loaded in self._engines.values():
            engine.close()
        self._engines.clear()

    def __enter__(self) -> ScenarioRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def load(self, names: list[str]) -> None:
        """Load now the engines these scenarios will use (a fresh engine is never kept)."""
        for name in names:
            scenario = SCENARIOS[name]
            if not scenario.fresh_engine:
                self._engine_for(self.runtime.with_changes(n_ctx=scenario.n_ctx).validate())

    def run(self, name: str) -> ScenarioResult:
        scenario = SCENARIOS.get(name)
        if scenario is None:
            raise GlassboxError(f"no scenario {name!r}; choose one of {', '.join(SCENARIOS)}")
        settings = self.runtime.with_changes(n_ctx=scenario.n_ctx).validate()
        if self._bandwidth is None:
            self._bandwidth = bandwidth.measure().bytes_per_s
        if scenario.fresh_engine:
            engine, events = self._new_engine()
            try:
                engine.load(self.model_path, settings)
                # Sent at once: the request waits for the worker to start and the model to load.
                return self._run_waves(scenario, engine, events, None)
            finally:
                engine.close()
        engine, events, loaded = self._engine_for(settings)
        return self._run_waves(scenario, engine, events, loaded)

    def _new_engine(self) -> tuple[LocalEngine, queue.Queue[ev.EngineEvent]]:
        events: queue.Queue[ev.EngineEvent] = queue.Queue()

        def deliver(event: ev.EngineEvent) -> None:
            if isinstance(event, ev.ModelLoaded):  # when it came, not when it is read
                self._loaded_at[id(event)] = time.monotonic_ns()
            events.put(event)
            self._on_event(event)

        return LocalEngine(on_event=deliver), events

    def _engine_for(
        self, settings: RuntimeSettings
    ) -> tuple[LocalEngine, queue.Queue[ev.EngineEvent], ev.ModelLoaded]:
        if settings.n_ctx not in self._engines:
            engine, events = self._new_engine()
            engine.load(self.model_path, settings)
            try:
                while True:
                    event = _next(events)
                    if isinstance(event, ev.ModelLoaded):
                        break
                    if isinstance(event, ev.EngineError | ev.EngineCrashed):
                        raise GlassboxError(event.message)
            except BaseException:
                engine.close()
                raise
            self._engines[settings.n_ctx] = (engine, events, event)
        return self._engines[settings.n_ctx]

    def _run_waves(
        self,
        scenario: Scenario,
        engine: LocalEngine,
        events: queue.Queue[ev.EngineEvent],
        loaded: ev.ModelLoaded | None,
    ) -> ScenarioResult:
        """Send each wave's requests together; wait for them all; diagnose each.

        loaded is None for a fresh engine: its ModelLoaded comes among the events,
        and the recorder then sees which requests waited for it (the cold start).
        """
        result = ScenarioResult(scenario, loaded)
        recorder = TraceRecorder(lambda: [engine.worker_pid])
        for wave in scenario.waves:
            labels: dict[int, str] = {}
            for request in wave:
                sampling = SCENARIO_SAMPLING.with_changes(max_tokens=request.max_tokens)
                rid = engine.submit([dict(m) for m in request.messages], sampling)
                labels[rid] = request.label
            finished: dict[int, TurnTrace] = {}
            while len(finished) < len(labels):
                event = _next(events)
                if isinstance(event, ev.ModelLoaded):
                    result.model = loaded = event
                    recorder.model_loaded(event.load_ms, self._loaded_at.pop(id(event), None))
                    continue
                if isinstance(event, ev.EngineError | ev.EngineCrashed):
                    raise GlassboxError(event.message)
                trace = recorder.on_event(event)
                if trace is not None and trace.request_id in labels:
                    finished[trace.request_id] = trace
            for rid, label in labels.items():
                trace = finished[rid]
                diagnosis = dx.diagnose_trace(trace, loaded, recorder, self._bandwidth)
                result.requests.append(RequestResult(label, trace, diagnosis))
        return result


def _next(events: queue.Queue[ev.EngineEvent]) -> ev.EngineEvent:
    try:
        return events.get(timeout=EVENT_TIMEOUT_S)
    except queue.Empty:
        raise EngineTimeoutError(
            f"the engine sent nothing for {EVENT_TIMEOUT_S:g} s during the scenario"
        ) from None
