"""Helpers for tests that drive the real engine (importable as `helpers`: tests/ is on sys.path)."""

from __future__ import annotations

import queue
import signal
from pathlib import Path

import pytest

from app.engine import events as ev
from app.engine.local import LocalEngine
from app.session import ReplyStored
from app.settings import RuntimeSettings

EVENT_TIMEOUT_S = 60.0


def wait_for(engine: LocalEngine, kind: type, timeout: float = EVENT_TIMEOUT_S) -> list:
    """Events up to and including the first of `kind` (or an EngineError when loading)."""
    seen = []
    while True:
        event = engine.next_event(timeout=timeout)
        seen.append(event)
        if isinstance(event, kind):
            return seen


def run_turn(engine: LocalEngine, request_id: int, timeout: float = EVENT_TIMEOUT_S) -> list:
    """Events of one request, up to and including its TurnFinished."""
    seen = []
    while True:
        event = engine.next_event(timeout=timeout)
        if event.request_id != request_id:
            continue
        seen.append(event)
        if isinstance(event, ev.TurnFinished):
            return seen


def load_engine(
    model: Path, settings: RuntimeSettings | None = None
) -> tuple[LocalEngine, ev.ModelLoaded]:
    engine = LocalEngine()
    engine.load(model, settings or RuntimeSettings(n_ctx=2048))
    events = wait_for(engine, ev.ModelLoaded | ev.EngineError)  # type: ignore[arg-type]
    if not isinstance(events[-1], ev.ModelLoaded):
        engine.close()
        pytest.fail(f"model did not load: {events[-1]}")
    return engine, events[-1]


def sigint_as_in_a_terminal() -> None:
    """Popen preexec_fn for a child the test stops with SIGINT, as Ctrl+C would.

    A shell without job control starts background commands with SIGINT ignored, and a
    Python child that inherits that never installs its KeyboardInterrupt handler: the
    test's SIGINT would then do nothing (seen when `make test` ran in the background).
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def until_stored(events: queue.Queue, request_id: int, timeout: float = EVENT_TIMEOUT_S) -> list:
    """A ChatSession's events for one request, from the queue, up to its ReplyStored."""
    seen = []
    while True:
        event = events.get(timeout=timeout)
        if event.request_id == request_id:
            seen.append(event)
            if isinstance(event, ReplyStored):
                return seen
