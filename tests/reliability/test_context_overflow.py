"""More than the context holds: never a crash; the oldest turns dropped (with the notice) or
the turn refused in one line; stored conversations stay whole."""

from __future__ import annotations

import queue
from pathlib import Path

import pytest

from app.engine import events as ev
from app.engine.local import LocalEngine
from app.session import ChatSession, ReplyStored
from app.settings import RuntimeSettings, SamplingSettings
from app.storage.store import Store

from helpers import load_engine

N_CTX = 256
TIMEOUT_S = 300.0


@pytest.fixture(scope="module")
def small_engine(bundled_model: Path):
    engine, _ = load_engine(bundled_model, RuntimeSettings(n_ctx=N_CTX, n_threads=1, repack="off"))
    yield engine
    engine.close()


@pytest.fixture
def session(small_engine: LocalEngine, tmp_path: Path):
    store = Store.open(tmp_path / "overflow.sqlite3")
    events: queue.Queue = queue.Queue()
    chat = ChatSession(small_engine, store, events.put)
    yield chat, store, events
    small_engine.set_listener(lambda event: None)
    store.close()


def _turn(events: queue.Queue, request_id: int) -> list:
    seen = []
    while True:
        event = events.get(timeout=TIMEOUT_S)
        if event.request_id == request_id:
            seen.append(event)
            if isinstance(event, ev.TurnFinished):
                # The session stores the reply right after it passes TurnFinished on.
                try:
                    seen.append(events.get(timeout=5))
                except queue.Empty:
                    pass
                return seen


def test_max_tokens_beyond_the_room_left_ends_at_the_context(session) -> None:
    chat, store, events = session
    conversation = store.create_conversation()
    sampling = SamplingSettings(temperature=0.0, max_tokens=5000)
    request = chat.send(conversation.id, "Count from 1 to 500, one number a line.", sampling)
    seen = _turn(events, request)
    assert not any(isinstance(e, ev.EngineError | ev.EngineCrashed) for e in seen), seen
    finished = next(e for e in seen if isinstance(e, ev.TurnFinished))
    metrics = finished.metrics
    assert metrics.stop_reason in ("length", "eos", "context")
    assert metrics.prompt_tokens + metrics.output_tokens <= N_CTX
    reply = store.messages(conversation.id)[-1]
    assert reply.role == "assistant" and reply.content and not reply.partial


def test_a_long_history_drops_the_oldest_turns_with_the_notice(session) -> None:
    chat, store, events = session
    conversation = store.create_conversation(system_prompt="Answer in one word.")
    for i in range(150):  # 300 stored messages, far past 256 tokens
        store.add_message(conversation.id, "user", f"Question {i}: what comes after {i}?")
        store.add_message(conversation.id, "assistant", f"{i + 1}")
    request = chat.send(conversation.id, "And after 149?", SamplingSettings(max_tokens=8))
    seen = _turn(events, request)
    started = next(e for e in seen if isinstance(e, ev.TurnStarted))
    assert started.dropped_messages >= 250
    assert started.prompt_tokens <= N_CTX
    assert seen[-1].__class__ is ReplyStored or isinstance(seen[-1], ev.TurnFinished)
    # Trimming is for the prompt only: every stored message is still there.
    assert len(store.messages(conversation.id)) == 302


@pytest.mark.parametrize("where", ["message", "system prompt"])
def test_a_one_megabyte_paste_is_refused_and_the_conversation_kept(session, where: str) -> None:
    chat, store, events = session
    paste = "All work and no play makes Jack a dull boy. " * 23_000  # about 1 MB
    system = paste if where == "system prompt" else ""
    conversation = store.create_conversation(system_prompt=system)
    store.add_message(conversation.id, "user", "an earlier question")
    store.add_message(conversation.id, "assistant", "an earlier answer")
    text = paste if where == "message" else "Hello?"
    request = chat.send(conversation.id, text, SamplingSettings(max_tokens=8))
    seen = _turn(events, request)
    errors = [e for e in seen if isinstance(e, ev.EngineError)]
    assert len(errors) == 1 and "\n" not in errors[0].message
    assert f"the context holds {N_CTX} tokens" in errors[0].message
    assert not any(isinstance(e, ev.EngineCrashed | ev.Token) for e in seen)
    # The user's message is kept (committed before the engine saw it); no empty reply row.
    messages = store.messages(conversation.id)
    assert [m.role for m in messages] == ["user", "assistant", "user"]
    assert messages[-1].content == text
    assert store.integrity_check() == "ok"
    # The engine is fine: a short message in a fresh conversation is answered.
    other = store.create_conversation()
    request = chat.send(other.id, "Hi", SamplingSettings(max_tokens=4))
    finished = next(e for e in _turn(events, request) if isinstance(e, ev.TurnFinished))
    assert finished.metrics.stop_reason in ("eos", "length")
