"""Bad model files, bad settings and prompts that do not fit: one clear line, nothing lost."""

from __future__ import annotations

import shutil

import pytest

from app.engine import events as ev
from app.engine.local import LocalEngine
from app.errors import SettingsError
from app.settings import RuntimeSettings, SamplingSettings

from helpers import load_engine, run_turn, wait_for

CONTEXT_TEXT = "The quick brown fox jumps over the lazy dog. "


@pytest.fixture(scope="module")
def small_context_engine(bundled_model):
    engine, loaded = load_engine(bundled_model, RuntimeSettings(n_ctx=256))
    yield engine, loaded
    engine.close()


def _load_error(path) -> str:
    engine = LocalEngine()
    try:
        engine.load(path, RuntimeSettings(n_ctx=256))
        events = wait_for(engine, ev.ModelLoaded | ev.EngineError)
        assert isinstance(events[-1], ev.EngineError), events[-1]
        assert engine.state == "idle"
        return events[-1].message
    finally:
        engine.close()


def test_missing_file(tmp_path):
    message = _load_error(tmp_path / "nope.gguf")
    assert "nope.gguf" in message and "\n" not in message


def test_not_a_gguf_file(tmp_path):
    path = tmp_path / "notes.gguf"
    path.write_text("this is not a model\n" * 100)
    message = _load_error(path)
    assert "not a GGUF" in message or "GGUF" in message


def test_truncated_gguf(bundled_model, tmp_path):
    path = tmp_path / "truncated.gguf"
    with open(bundled_model, "rb") as src, open(path, "wb") as dst:
        dst.write(src.read(bundled_model.stat().st_size // 2))
    message = _load_error(path)
    assert "truncated" in message.lower()


def test_corrupted_tensor_table(bundled_model, tmp_path):
    path = tmp_path / "corrupt.gguf"
    shutil.copy(bundled_model, path)
    with open(path, "r+b") as f:
        f.seek(8)  # tensor count, right after magic and version
        f.write((10**12).to_bytes(8, "little"))
    message = _load_error(path)
    assert "corrupt" in message.lower() or "tensor" in message.lower()


def test_a_bad_file_keeps_the_previous_model(bundled_model, tmp_path):
    engine, loaded = load_engine(bundled_model, RuntimeSettings(n_ctx=256))
    try:
        bad = tmp_path / "bad.gguf"
        bad.write_bytes(b"GGUF" + b"\xff" * 64)
        engine.load(bad, RuntimeSettings(n_ctx=256))
        error = wait_for(engine, ev.ModelLoaded | ev.EngineError)[-1]
        assert isinstance(error, ev.EngineError)
        assert engine.state == "ready" and engine.model_info is loaded
        reply = run_turn(
            engine,
            engine.submit([{"role": "user", "content": "Hi"}], SamplingSettings(max_tokens=4)),
        )[-1]
        assert reply.metrics.stop_reason in ("eos", "length")
    finally:
        engine.close()


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        (dict(n_ctx=0), "n_ctx"),
        (dict(n_ctx=-5), "n_ctx"),
        (dict(n_threads=0), "threads"),
        (dict(n_batch=0), "batch"),
        (dict(n_gpu_layers=-2), "gpu layers"),
        (dict(kv_cache_type="q3_x"), "KV cache type"),
        (dict(kv_cache_type="q8_0", flash_attn=False), "flash attention"),
    ],
)
def test_invalid_runtime_settings_are_refused(bundled_model, settings, fragment):
    engine = LocalEngine()
    try:
        with pytest.raises(SettingsError, match=fragment):
            engine.load(bundled_model, RuntimeSettings(**settings))
    finally:
        engine.close()


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        (dict(temperature=-0.1), "temperature"),
        (dict(top_p=0), "top-p"),
        (dict(top_k=-1), "top-k"),
        (dict(min_p=1.5), "min-p"),
        (dict(max_tokens=0), "max tokens"),
        (dict(repeat_penalty=0), "repeat penalty"),
        (dict(seed=-1), "seed"),
    ],
)
def test_invalid_sampling_settings_are_refused(small_context_engine, settings, fragment):
    engine, _ = small_context_engine
    with pytest.raises(SettingsError, match=fragment):
        engine.submit([{"role": "user", "content": "hi"}], SamplingSettings(**settings))


def test_one_message_longer_than_the_context_is_refused(small_context_engine):
    engine, _ = small_context_engine
    huge = [{"role": "user", "content": CONTEXT_TEXT * 100}]
    events = run_turn(engine, engine.submit(huge, SamplingSettings(max_tokens=8)))
    errors = [e for e in events if isinstance(e, ev.EngineError)]
    assert len(errors) == 1
    message = errors[0].message
    assert "context holds 256 tokens" in message
    prompt_tokens = int(message.split("the message is ")[1].split(" tokens")[0])
    assert prompt_tokens > 256
    assert events[-1].metrics.stop_reason == "error"
    assert not any(isinstance(e, ev.Token) for e in events)


def test_a_history_longer_than_the_context_drops_the_oldest_turns(small_context_engine):
    engine, _ = small_context_engine
    history = []
    for i in range(6):
        history += [
            {"role": "user", "content": f"Question {i}: " + CONTEXT_TEXT * 3},
            {"role": "assistant", "content": f"Answer {i}: " + CONTEXT_TEXT * 2},
        ]
    history.append({"role": "user", "content": "What was the last question number?"})
    history.insert(0, {"role": "system", "content": "You are terse."})
    events = run_turn(engine, engine.submit(history, SamplingSettings(max_tokens=16)))
    started = next(e for e in events if isinstance(e, ev.TurnStarted))
    assert started.dropped_messages > 0
    assert started.prompt_tokens + 16 <= 256
    assert events[-1].metrics.stop_reason in ("eos", "length")


def test_requests_fail_cleanly_when_no_model_could_be_loaded(tmp_path):
    engine = LocalEngine()
    try:
        engine.load(tmp_path / "absent.gguf", RuntimeSettings(n_ctx=256))
        request_id = engine.submit([{"role": "user", "content": "hi"}])
        events = run_turn(engine, request_id, timeout=30)
        errors = [e for e in events if isinstance(e, ev.EngineError)]
        assert errors and "no model is loaded" in errors[-1].message
        assert events[-1].metrics.stop_reason == "error"
    finally:
        engine.close()
