"""A real conversation recorded with the bundled model, for export, import and replay tests
(importable as `recorded_chat`: tests/ is on sys.path)."""

from __future__ import annotations

import queue
from pathlib import Path

from app.engine import events as ev
from app.engine.local import LocalEngine
from app.session import ChatSession, ReplyStored
from app.settings import RuntimeSettings, SamplingSettings
from app.storage.store import Store

PROMPTS = ("Name three colours.", "Which of them is warmest?", "Say it in one word.")
GREEDY = SamplingSettings(temperature=0.0, max_tokens=24)
SETTINGS = RuntimeSettings(n_ctx=1024, n_threads=2, n_threads_batch=2)


def record_conversation(
    model: Path,
    database: Path,
    prompts: tuple[str, ...] = PROMPTS,
    sampling: SamplingSettings = GREEDY,
    system_prompt: str = "You are brief.",
) -> int:
    """Run `prompts` as turns of a new conversation in `database`; its id. The engine is
    closed on return, so nothing outlives the caller."""
    store = Store.open(database)
    events: queue.Queue[ev.EngineEvent] = queue.Queue()
    engine = LocalEngine()
    session = ChatSession(engine, store, events.put)
    try:
        engine.load(model, SETTINGS)
        while not isinstance(event := events.get(timeout=120), ev.ModelLoaded):
            assert not isinstance(event, ev.EngineError | ev.EngineCrashed), event
        conversation_id = store.create_conversation("colours", system_prompt).id
        for prompt in prompts:
            request_id = session.send(conversation_id, prompt, sampling)
            while True:
                event = events.get(timeout=120)
                if event.request_id != request_id:
                    continue
                assert not isinstance(event, ev.EngineError | ev.EngineCrashed), event
                if isinstance(event, ReplyStored):
                    break
        return conversation_id
    finally:
        engine.close()
        store.close()
