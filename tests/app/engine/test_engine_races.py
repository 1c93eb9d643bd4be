"""Regression tests for the engine races found in review (issue 8, defects 1-7).

Each drives the real worker and the bundled model; each failed before its fix.
"""

from __future__ import annotations

import os
import queue
import threading

import pytest

from app.engine import events as ev
from app.engine.local import LocalEngine
from app.settings import RuntimeSettings, SamplingSettings

from helpers import run_turn, wait_for

SETTINGS = RuntimeSettings(n_ctx=1024, n_threads=2, n_threads_batch=2)
LONG = SamplingSettings(temperature=0.0, max_tokens=400)
SHORT = SamplingSettings(temperature=0.0, max_tokens=6)
STORY = [{"role": "user", "content": "Write a long story about a ship at sea."}]


def _loaded(engine: LocalEngine, model, settings=SETTINGS) -> ev.ModelLoaded:
    engine.load(model, settings)
    last = wait_for(engine, ev.ModelLoaded | ev.EngineError)[-1]  # type: ignore[arg-type]
    assert isinstance(last, ev.ModelLoaded), last
    return last


def _tokens(engine: LocalEngine, request_id: int, count: int) -> None:
    seen = 0
    while seen < count:
        event = engine.next_event(timeout=60)
        seen += isinstance(event, ev.Token) and event.request_id == request_id


def test_a_listener_that_raises_never_stops_the_events(bundled_model):
    """Defect 1: an exception in the listener (a store error in the session's
    flush) killed the reader thread, and the turn never finished."""
    events: queue.Queue = queue.Queue()
    failures = []

    def listener(event):
        if isinstance(event, ev.Token) and not failures:
            failures.append(event)
            raise OSError("disk I/O error")  # what sqlite3 raises on a failing disk
        events.put(event)

    with LocalEngine(listener) as engine:
        engine.load(bundled_model, SETTINGS)
        while not isinstance(events.get(timeout=60), ev.ModelLoaded):
            pass
        request_id = engine.submit(STORY, SHORT)
        seen = []
        while not (seen and isinstance(seen[-1], ev.TurnFinished)):
            seen.append(events.get(timeout=60))
        errors = [e for e in seen if isinstance(e, ev.EngineError)]
        assert errors and "disk I/O error" in errors[0].message
        assert errors[0].request_id == request_id
        assert seen[-1].request_id == request_id
        assert engine.state == "ready"


def test_stop_for_a_turn_does_not_abort_the_load_queued_behind_it(bundled_model):
    """Defect 2: the cancel flag set by Stop stayed set, and the reload that was
    waiting behind the turn was aborted by llama.cpp's progress callback."""
    with LocalEngine() as engine:
        _loaded(engine, bundled_model)
        request_id = engine.submit(STORY, LONG)
        _tokens(engine, request_id, 3)
        load_id = engine.load(bundled_model, SETTINGS.with_changes(n_ctx=512))
        engine.cancel(request_id)  # the user's Stop, for the reply
        seen = wait_for(engine, ev.ModelLoaded | ev.EngineError)  # type: ignore[arg-type]
        finished = [e for e in seen if isinstance(e, ev.TurnFinished)]
        assert finished and finished[0].metrics.stop_reason == "cancelled"
        assert isinstance(seen[-1], ev.ModelLoaded), seen[-1]
        assert seen[-1].load_id == load_id and seen[-1].n_ctx == 512


def test_restart_during_a_turn_ends_the_turn_and_serves_the_next(bundled_model):
    """Defect 3: restart() took the old worker's exit as expected and the running
    turn never got its TurnFinished, which wedged every request after it."""
    with LocalEngine() as engine:
        _loaded(engine, bundled_model)
        request_id = engine.submit(STORY, LONG)
        _tokens(engine, request_id, 3)
        engine.restart()
        seen = wait_for(engine, ev.ModelLoaded)
        finished = [e for e in seen if isinstance(e, ev.TurnFinished)]
        assert [f.request_id for f in finished] == [request_id]
        assert finished[0].metrics.stop_reason == "cancelled"
        assert finished[0].metrics.output_tokens >= 3
        after = run_turn(engine, engine.submit(STORY, SHORT))
        assert after[-1].metrics.stop_reason in ("eos", "length")


def test_large_messages_from_many_threads_reach_the_worker_whole(bundled_model):
    """Defect 4: the pipe was written from two threads, one without the lock; a
    message over one pipe buffer (64 KiB here) could interleave with another."""
    big = [{"role": "user", "content": "Say yes. " + "x " * 40_000}]  # ~80 KB pickled
    with LocalEngine() as engine:
        _loaded(engine, bundled_model, SETTINGS.with_changes(n_ctx=256))
        ids: list[int] = []
        lock = threading.Lock()

        def send_some():
            for _ in range(3):
                rid = engine.submit(big, SHORT)
                with lock:
                    ids.append(rid)

        threads = [threading.Thread(target=send_some) for _ in range(4)]
        for thread in threads:
            thread.start()
        engine.load(bundled_model, SETTINGS.with_changes(n_ctx=256))  # a send from another path
        for thread in threads:
            thread.join()
        finished = {}
        while len(finished) < len(ids):
            event = engine.next_event(timeout=120)
            assert not isinstance(event, ev.EngineCrashed), event
            if isinstance(event, ev.TurnFinished):
                finished[event.request_id] = event
        # Each prompt is longer than the context: refused whole, one line, never garbled.
        assert set(finished) == set(ids)
        assert engine.worker_pid is not None


def test_two_loads_in_flight_each_report_their_own_settings(bundled_model):
    """Defect 5: one slot for the load in flight; the first ModelLoaded recorded
    the second load's path and settings, and a restart reloaded the wrong ones."""
    with LocalEngine() as engine:
        first = engine.load(bundled_model, SETTINGS.with_changes(n_ctx=512))
        second = engine.load(bundled_model, SETTINGS.with_changes(n_ctx=768))
        loaded = []
        while len(loaded) < 2:
            event = engine.next_event(timeout=60)
            if isinstance(event, ev.ModelLoaded):
                loaded.append(event)
        assert [(e.load_id, e.settings["n_ctx"]) for e in loaded] == [(first, 512), (second, 768)]
        engine.restart()
        assert wait_for(engine, ev.ModelLoaded)[-1].settings["n_ctx"] == 768


def test_the_state_lock_is_free_while_a_worker_spawns(bundled_model):
    """Defect 6: the lock was held across the process spawn, so a GUI reading
    engine.state on every event stalled for the spawn's duration."""
    with LocalEngine() as engine:
        seen_free = threading.Event()
        done = threading.Event()

        def watch():
            while not done.is_set():
                if engine._spawn_lock.locked() and engine._lock.acquire(blocking=False):
                    engine._lock.release()
                    seen_free.set()
                    return

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            _loaded(engine, bundled_model)
        finally:
            done.set()
            watcher.join()
        assert seen_free.is_set(), "the state lock was never free during the spawn"


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_engines_leave_no_file_descriptor_open():
    """Defect 7: mkstemp(...)[1] dropped an open descriptor per engine."""
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(10):
        LocalEngine().close()
    assert len(os.listdir("/proc/self/fd")) <= before


def test_a_cancel_before_submit_ends_the_request_when_it_arrives():
    """The GUI cancels by the id it took from new_request_id(), possibly before its
    background send reached submit(): the request must end there, not run."""
    with LocalEngine() as engine:
        request_id = engine.new_request_id()
        engine.cancel(request_id)
        assert engine.submit(STORY, SHORT, request_id=request_id) == request_id
        finished = engine.next_event(timeout=5)
        assert isinstance(finished, ev.TurnFinished) and finished.request_id == request_id
        assert finished.metrics.stop_reason == "cancelled"
        assert engine.state == "idle" and engine.worker_pid is None
