"""A CLI turn that hears nothing from the engine ends with one clear line, not queue.Empty."""

from __future__ import annotations

import queue
from typing import Any, cast

import pytest

from app.cli.common import LoadedSession
from app.engine import events as ev
from app.errors import EngineTimeoutError, GlassboxError


def test_silent_engine_is_a_one_line_error() -> None:
    events: queue.Queue[ev.EngineEvent] = queue.Queue()
    # Only the queue matters here; the session and loaded event are not touched.
    loaded = LoadedSession(cast(Any, None), events, cast(Any, None), event_timeout_s=0.05)
    with pytest.raises(EngineTimeoutError, match=r"sent nothing for 0.05 s") as info:
        loaded.next_event()
    assert isinstance(info.value, GlassboxError) and "\n" not in str(info.value)
    event = ev.EngineError(request_id=7, message="boom")
    events.put(event)
    assert loaded.next_event() is event
