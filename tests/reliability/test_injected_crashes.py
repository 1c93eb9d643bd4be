"""Crashes injected into a real worker (GLASSBOX_TEST_FAULT): the parent reports each with its
cause, keeps the partial reply stored and marked, and serves the next request with a fresh
worker. One engine lives through all of them, as the GUI's would."""

from __future__ import annotations

import queue
import signal
from pathlib import Path

import pytest

from app.engine import events as ev
from app.engine.fault_injection import EXIT_CODE
from app.engine.local import LocalEngine
from app.engine.worker import FAULT_ENV
from app.session import ChatSession, ReplyStored
from app.settings import RuntimeSettings, SamplingSettings
from app.storage.store import Store

# repack off: with it allowed, a SIGSEGV or SIGABRT in the first turn after a load is
# taken for a repacked-kernel crash and answered by a reload without repacking
# (tests/app/engine/test_repack_fallback.py), not reported as a crash.
SETTINGS = RuntimeSettings(n_ctx=512, n_threads=1, repack="off")
LONG = SamplingSettings(temperature=0.0, max_tokens=400)
TIMEOUT_S = 120.0

# How each injected crash must be reported: (signal name, exit code, words in the message).
CAUSES = {
    "sigkill": ("SIGKILL", -signal.SIGKILL, "SIGKILL"),
    "sigsegv": ("SIGSEGV", -signal.SIGSEGV, "SIGSEGV"),
    "abort": ("SIGABRT", -signal.SIGABRT, "SIGABRT"),
    "exit": (None, EXIT_CODE, f"exit code {EXIT_CODE}"),
}


def _until(events: queue.Queue, kind: type, request_id: int | None = None) -> list:
    seen = []
    while True:
        event = events.get(timeout=TIMEOUT_S)
        seen.append(event)
        if isinstance(event, kind) and (request_id is None or event.request_id == request_id):
            return seen


def test_every_kind_of_worker_crash_is_survived(
    bundled_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store.open(tmp_path / "chat.sqlite3")
    events: queue.Queue = queue.Queue()
    engine = LocalEngine()
    session = ChatSession(engine, store, events.put)
    conversation = store.create_conversation("crashes")
    survived = []
    try:
        # A crash while loading: reported, the load fails, nothing restarts in a loop.
        monkeypatch.setenv(FAULT_ENV, "crash:abort:load")
        engine.load(bundled_model, SETTINGS)
        seen = _until(events, ev.EngineError)
        crashed = [e for e in seen if isinstance(e, ev.EngineCrashed)]
        assert crashed and crashed[0].signal_name == "SIGABRT", seen
        assert "while loading" in seen[-1].message and "SIGABRT" in seen[-1].message
        assert not any(isinstance(e, ev.ModelLoaded) for e in seen)
        survived.append("abort while loading")

        pids = set()
        for how in CAUSES:
            # The variable is read by the next worker spawned: the one that serves this turn.
            monkeypatch.setenv(FAULT_ENV, f"crash:{how}:token")
            if how == "sigkill":
                engine.load(bundled_model, SETTINGS)  # the first model after the failed load
                _until(events, ev.ModelLoaded)
            request_id = session.send(conversation.id, f"Tell a long story ({how}).", LONG)
            seen = _until(events, ReplyStored, request_id)
            pids.add(engine.worker_pid)
            signal_name, exit_code, words = CAUSES[how]
            crashed = next((e for e in seen if isinstance(e, ev.EngineCrashed)), None)
            assert crashed is not None, (how, [type(e).__name__ for e in seen][-8:], seen[-3:])
            assert crashed.request_id == request_id
            assert crashed.signal_name == signal_name and crashed.exit_code == exit_code
            assert words in crashed.message, crashed.message
            assert any("glassbox test fault" in line for line in crashed.log_tail)
            finished = next(e for e in seen if isinstance(e, ev.TurnFinished))
            assert finished.metrics.stop_reason == "error"
            tokens = [e for e in seen if isinstance(e, ev.Token)]
            assert tokens, "the worker streamed before it died"
            # The partial reply is stored, marked partial, with what was streamed.
            reply = store.messages(conversation.id)[-1]
            assert reply.role == "assistant" and reply.partial and reply.stop_reason == "error"
            assert reply.content == "".join(t.text for t in tokens)
            assert store.integrity_check() == "ok"
            survived.append(f"{how} mid-reply")

        # No fault: the next request is answered by a fresh worker (the last model reloads).
        monkeypatch.delenv(FAULT_ENV)
        request_id = session.send(conversation.id, "Say hello.", SamplingSettings(max_tokens=8))
        seen = _until(events, ev.TurnFinished, request_id)
        assert seen[-1].metrics.stop_reason in ("eos", "length")
        assert not any(isinstance(e, ev.EngineCrashed) for e in seen)
        assert engine.worker_pid not in pids
        assert engine.state == "ready"
        # Every message of the conversation is still there: 5 user messages, 5 replies.
        roles = [m.role for m in store.messages(conversation.id)]
        assert roles == ["user", "assistant"] * 5
        print(f"crashes injected and survived: {len(survived)} ({', '.join(survived)})")
    finally:
        engine.close()
        store.close()


def test_a_load_under_an_address_space_limit_fails_cleanly(
    bundled_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # RLIMIT_AS a little above the worker's size: llama.cpp cannot map the weights.
    monkeypatch.setenv(FAULT_ENV, "rlimit-as")
    engine = LocalEngine()
    try:
        engine.load(bundled_model, SETTINGS)
        seen = []
        while not isinstance(seen[-1] if seen else None, ev.EngineError):
            seen.append(engine.next_event(TIMEOUT_S))
            assert not isinstance(seen[-1], ev.ModelLoaded), "loaded despite the limit"
        crashed = [e for e in seen if isinstance(e, ev.EngineCrashed)]
        # Either llama.cpp reports the failed allocation (the worker lives on) or the
        # worker dies of it (reported as a crash with its cause); never the parent.
        if crashed:
            assert crashed[0].signal_name or crashed[0].exit_code, crashed[0]
        else:
            assert "could not load" in seen[-1].message or "Error" in seen[-1].message
        print(f"RLIMIT_AS load: {seen[-1].message}")
        # The limit is lifted (or the worker is fresh): the same model loads now.
        monkeypatch.delenv(FAULT_ENV)
        engine.load(bundled_model, SETTINGS)
        event = engine.next_event(TIMEOUT_S)
        while not isinstance(event, ev.ModelLoaded | ev.EngineError):
            event = engine.next_event(TIMEOUT_S)
        assert isinstance(event, ev.ModelLoaded), event
    finally:
        engine.close()
