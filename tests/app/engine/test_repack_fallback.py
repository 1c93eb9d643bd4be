"""Weight repacking: the fallback when llama.cpp's repacked-weight kernels crash.

The crash itself (SIGSEGV in llama.cpp's AMX kernels) needs a particular CPU, so
the worker's fault injection (GLASSBOX_TEST_FAULT, read only by the worker)
kills it with a real SIGSEGV where that crash happens, and only while extra
buffers are on. Everything else is the real engine and the bundled model.
"""

from __future__ import annotations

import json

import pytest

from app.engine import events as ev
from app.engine.local import LocalEngine
from app.engine.repack_guard import RepackMemory
from app.engine.worker import FAULT_ENV
from app.machine import machine_model_key
from app.settings import RuntimeSettings, SamplingSettings

from helpers import run_turn, wait_for

SETTINGS = RuntimeSettings(n_ctx=1024, n_threads=2, n_threads_batch=2)
GREEDY = SamplingSettings(temperature=0.0, max_tokens=8)
HELLO = [{"role": "user", "content": "Say hello."}]


@pytest.fixture
def memory(tmp_path) -> RepackMemory:
    # Its own file: a decision stored here must not turn repacking off for the
    # rest of the suite, which shares one cache directory.
    return RepackMemory(tmp_path / "repack.json")


def _load(engine: LocalEngine, model, settings=SETTINGS) -> list[ev.EngineEvent]:
    engine.load(model, settings)
    return wait_for(engine, ev.ModelLoaded | ev.EngineError | ev.EngineCrashed)  # type: ignore[arg-type]


def test_a_crash_in_warm_up_falls_back_once_and_is_remembered(bundled_model, memory, monkeypatch):
    monkeypatch.setenv(FAULT_ENV, "warmup")
    with LocalEngine(repack_memory=memory) as engine:
        events = _load(engine, bundled_model)
        loaded = events[-1]
        assert isinstance(loaded, ev.ModelLoaded), events
        assert not any(isinstance(e, ev.EngineCrashed) for e in events)
        assert loaded.repack == "auto" and not loaded.repack_used
        assert "running without weight repacking" in loaded.repack_note
        assert "SIGSEGV" in loaded.repack_note and "warming up" in loaded.repack_note
        # Two load starts: the user's, then the engine's own retry, which says why.
        starts = [e for e in events if isinstance(e, ev.ModelLoadStarted)]
        assert len(starts) == 2 and starts[1].note == loaded.repack_note
        # The model answers after the fallback.
        finished = run_turn(engine, engine.submit(HELLO, GREEDY))[-1]
        assert finished.metrics.stop_reason in ("eos", "length") and finished.text

    stored = json.loads(memory.path.read_text())
    assert stored[machine_model_key(bundled_model)]["repack"] == "off"

    # The next start reads the decision: it loads without repacking straight
    # away, so the fault (still armed) never fires and there is no second crash.
    with LocalEngine(repack_memory=memory) as engine:
        events = _load(engine, bundled_model)
        loaded = events[-1]
        assert isinstance(loaded, ev.ModelLoaded)
        assert len([e for e in events if isinstance(e, ev.ModelLoadStarted)]) == 1
        assert not loaded.repack_used and "remembered since" in loaded.repack_note


def test_a_crash_in_the_first_turn_reloads_and_serves_the_waiting_requests(
    bundled_model, memory, monkeypatch
):
    monkeypatch.setenv(FAULT_ENV, "first-turn")
    with LocalEngine(repack_memory=memory) as engine:
        assert isinstance(_load(engine, bundled_model)[-1], ev.ModelLoaded)
        first = engine.submit(HELLO, GREEDY)
        second = engine.submit([{"role": "user", "content": "Name a colour."}], GREEDY)
        seen = []
        finished: dict[int, ev.TurnFinished] = {}
        while len(finished) < 2:
            event = engine.next_event(timeout=60)
            seen.append(event)
            if isinstance(event, ev.TurnFinished):
                finished[event.request_id] = event
        assert not any(isinstance(e, ev.EngineCrashed | ev.EngineError) for e in seen), seen
        reloaded = [e for e in seen if isinstance(e, ev.ModelLoaded)]
        assert len(reloaded) == 1 and not reloaded[0].repack_used
        assert "in the first turn" in reloaded[0].repack_note
        for request_id in (first, second):
            assert finished[request_id].text
            assert finished[request_id].metrics.stop_reason in ("eos", "length")
    assert memory.decision(bundled_model)["repack"] == "off"


def test_at_most_one_fallback_and_none_when_the_user_asked_for_repacking(
    bundled_model, memory, monkeypatch
):
    monkeypatch.setenv(FAULT_ENV, "warmup")
    with LocalEngine(repack_memory=memory) as engine:
        events = _load(engine, bundled_model, SETTINGS.with_changes(repack="on"))
        assert isinstance(events[-1], ev.EngineCrashed | ev.EngineError), events
        assert not any(isinstance(e, ev.ModelLoaded) for e in events)
    assert memory.decision(bundled_model) is None  # "on" is the user's word; nothing learned


def test_repack_off_never_uses_extra_buffers(bundled_model, memory, monkeypatch):
    monkeypatch.setenv(FAULT_ENV, "warmup")
    with LocalEngine(repack_memory=memory) as engine:
        events = _load(engine, bundled_model, SETTINGS.with_changes(repack="off"))
        loaded = events[-1]
        assert isinstance(loaded, ev.ModelLoaded)
        assert not loaded.repack_used and not loaded.extra_buffers_mib and not loaded.repack_note


def test_a_real_multi_token_turn_right_after_a_fresh_load(bundled_model, memory):
    """No fault injected: what a user's first message does, with repacking on auto."""
    with LocalEngine(repack_memory=memory) as engine:
        loaded = _load(engine, bundled_model)[-1]
        assert isinstance(loaded, ev.ModelLoaded)
        # Repacking stays on, unless this CPU's repacked kernels really crashed (a Xeon
        # with AMX): then the load fell back and says why.
        assert loaded.repack_used or "running without weight repacking" in loaded.repack_note
        prompt = [{"role": "user", "content": "List five animals that live in the sea, " * 4}]
        events = run_turn(engine, engine.submit(prompt, GREEDY))
        started = next(e for e in events if isinstance(e, ev.TurnStarted))
        assert started.prompt_tokens >= 32  # a real multi-token prefill
        assert events[-1].metrics.stop_reason in ("eos", "length") and events[-1].text
        assert loaded.system_info  # the CPU features llama.cpp sees, for `glassbox doctor`
