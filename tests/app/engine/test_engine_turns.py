"""Event order, metrics invariants, prefix reuse, queueing and cancel on the real bundled model."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from app.engine import events as ev
from app.metrics import FIELD_NAMES, STOP_REASONS
from app.settings import SamplingSettings

from helpers import run_turn

GREEDY = SamplingSettings(temperature=0.0, max_tokens=24, seed=1)
QUESTION = [{"role": "user", "content": "Name three colours."}]


def test_loaded_event_describes_the_model(loaded_engine):
    engine, loaded = loaded_engine
    assert loaded.n_layers == 30
    assert loaded.has_chat_template and loaded.chat_format == "template"
    assert loaded.backend == "CPU" and loaded.n_layers_offloaded == 0
    assert loaded.n_ctx == 2048 and loaded.kv_cells_total == 2048
    assert loaded.kv_bytes_per_token > 0 and loaded.load_ms > 0
    assert engine.state == "ready"
    assert engine.worker_pid is not None


def test_llama_cpp_lives_only_in_the_worker(bundled_model):
    # A fresh interpreter: other tests here import llama_cpp on purpose, in-process.
    code = (
        "import sys\n"
        "from helpers import load_engine\n"
        "from pathlib import Path\n"
        f"engine, loaded = load_engine(Path({str(bundled_model)!r}))\n"
        "engine.close()\n"
        "print('llama_cpp' in sys.modules)"
    )
    tests_dir = str(Path(__file__).resolve().parents[2])
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=Path(tests_dir).parent,  # tests/app must not shadow the app package
        env={**os.environ, "PYTHONPATH": tests_dir},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False"


def test_event_order_of_a_turn(loaded_engine):
    engine, _ = loaded_engine
    request_id = engine.submit(QUESTION, GREEDY)
    events = run_turn(engine, request_id)
    kinds = [type(e) for e in events]
    assert kinds[0] is ev.RequestQueued
    assert kinds[1] is ev.TurnStarted
    assert kinds[-1] is ev.TurnFinished
    tokens = [e for e in events if isinstance(e, ev.Token)]
    assert kinds[2:-1] == [ev.Token] * len(tokens)
    assert [t.index for t in tokens] == list(range(len(tokens)))
    assert all(a.t_ns <= b.t_ns for a, b in itertools.pairwise(tokens))
    finished = events[-1]
    assert finished.text.strip()
    assert finished.metrics.output_tokens == len(tokens)
    assert "".join(t.text for t in tokens) == finished.text


def test_metrics_invariants(loaded_engine):
    engine, loaded = loaded_engine
    request_id = engine.submit(QUESTION, GREEDY.with_changes(max_tokens=12))
    m = run_turn(engine, request_id)[-1].metrics
    assert set(m.to_dict()) == set(FIELD_NAMES)
    assert m.prompt_tokens == m.prompt_tokens_cached + m.prompt_tokens_evaluated
    assert m.stop_reason in ("eos", "length") and m.stop_reason in STOP_REASONS
    # llama.cpp's own count (llama_memory_seq_pos_max + 1): every prompt token and
    # every output token except the last sampled one, which is never decoded.
    expected_cells = m.prompt_tokens + m.output_tokens - (1 if m.stop_reason == "length" else 0)
    assert m.kv_cells_used == expected_cells
    assert m.kv_cells_total == loaded.kv_cells_total
    assert m.kv_fill == m.kv_cells_used / m.kv_cells_total
    assert m.kv_bytes_total == loaded.kv_bytes_total
    assert m.kv_bytes_used == m.kv_cells_used * loaded.kv_bytes_per_token
    # decode rate is (n - 1) tokens over first-to-last token time.
    assert abs(m.decode_tok_s - (m.output_tokens - 1) / (m.decode_ms / 1000)) < 1e-6
    assert m.itl_ms_p50 <= m.itl_ms_p95 <= m.itl_ms_p99
    assert 0 <= m.queue_ms <= m.ttft_ms <= m.total_ms
    assert m.prefill_ms <= m.ttft_ms
    assert all(value is not None for value in m.to_dict().values())


def test_kv_bytes_total_matches_llama_cpp_report(loaded_engine):
    engine, loaded = loaded_engine
    # The figure llama.cpp printed when it created the context, read from the worker's log.
    log = engine.log_path.read_text(errors="replace")
    reported = [float(x) for x in re.findall(r"KV buffer size\s*=\s*([\d.]+) MiB", log)]
    assert reported, "llama.cpp did not report a KV buffer size"
    assert abs(loaded.kv_bytes_total / 2**20 - reported[-1]) < 0.005
    # n_ctx 2048, 30 layers, 3 KV heads of 64 dims, f16 K and V.
    assert loaded.kv_bytes_total == 2048 * 30 * (3 * 64 * 2) * 2


def test_second_turn_reuses_the_kv_prefix(loaded_engine):
    engine, _ = loaded_engine
    first = run_turn(engine, engine.submit(QUESTION, GREEDY))[-1]
    follow_up = [
        *QUESTION,
        {"role": "assistant", "content": first.text},
        {"role": "user", "content": "And three animals?"},
    ]
    second = run_turn(engine, engine.submit(follow_up, GREEDY))[-1].metrics
    assert second.prompt_tokens_cached > 0
    assert second.prompt_tokens_evaluated < second.prompt_tokens
    assert second.prompt_tokens == second.prompt_tokens_cached + second.prompt_tokens_evaluated


def test_requests_sent_during_a_turn_wait_in_the_queue(loaded_engine):
    engine, _ = loaded_engine
    first = engine.submit(QUESTION, GREEDY.with_changes(max_tokens=40))
    second = engine.submit(QUESTION, GREEDY.with_changes(max_tokens=4))
    order, finished = [], {}
    while len(finished) < 2:
        event = engine.next_event(timeout=60)
        if event.request_id in (first, second):
            order.append((type(event).__name__, event.request_id))
            if isinstance(event, ev.RequestQueued) and event.request_id == second:
                assert event.position == 1
            if isinstance(event, ev.TurnFinished):
                finished[event.request_id] = event.metrics
    # The second turn starts only after the first has finished...
    assert order.index(("TurnFinished", first)) < order.index(("TurnStarted", second))
    # ...and its queue time covers the wait.
    assert finished[second].queue_ms >= finished[first].total_ms * 0.5
    assert finished[second].queue_ms > finished[first].queue_ms


def test_cancel_takes_effect_within_one_token(loaded_engine):
    engine, _ = loaded_engine
    long_story = [{"role": "user", "content": "Write a very long story about the sea."}]
    request_id = engine.submit(long_story, SamplingSettings(temperature=0.0, max_tokens=1500))
    token_times, cancel_ns = [], None
    while True:
        event = engine.next_event(timeout=60)
        if event.request_id != request_id:
            continue
        if isinstance(event, ev.Token):
            token_times.append(event.t_ns)
            if len(token_times) == 5:
                # Worker and parent share CLOCK_MONOTONIC: tokens stamped after this
                # instant were produced after the flag was set.
                cancel_ns = time.monotonic_ns()
                engine.cancel(request_id)
        if isinstance(event, ev.TurnFinished):
            break
    assert event.metrics.stop_reason == "cancelled"
    # At most the token being decoded when the flag was set gets through.
    assert sum(t > cancel_ns for t in token_times) <= 1
    assert event.metrics.output_tokens == len(token_times) < 1500


def test_cancel_a_queued_request(loaded_engine):
    engine, _ = loaded_engine
    running = engine.submit(QUESTION, GREEDY.with_changes(max_tokens=30))
    queued = engine.submit(QUESTION, GREEDY)
    engine.cancel(queued)
    seen = {}
    while len(seen) < 2:
        event = engine.next_event(timeout=60)
        if isinstance(event, ev.TurnFinished) and event.request_id in (running, queued):
            seen[event.request_id] = event.metrics.stop_reason
        assert not (isinstance(event, ev.TurnStarted) and event.request_id == queued)
    assert seen[queued] == "cancelled"
    assert seen[running] in ("eos", "length")


def test_stop_strings_end_the_turn(loaded_engine):
    engine, _ = loaded_engine
    counting = [{"role": "user", "content": "Count from 1 to 20, separated by commas."}]
    events = run_turn(
        engine, engine.submit(counting, GREEDY.with_changes(max_tokens=80, stop=("\n5.",)))
    )
    finished = events[-1]
    assert finished.metrics.stop_reason == "stop"
    assert "\n5." not in finished.text and finished.text.count("\n") >= 3
    # The stream never shows what the final reply drops: a possible stop string is held back.
    streamed = "".join(e.text for e in events if isinstance(e, ev.Token))
    assert streamed == finished.text


def test_same_seed_same_reply(loaded_engine):
    engine, _ = loaded_engine
    sampling = SamplingSettings(temperature=0.9, seed=1234, max_tokens=20)
    story = [{"role": "user", "content": "Tell me a short story."}]
    a = run_turn(engine, engine.submit(story, sampling))[-1].text
    b = run_turn(engine, engine.submit(story, sampling))[-1].text
    assert a == b
