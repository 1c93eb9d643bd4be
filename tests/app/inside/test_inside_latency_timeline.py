"""Session percentiles, the ITL histogram and a turn's timeline segments."""

from __future__ import annotations

import pytest

from app.latency_stats import SessionLatency, itl_histogram
from app.metrics import TurnMetrics
from app.turn_timeline import build_timeline
from app.turn_trace import TurnTrace


def test_session_percentiles_cover_every_turn():
    session = SessionLatency()
    session.add_turn(100.0, [10.0] * 98 + [50.0, 90.0])
    session.add_turn(300.0, [])
    session.add_turn(None, [10.0])
    ttft, itl = session.ttft(), session.itl()
    assert (ttft.count, itl.count) == (2, 101)
    assert ttft.p50 == pytest.approx(200.0)
    assert itl.p50 == pytest.approx(10.0)
    assert itl.p99 is not None and itl.p99 > itl.p95 >= itl.p50


def test_histogram_counts_every_gap_and_keeps_the_tail():
    hist = itl_histogram([10.0, 10.5, 11.0, 60.0], bins=6)
    assert sum(hist.counts) == 4
    assert hist.counts[-1] == 1 and hist.edges[-1] == pytest.approx(60.0)
    assert itl_histogram([]).counts == [0]


def test_timeline_segments_add_up_to_the_turn():
    t0 = 1_000_000_000
    trace = TurnTrace(
        submit_ns=t0,
        queue_ms=500.0,
        load_wait_ms=400.0,
        token_times_ns=[t0 + 900_000_000 + i * 10_000_000 for i in range(5)],
    )
    m = TurnMetrics(
        prefill_ms=300.0,
        prompt_tokens_cached=10,
        prompt_tokens_evaluated=90,
        output_tokens=5,
        decode_tok_s=100.0,
        stop_reason="eos",
    )
    tl = build_timeline(trace, m)
    kinds = [(s.kind, round(s.start_ms), round(s.end_ms)) for s in tl.segments]
    assert kinds == [
        ("load", 0, 400),
        ("queue", 400, 500),
        ("template", 500, 600),
        ("prefill", 600, 900),
        ("decode", 900, 940),
    ]
    assert tl.first_token_ms == pytest.approx(900.0)
    assert "10 cached + 90 evaluated" in tl.segments[3].label
    assert tl.end_ms == pytest.approx(940.0)
