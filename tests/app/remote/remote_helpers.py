"""Drive a RemoteEngine from a test: connect, run one turn, collect its events."""

from __future__ import annotations

import pytest

from app.endpoints import Endpoint
from app.engine import events as ev
from app.engine.remote import RemoteEngine

EVENT_TIMEOUT_S = 120.0


def connect(url: str, model: str = "", **kwargs: object) -> RemoteEngine:
    engine = RemoteEngine(Endpoint(url), **kwargs)  # type: ignore[arg-type]
    engine.load(model)
    while True:
        event = engine.next_event(timeout=EVENT_TIMEOUT_S)
        if isinstance(event, ev.ModelLoaded):
            return engine
        if isinstance(event, ev.EngineError):
            engine.close()
            pytest.fail(f"could not connect: {event.message}")


def turn_events(engine: RemoteEngine, request_id: int) -> list[ev.EngineEvent]:
    seen = []
    while True:
        event = engine.next_event(timeout=EVENT_TIMEOUT_S)
        if event.request_id != request_id:
            continue
        seen.append(event)
        if isinstance(event, ev.TurnFinished):
            return seen


def connect_error(url: str, model: str = "", **kwargs: object) -> str:
    """The EngineError message of a connection that fails."""
    with RemoteEngine(Endpoint(url), **kwargs) as engine:  # type: ignore[arg-type]
        engine.load(model)
        while True:
            event = engine.next_event(timeout=EVENT_TIMEOUT_S)
            if isinstance(event, ev.EngineError):
                return event.message
            assert not isinstance(event, ev.ModelLoaded), "connected, expected a failure"
