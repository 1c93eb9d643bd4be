"""Cancel during prefill, on the real bundled model with a ~1,300-token prompt.

llama.cpp's abort callback asks the cancel flag while the prompt is evaluated,
so a cancel does not wait for the prefill to end, and no token is sampled.
The latency is recorded (printed and in the test report), never asserted.
"""

from __future__ import annotations

import time

from app.engine import events as ev
from app.settings import SamplingSettings

from helpers import run_turn

PASSAGE = (
    "The quick brown fox jumps over the lazy dog while the river runs past "
    "old stone bridges and quiet villages under a pale autumn sky. "
)
LONG_PROMPT = [{"role": "user", "content": "Summarise this text: " + PASSAGE * 52}]
SAMPLING = SamplingSettings(temperature=0.0, max_tokens=40)


def test_cancel_during_prefill_ends_the_turn_before_its_first_token(loaded_engine, record_property):
    engine, _ = loaded_engine
    request_id = engine.submit(LONG_PROMPT, SAMPLING)
    seen, cancel_ns = [], 0
    while True:
        event = engine.next_event(timeout=120)
        if event.request_id != request_id:
            continue
        seen.append(event)
        if isinstance(event, ev.TurnStarted):
            assert event.prompt_tokens > 1200
            cancel_ns = time.monotonic_ns()
            engine.cancel(request_id)
        if isinstance(event, ev.TurnFinished):
            break
    latency_ms = (time.monotonic_ns() - cancel_ns) / 1e6
    record_property("prefill_cancel_latency_ms", round(latency_ms, 1))
    print(f"cancel during prefill took effect after {latency_ms:.0f} ms")
    finished = seen[-1]
    assert finished.metrics.stop_reason == "cancelled"
    assert not [e for e in seen if isinstance(e, ev.Token)]
    assert finished.text == "" and finished.metrics.output_tokens == 0
    assert finished.metrics.prefill_ms is None  # the prefill never finished
    assert finished.metrics.ttft_ms is None


def test_after_a_stopped_prefill_the_next_turn_reuses_what_was_evaluated(loaded_engine):
    engine, _ = loaded_engine
    prompt = [{"role": "user", "content": "Count the words: " + PASSAGE * 40}]
    request_id = engine.submit(prompt, SAMPLING)
    while True:
        event = engine.next_event(timeout=120)
        if event.request_id != request_id:
            continue
        if isinstance(event, ev.TurnStarted):
            time.sleep(0.5)  # into the prefill: a part of the prompt is evaluated
            engine.cancel(request_id)
        if isinstance(event, ev.TurnFinished):
            break
    assert event.metrics.stop_reason == "cancelled" and event.metrics.output_tokens == 0
    kept = event.metrics.kv_cells_used
    again = run_turn(engine, engine.submit(prompt, SAMPLING.with_changes(max_tokens=2)))[-1]
    # The cache holds whole chunks of this prompt (maybe none, on a slow machine):
    # they are reused and the answer is the usual one.
    assert again.metrics.prompt_tokens_cached == kept
    assert again.metrics.stop_reason in ("eos", "length") and again.text
