"""The diagnosis names the part of a turn that took the time, from figures built by hand."""

from __future__ import annotations

import pytest

from app import diagnosis as dx
from app.engine import events as ev
from app.metrics import TurnMetrics
from app.turn_trace import TraceRecorder, TurnTrace


def turn(queue=5.0, prefill=80.0, decode_ms=300.0, out=30, evaluated=20, tok_s=None):
    ttft = queue + prefill
    return TurnMetrics(
        queue_ms=queue,
        ttft_ms=ttft,
        prefill_ms=prefill,
        prompt_tokens=evaluated,
        prompt_tokens_cached=0,
        prompt_tokens_evaluated=evaluated,
        output_tokens=out,
        decode_ms=decode_ms,
        decode_tok_s=tok_s if tok_s is not None else (out - 1) / decode_ms * 1000,
        total_ms=ttft + decode_ms,
        stop_reason="eos",
    )


def test_a_quick_turn_is_not_slow():
    d = dx.diagnose(turn())
    assert d.cause == dx.NOT_SLOW
    assert d.advice == dx.ADVICE[dx.NOT_SLOW]


def test_a_long_prefill_is_a_long_prompt():
    d = dx.diagnose(turn(prefill=4000.0, evaluated=1500))
    assert d.cause == dx.LONG_PROMPT
    assert "1500 prompt tokens" in d.sentence
    assert d.parts_ms["prefill"] == pytest.approx(4000.0)


def test_a_long_prefill_after_dropped_messages_is_a_full_context():
    trace = TurnTrace(dropped_messages=3)
    d = dx.diagnose(turn(prefill=2500.0, evaluated=900), trace)
    assert d.cause == dx.FULL_CONTEXT
    assert "3 oldest messages" in d.sentence


def test_a_long_decode_at_a_normal_rate_is_a_long_answer():
    d = dx.diagnose(turn(decode_ms=5000.0, out=500), model=dx.ModelContext(100.0, 120.0))
    assert d.cause == dx.LONG_ANSWER
    assert "500 tokens" in d.sentence


def test_a_long_queue_is_a_queue_wait():
    d = dx.diagnose(turn(queue=3000.0))
    assert d.cause == dx.QUEUE_WAIT


def test_the_queue_part_spent_on_a_load_is_a_cold_start():
    trace = TurnTrace(load_wait_ms=2800.0)
    d = dx.diagnose(turn(queue=3000.0), trace)
    assert d.cause == dx.COLD_START
    assert d.parts_ms["load"] == pytest.approx(2800.0)
    assert d.parts_ms["queue"] == pytest.approx(200.0)


def test_decode_slower_than_reading_is_a_model_too_large():
    d = dx.diagnose(turn(decode_ms=600.0, out=4))
    assert d.cause == dx.TOO_LARGE
    assert "slower than people read" in d.sentence


def test_decode_far_under_ceiling_and_baseline_is_a_model_too_large():
    model = dx.ModelContext(baseline_decode_tok_s=100.0, ceiling_decode_tok_s=200.0)
    d = dx.diagnose(turn(decode_ms=3000.0, out=60), model=model)
    assert d.cause == dx.TOO_LARGE
    assert "ceiling" in d.sentence


def test_tight_memory_is_a_model_too_large():
    model = dx.ModelContext(memory_verdict="won't fit")
    d = dx.diagnose(turn(decode_ms=3000.0, out=300), model=model)
    assert d.cause == dx.TOO_LARGE


def test_every_cause_has_a_label_and_one_sentence_of_advice():
    for cause in dx.CAUSES:
        assert dx.LABELS[cause]
        advice = dx.ADVICE[cause]
        assert advice.endswith(".") and advice.count(". ") == 0


def test_to_dict_and_line():
    d = dx.diagnose(turn(queue=3000.0))
    data = d.to_dict()
    assert data["cause"] == "queue_wait" and set(data["parts_ms"]) == {
        "load",
        "queue",
        "prefill",
        "decode",
    }
    assert d.line().startswith("diagnosis: queue wait.")


def test_the_recorder_sees_a_request_that_waited_for_the_load():
    rec = TraceRecorder()
    t0 = 10_000_000_000
    rec.model_loaded(150.0, now_ns=t0 + 900_000_000)  # ready 0.9 s after the submit
    started = ev.TurnStarted(
        request_id=1, t_ns=t0 + 1_000_000_000, queue_ms=1000.0, dropped_messages=2
    )
    rec.turn_started(started)
    rec.tokens(1, [t0 + 1_100_000_000, t0 + 1_110_000_000, t0 + 1_130_000_000])
    trace = rec.turn_finished(1, TurnMetrics(decode_tok_s=90.0, output_tokens=3))
    assert trace.load_wait_ms == pytest.approx(900.0)
    assert trace.dropped_messages == 2
    assert trace.itl_ms == pytest.approx([10.0, 20.0])
    assert rec.best_decode_tok_s is None  # too few tokens to be a baseline


def test_the_recorder_ignores_a_load_before_the_submit():
    rec = TraceRecorder()
    rec.model_loaded(150.0, now_ns=1_000)
    trace = rec.turn_started(ev.TurnStarted(request_id=1, t_ns=5_000_000_000, queue_ms=2.0))
    assert trace.load_wait_ms == 0.0
    finished = rec.on_event(
        ev.TurnFinished(request_id=1, metrics=TurnMetrics(decode_tok_s=80.0, output_tokens=40))
    )
    assert finished is trace
    assert rec.best_decode_tok_s == 80.0


def test_a_busy_machine_is_not_blamed_on_the_model():
    trace = TurnTrace(others_cores=1.6)
    d = dx.diagnose(turn(decode_ms=20000.0, out=40), trace)
    assert d.cause == dx.LONG_ANSWER
    assert "Other programs kept 1.6 cores busy" in d.sentence


def test_the_recorder_measures_other_programs_cpu():
    rec = TraceRecorder(lambda: [None])
    rec.turn_started(ev.TurnStarted(request_id=4, t_ns=5_000_000_000, queue_ms=1.0))
    sum(i * i for i in range(200_000))  # our own CPU time: not counted as another program's
    trace = rec.turn_finished(4, TurnMetrics())
    assert trace.others_cores is not None and trace.others_cores >= 0.0  # /proc on Linux


def test_half_a_second_waiting_for_a_load_is_slow_even_in_a_quick_turn():
    d = dx.diagnose(turn(queue=700.0, prefill=50.0, decode_ms=100.0), TurnTrace(load_wait_ms=650.0))
    assert d.cause == dx.COLD_START


def test_child_pids_finds_a_child_process():
    import subprocess
    import sys

    from app.turn_trace import child_pids

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in child_pids()
    finally:
        child.kill()
        child.wait()


def test_a_load_stamped_late_by_a_busy_caller_still_counts_as_the_cold_start():
    rec = TraceRecorder()
    t0 = 10_000_000_000
    rec.model_loaded(150.0, now_ns=t0 + 1_500_000_000)  # read 0.5 s after the turn started
    trace = rec.turn_started(ev.TurnStarted(request_id=2, t_ns=t0 + 1_000_000_000, queue_ms=1000.0))
    assert trace.load_wait_ms == pytest.approx(1000.0)  # capped at the queue time
