"""A worker killed mid-reply: reported at once, the partial reply kept, the next request works."""

from __future__ import annotations

import os
import queue
import signal
import time

from app.engine import events as ev
from app.engine.local import LocalEngine
from app.session import ChatSession, ReplyStored
from app.settings import RuntimeSettings, SamplingSettings
from app.storage.store import Store

LONG = SamplingSettings(temperature=0.0, max_tokens=1500)


def _next(q: queue.Queue, timeout: float = 60.0):
    return q.get(timeout=timeout)


def test_sigkill_mid_reply_keeps_the_partial_reply_and_recovers(bundled_model, tmp_path):
    store = Store.open(tmp_path / "chat.sqlite3")
    events: queue.Queue = queue.Queue()
    engine = LocalEngine()
    session = ChatSession(engine, store, events.put)
    try:
        engine.load(bundled_model, RuntimeSettings(n_ctx=2048))
        while not isinstance(_next(events), ev.ModelLoaded):
            pass
        conversation = store.create_conversation()
        request_id = session.send(conversation.id, "Write a very long story about a ship.", LONG)
        old_pid = engine.worker_pid
        tokens = 0
        while tokens < 20:
            event = _next(events)
            tokens += isinstance(event, ev.Token)
        # Let a flush happen so the stored text is mid-stream, then kill.
        time.sleep(0.6)
        os.kill(old_pid, signal.SIGKILL)
        killed_at = time.monotonic()

        crashed = finished = stored = None
        while stored is None:
            event = _next(events, timeout=10.0)  # a hang shows up here, not as a timing assert
            if isinstance(event, ev.EngineCrashed):
                crashed, crash_seen_after = event, time.monotonic() - killed_at
            elif isinstance(event, ev.TurnFinished) and event.request_id == request_id:
                finished = event
            elif isinstance(event, ReplyStored):
                stored = event
        assert crashed.request_id == request_id
        assert crashed.signal_name == "SIGKILL" and crashed.exit_code == -signal.SIGKILL
        assert "SIGKILL" in crashed.message
        assert crashed.log_tail, "the last llama.cpp log lines come with the crash"
        print(f"crash reported {crash_seen_after * 1000:.0f} ms after SIGKILL")
        assert finished.metrics.stop_reason == "error"
        assert finished.metrics.output_tokens >= 20
        assert engine.state == "crashed"

        # The partial reply is in SQLite, marked partial, with the text seen so far.
        reply = store.messages(conversation.id)[-1]
        assert reply.id == stored.message_id and stored.partial
        assert reply.role == "assistant" and reply.partial
        assert reply.stop_reason == "error"
        # The streamed text is kept once, by the session: the engine's crash report
        # carries none, and the stored reply is what the tokens said.
        assert finished.text == ""
        assert len(reply.content) > 20
        assert reply.metrics.output_tokens == finished.metrics.output_tokens

        # The next request starts a fresh worker and is answered.
        next_id = session.send(conversation.id, "Say hello.", SamplingSettings(max_tokens=8))
        while True:
            event = _next(events)
            if isinstance(event, ev.TurnFinished) and event.request_id == next_id:
                break
        assert event.metrics.stop_reason in ("eos", "length")
        assert engine.worker_pid not in (None, old_pid)
        assert engine.state == "ready"
    finally:
        engine.close()
        store.close()


def test_worker_killed_while_idle_is_reported_and_restart_works(bundled_model):
    engine = LocalEngine()
    try:
        engine.load(bundled_model, RuntimeSettings(n_ctx=512))
        while not isinstance(engine.next_event(60), ev.ModelLoaded):
            pass
        os.kill(engine.worker_pid, signal.SIGKILL)
        event = engine.next_event(10)
        while not isinstance(event, ev.EngineCrashed):
            event = engine.next_event(10)
        assert event.request_id is None
        engine.restart()
        while not isinstance(event, ev.ModelLoaded):
            event = engine.next_event(60)
        assert engine.state == "ready"
    finally:
        engine.close()


def test_ctrl_c_does_not_kill_the_worker(loaded_engine):
    # A terminal's Ctrl+C signals the whole process group, the worker included.
    engine, _ = loaded_engine
    pid = engine.worker_pid
    request_id = engine.submit([{"role": "user", "content": "Tell a story."}], LONG)
    tokens = 0
    while True:
        event = engine.next_event(60)
        assert not isinstance(event, ev.EngineCrashed), event.message
        if isinstance(event, ev.Token) and event.request_id == request_id:
            tokens += 1
            if tokens == 5:
                os.kill(pid, signal.SIGINT)
            if tokens == 30:
                engine.cancel(request_id)
        if isinstance(event, ev.TurnFinished) and event.request_id == request_id:
            break
    assert event.metrics.stop_reason == "cancelled" and tokens >= 30
    assert engine.worker_pid == pid


def test_reload_after_a_crash_is_not_aborted_by_an_earlier_cancel(bundled_model):
    engine = LocalEngine()
    try:
        engine.load(bundled_model, RuntimeSettings(n_ctx=512))
        while not isinstance(engine.next_event(60), ev.ModelLoaded):
            pass
        request_id = engine.submit([{"role": "user", "content": "Tell a story."}], LONG)
        while not isinstance(engine.next_event(60), ev.Token):
            pass
        engine.cancel(request_id)  # sets the shared cancel flag...
        os.kill(engine.worker_pid, signal.SIGKILL)  # ...and the worker dies before clearing it
        next_id = engine.submit([{"role": "user", "content": "Hi"}], SamplingSettings(max_tokens=4))
        while True:
            event = engine.next_event(60)
            assert not (
                isinstance(event, ev.EngineError) and event.request_id in (None, next_id)
            ), event.message
            if isinstance(event, ev.TurnFinished) and event.request_id == next_id:
                break
        assert event.metrics.stop_reason in ("eos", "length")
    finally:
        engine.close()
