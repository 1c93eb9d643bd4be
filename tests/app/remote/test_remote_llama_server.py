"""RemoteEngine against llama-cpp-python's own OpenAI-compatible server and the bundled model."""

from __future__ import annotations

import json
import queue
from pathlib import Path

import pytest
from remote_helpers import EVENT_TIMEOUT_S, connect, turn_events
from remote_servers import LlamaServer

from app.cli.main import main
from app.engine import events as ev
from app.metrics import FIELD_NAMES, STOP_REASONS
from app.session import ChatSession, ReplyStored
from app.settings import SamplingSettings
from app.storage.store import Store

MESSAGES = [{"role": "user", "content": "Write a long story about a cat."}]
SHORT = SamplingSettings(temperature=0.0, max_tokens=8)
LONG = SamplingSettings(temperature=0.0, max_tokens=200)


def test_streamed_turn_fills_the_client_side_metrics(llama_server: LlamaServer) -> None:
    with connect(llama_server.url) as engine:
        assert engine.model_info is not None and engine.model_info.model_name == "smollm2"
        events = turn_events(engine, engine.submit(MESSAGES, SHORT))
    kinds = [type(e) for e in events]
    assert kinds[0] is ev.RequestQueued and kinds[1] is ev.TurnStarted
    tokens = [e for e in events if isinstance(e, ev.Token)]
    finished = events[-1]
    assert isinstance(finished, ev.TurnFinished)
    m = finished.metrics
    assert finished.text == "".join(t.text for t in tokens) and finished.text
    assert [t.index for t in tokens] == list(range(len(tokens)))
    assert m.output_tokens == len(tokens) and m.stop_reason in STOP_REASONS
    assert m.stop_reason == "length"
    assert m.queue_ms is not None and m.queue_ms >= 0
    assert m.ttft_ms is not None and m.total_ms is not None and m.ttft_ms <= m.total_ms
    assert m.itl_ms_p50 is not None and m.itl_ms_p95 is not None
    assert m.decode_tok_s is not None and m.decode_tok_s > 0
    # This server reports no usage, timings, /slots or /metrics: unknown, not guessed.
    assert m.prompt_tokens is None and m.prefill_ms is None
    assert m.kv_cells_total is None and m.kv_fill is None


def test_stop_closes_the_stream_and_the_server_serves_on(llama_server: LlamaServer) -> None:
    with connect(llama_server.url) as engine:
        request_id = engine.submit(MESSAGES, LONG)
        seen = []
        while True:
            event = engine.next_event(timeout=EVENT_TIMEOUT_S)
            if event.request_id != request_id:
                continue
            seen.append(event)
            if isinstance(event, ev.Token) and event.index == 1:
                engine.cancel(request_id)
            if isinstance(event, ev.TurnFinished):
                break
        assert not [e for e in seen if isinstance(e, ev.EngineError)]
        finished = seen[-1]
        assert isinstance(finished, ev.TurnFinished)
        assert finished.metrics.stop_reason == "cancelled"
        assert finished.text and finished.metrics.output_tokens is not None
        assert finished.metrics.output_tokens < LONG.max_tokens
        after = turn_events(engine, engine.submit(MESSAGES, SHORT))
        assert after[-1].metrics.stop_reason == "length"  # type: ignore[attr-defined]


def test_server_killed_mid_reply_keeps_the_partial_reply(
    bundled_model: Path, tmp_path: Path
) -> None:
    server = LlamaServer(bundled_model, tmp_path)
    store = Store.open(tmp_path / "chat.sqlite3")
    events: queue.Queue[object] = queue.Queue()
    seen: list[object] = []
    try:
        with connect(server.url) as engine:
            session = ChatSession(engine, store, events.put)
            conversation = store.create_conversation("remote")
            request_id = session.send(conversation.id, "Write a long story about a cat.", LONG)
            while not isinstance(seen[-1] if seen else None, ReplyStored):
                seen.append(events.get(timeout=EVENT_TIMEOUT_S))
                if isinstance(seen[-1], ev.Token) and seen[-1].index == 1:
                    server.kill()
    finally:
        server.stop()
    try:
        errors = [e.message for e in seen if isinstance(e, ev.EngineError)]
        assert len(errors) == 1 and "mid-reply" in errors[0], errors
        finished = next(e for e in seen if isinstance(e, ev.TurnFinished))
        assert finished.request_id == request_id
        assert finished.metrics.stop_reason == "error" and finished.text
        stored = store.messages(conversation.id)[-1]
        assert stored.role == "assistant" and stored.partial
        assert stored.content == finished.text
    finally:
        store.close()


def test_load_experiment_against_the_server_at_1_and_4(
    llama_server: LlamaServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "load.json"
    argv = ["load", "--endpoint", llama_server.url, "--concurrency", "1,4", "--max-tokens", "4"]
    assert main([*argv, "--json", str(out)]) == 0
    document = json.loads(out.read_text(encoding="utf-8"))
    assert set(document) == {"model", "settings", "runs"}
    assert document["model"]["model_name"] == "smollm2"
    assert document["settings"]["load"]["concurrency"] == [1, 4]
    runs = document["runs"]
    assert [(r["mode"], r["concurrency"], len(r["requests"])) for r in runs] == [
        ("remote", 1, 1),
        ("remote", 4, 4),
    ]
    for run in runs:
        assert run["aggregate_tok_s"] > 0 and not run["errors"] and not run["timed_out"]
        for request in run["requests"]:
            assert set(request) == set(FIELD_NAMES)
            assert 0 < request["output_tokens"] <= 4
            assert request["ttft_ms"] <= request["total_ms"]
            assert request["stop_reason"] in ("length", "eos")
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["mode", "N", "agg"] and len(table) == 3
