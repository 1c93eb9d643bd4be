"""The Engine protocol: what the session, the CLI and the GUI ask of an engine.

LocalEngine (a llama.cpp worker process) implements it; so do FakeEngine
(scripted events with real timings, for fast tests of the layers above) and,
later, remote and batched engines. Every engine keeps the same contract:

- events go to one listener, from any thread, in order per request;
- request ids come from new_request_id() before submit(), so callers can key
  their records on the id before any event for it can arrive;
- every submitted request ends with exactly one TurnFinished, errors included;
- load() answers with ModelLoaded, or an EngineError carrying its load id.

EngineEvents and Untuned hold the plumbing that engines share (listener, event
queue, request ids, listener errors; no thread measurement).
"""

from __future__ import annotations

import queue
import traceback
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol, TypeVar, runtime_checkable

from app.engine import events as ev
from app.engine.pending_turn import MessagesSource
from app.engine.request_ids import RequestIds
from app.metrics import TurnMetrics
from app.settings import RuntimeSettings, SamplingSettings

# What Engine.state can be.
ENGINE_STATES = ("idle", "loading", "ready", "generating", "crashed", "closed")


@runtime_checkable
class Engine(Protocol):
    model_info: ev.ModelLoaded | None
    # "window" when a GUI measures threads while it streams; "headless" otherwise.
    tuning_context: str

    @property
    def state(self) -> str: ...

    @property
    def tuning(self) -> bool: ...

    def load(self, model_path: str | Path, settings: RuntimeSettings | None = None) -> int: ...

    def new_request_id(self) -> int: ...

    def submit(
        self,
        messages: MessagesSource,
        sampling: SamplingSettings | None = None,
        request_id: int | None = None,
    ) -> int: ...

    def cancel(self, request_id: int | None = None) -> None: ...

    def restart(self) -> None: ...

    def tune(
        self,
        counts: Sequence[int] | None = None,
        *,
        rounds: int | None = None,
        decode_tokens: int | None = None,
    ) -> bool: ...

    def close(self) -> None: ...

    def set_listener(self, on_event: ev.EventSink) -> None: ...

    def log_tail(self, lines: int = 20) -> list[str]: ...


def engine_state(*, closed: bool, loading: bool, crashed: bool, busy: bool, loaded: bool) -> str:
    """One of ENGINE_STATES, in the order every engine decides it."""
    if closed:
        return "closed"
    if loading:
        return "loading"
    if crashed:
        return "crashed"
    if busy:
        return "generating"
    return "ready" if loaded else "idle"


_E = TypeVar("_E", bound="EngineEvents")


class EngineEvents:
    """The event plumbing engines share: a listener (or a queue read with next_event()),
    request ids handed out before submit, and the context-manager close.

    _emit() passes an event on; a listener's exception is reported as an EngineError
    and never stops the events that follow. Subclasses define close().
    """

    def __init__(self, on_event: ev.EventSink | None = None) -> None:
        self._events: queue.Queue[ev.EngineEvent] = queue.Queue()
        self._sink: ev.EventSink = on_event or self._events.put
        self._ids = RequestIds()

    def set_listener(self, on_event: ev.EventSink) -> None:
        """Route events to on_event from now on (ChatSession installs itself here)."""
        self._sink = on_event

    def next_event(self, timeout: float | None = None) -> ev.EngineEvent:
        """Next event from the internal queue (only when no on_event was given)."""
        return self._events.get(timeout=timeout)

    def new_request_id(self) -> int:
        """An id for a submit() to come; a cancel() of it before the submit is kept."""
        return self._ids.new()

    def _cancelled_before_submit(self, request_id: int) -> bool:
        """At submit: True (and the turn ended at once) when Stop came first."""
        if not self._ids.submitted(request_id):
            return False
        self._emit(
            ev.TurnFinished(request_id=request_id, metrics=TurnMetrics(stop_reason="cancelled"))
        )
        return True

    def _emit(self, event: ev.EngineEvent) -> None:
        try:
            self._sink(event)
        except Exception as exc:
            traceback.print_exc()
            if isinstance(event, ev.EngineError):
                return
            try:
                self._sink(
                    ev.EngineError(
                        request_id=event.request_id,
                        message=f"internal error handling {type(event).__name__}: {exc}",
                    )
                )
            except Exception:
                traceback.print_exc()

    def _emit_all(self, events: Iterable[ev.EngineEvent]) -> None:
        for event in events:
            self._emit(event)

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _E) -> _E:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Untuned:
    """For engines whose threads are not ours to measure (a server's, or fixed)."""

    @property
    def tuning(self) -> bool:
        return False

    def tune(
        self,
        counts: Sequence[int] | None = None,
        *,
        rounds: int | None = None,
        decode_tokens: int | None = None,
    ) -> bool:
        return False
