"""Model loading: llama.cpp's own progress, cancel, and reloading with other settings."""

from __future__ import annotations

from app.engine import events as ev
from app.settings import RuntimeSettings, SamplingSettings

from helpers import load_engine, run_turn, wait_for


def test_load_reports_progress_in_order(bundled_model):
    engine, _ = load_engine(bundled_model, RuntimeSettings(n_ctx=256))
    try:
        engine.load(bundled_model, RuntimeSettings(n_ctx=512))
        events = wait_for(engine, ev.ModelLoaded)
        fractions = [e.fraction for e in events if isinstance(e, ev.ModelLoadProgress)]
        assert fractions and fractions == sorted(fractions)
        assert fractions[-1] == 1.0
        assert isinstance(events[0], ev.ModelLoadStarted)
        assert events[-1].n_ctx == 512
    finally:
        engine.close()


def test_cancel_aborts_a_load_and_keeps_the_previous_model(bundled_model):
    engine, first = load_engine(bundled_model, RuntimeSettings(n_ctx=256))
    try:
        engine.load(bundled_model, RuntimeSettings(n_ctx=1024))
        engine.cancel()
        error = wait_for(engine, ev.EngineError | ev.ModelLoaded)[-1]
        assert isinstance(error, ev.EngineError) and "cancelled" in error.message
        assert engine.model_info is first and engine.state == "ready"
        reply = run_turn(
            engine,
            engine.submit([{"role": "user", "content": "Hi"}], SamplingSettings(max_tokens=4)),
        )[-1]
        assert reply.metrics.kv_cells_total == 256
    finally:
        engine.close()


def test_reload_with_a_quantized_kv_cache(bundled_model):
    engine, f16 = load_engine(bundled_model, RuntimeSettings(n_ctx=512))
    try:
        engine.load(
            bundled_model, RuntimeSettings(n_ctx=512, flash_attn=True, kv_cache_type="q8_0")
        )
        q8 = wait_for(engine, ev.ModelLoaded | ev.EngineError)[-1]
        assert isinstance(q8, ev.ModelLoaded), q8
        # q8_0 stores 32 values in 34 bytes, f16 in 64.
        assert q8.kv_bytes_total * 64 == f16.kv_bytes_total * 34
        assert abs(q8.kv_bytes_total / 2**20 - q8.kv_buffer_mib_reported) < 0.005
        reply = run_turn(
            engine,
            engine.submit([{"role": "user", "content": "Hi"}], SamplingSettings(max_tokens=4)),
        )[-1]
        assert reply.metrics.kv_bytes_total == q8.kv_bytes_total
    finally:
        engine.close()


SCRIPT = """
from app.engine import events as ev
from app.engine.local import LocalEngine
from app.paths import bundled_model_path
from app.settings import RuntimeSettings, SamplingSettings
print("script body runs")
engine = LocalEngine()
engine.load(bundled_model_path(), RuntimeSettings(n_ctx=256))
event = engine.next_event(60)
while not isinstance(event, (ev.ModelLoaded, ev.EngineError, ev.EngineCrashed)):
    event = engine.next_event(60)
print(type(event).__name__)
engine.close()
"""


def test_a_script_without_a_file_or_main_guard_can_start_the_engine(tmp_path):
    # spawn would re-run the caller's __main__ in the worker: impossible for `python -`,
    # and a second run of an unguarded script. The worker must not need it.
    import subprocess
    import sys

    from_stdin = subprocess.run(
        [sys.executable, "-"], input=SCRIPT, capture_output=True, text=True, timeout=120
    )
    assert from_stdin.stdout.split() == ["script", "body", "runs", "ModelLoaded"], from_stdin.stderr
    script = tmp_path / "unguarded.py"
    script.write_text(SCRIPT)
    from_file = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120
    )
    assert from_file.stdout.split() == ["script", "body", "runs", "ModelLoaded"], from_file.stderr
