"""RemoteEngine against the stub: each fault's message, the partial reply kept, server figures."""

from __future__ import annotations

import httpx
import pytest
from remote_helpers import connect, connect_error, turn_events
from remote_servers import WORDS, StubHttpServer, free_port

from app.endpoints import Endpoint
from app.engine import events as ev
from app.engine.remote import RemoteEngine
from app.engine.remote_faults import transport_fault
from app.errors import SettingsError
from app.settings import SamplingSettings

MESSAGES = [{"role": "user", "content": "Hi"}]


def one_turn(
    url: str, model: str, **kwargs: object
) -> tuple[list[ev.EngineEvent], ev.TurnFinished]:
    with connect(url, model, **kwargs) as engine:
        events = turn_events(engine, engine.submit(MESSAGES))
    finished = events[-1]
    assert isinstance(finished, ev.TurnFinished)
    return events, finished


def errors_of(events: list[ev.EngineEvent]) -> list[str]:
    return [e.message for e in events if isinstance(e, ev.EngineError)]


def test_vllm_style_usage_and_prometheus_kv_fill(stub: StubHttpServer) -> None:
    events, finished = one_turn(stub.url, "vllm")
    m = finished.metrics
    assert finished.text == "".join(WORDS)
    assert [e.text for e in events if isinstance(e, ev.Token)] == WORDS
    assert (m.prompt_tokens, m.prompt_tokens_cached, m.prompt_tokens_evaluated) == (12, 8, 4)
    assert m.output_tokens == 4
    assert m.kv_fill == 0.25  # from /metrics, not computed
    assert m.kv_cells_total == 2048  # /slots
    assert m.kv_cells_used is None  # no timings: not known, not guessed
    assert m.prefill_ms is None and m.prefill_tok_s is None
    assert m.stop_reason == "length"
    assert m.ttft_ms is not None and m.queue_ms is not None and m.itl_ms_p50 is not None
    assert not errors_of(events)
    # What we asked for: a stream, with the usage block.
    assert stub.bodies[-1]["stream"] is True
    assert stub.bodies[-1]["stream_options"] == {"include_usage": True}


def test_llama_server_timings_fill_prefill_and_kv_cells() -> None:
    server = StubHttpServer(slots=True)  # no /metrics: kv_fill comes from the cells
    try:
        _, finished = one_turn(server.url, "llamacpp")
    finally:
        server.close()
    m = finished.metrics
    assert (m.prompt_tokens, m.prompt_tokens_cached, m.prompt_tokens_evaluated) == (15, 5, 10)
    assert m.prefill_ms == 20.0 and m.prefill_tok_s == pytest.approx(500.0)
    assert m.output_tokens == 4
    assert m.kv_cells_used == 5 + 10 + 4 and m.kv_cells_total == 2048
    assert m.kv_fill == pytest.approx(19 / 2048)
    assert m.stop_reason == "eos"  # "stop" without stop strings of ours


def test_wrong_api_key_is_refused_with_401(monkeypatch: pytest.MonkeyPatch) -> None:
    server = StubHttpServer(api_key="right-key")
    try:
        monkeypatch.setenv("GB_TEST_KEY", "wrong-key")
        endpoint = Endpoint(server.url, key_source="env", api_key_env="GB_TEST_KEY")
        with RemoteEngine(endpoint) as engine:
            engine.load("vllm")
            failed = [engine.next_event(timeout=30) for _ in range(2)][-1]
        assert isinstance(failed, ev.EngineError)
        assert "rejected the API key (401)" in failed.message
        assert "Invalid API key" in failed.message
        monkeypatch.setenv("GB_TEST_KEY", "right-key")
        _, finished = one_turn_with(endpoint)
        assert finished.text == "".join(WORDS)
        assert server.bodies  # the key went in a header, never in our files
    finally:
        server.close()


def one_turn_with(endpoint: Endpoint) -> tuple[list[ev.EngineEvent], ev.TurnFinished]:
    with RemoteEngine(endpoint) as engine:
        engine.load()
        assert isinstance(engine.next_event(timeout=30), ev.ModelLoadStarted)
        assert isinstance(engine.next_event(timeout=30), ev.ModelLoaded)
        events = turn_events(engine, engine.submit(MESSAGES))
    return events, events[-1]  # type: ignore[return-value]


def test_missing_key_variable_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GB_TEST_ABSENT", raising=False)
    endpoint = Endpoint("http://127.0.0.1:9", key_source="env", api_key_env="GB_TEST_ABSENT")
    with pytest.raises(SettingsError, match="GB_TEST_ABSENT is not set"):
        endpoint.api_key()


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (
            "ratelimit",
            "rate limiting requests (429): Too many requests, slow down; it asks to retry after 7 s",
        ),
        ("overloaded", "the server failed (503): Engine overloaded, try later"),
        ("gone", "does not know the model 'gone' (404)"),
    ],
)
def test_refused_requests_carry_the_servers_message(
    stub: StubHttpServer, model: str, expected: str
) -> None:
    events, finished = one_turn(stub.url, model)
    assert any(expected in message for message in errors_of(events)), errors_of(events)
    assert finished.metrics.stop_reason == "error"
    assert finished.text == ""


def test_malformed_stream_keeps_the_reply_so_far(stub: StubHttpServer) -> None:
    events, finished = one_turn(stub.url, "malformed")
    (message,) = errors_of(events)
    assert "malformed event stream" in message and "after 2 tokens" in message
    assert finished.text == "".join(WORDS[:2])
    assert finished.metrics.stop_reason == "error"
    assert finished.metrics.output_tokens == 2


def test_server_closing_mid_reply_keeps_the_reply_so_far(stub: StubHttpServer) -> None:
    events, finished = one_turn(stub.url, "midclose")
    (message,) = errors_of(events)
    assert "closed the connection mid-reply after 2 tokens" in message
    assert finished.text == "".join(WORDS[:2])
    assert finished.metrics.stop_reason == "error"


def test_keep_alive_pings_do_not_hide_a_stalled_reply(stub: StubHttpServer) -> None:
    events, finished = one_turn(stub.url, "pings", token_timeout_s=0.3)
    (message,) = errors_of(events)
    assert "only keep-alive pings" in message
    assert finished.text == WORDS[0]


def test_connection_refused_dns_and_wrong_path() -> None:
    refused = connect_error(f"http://127.0.0.1:{free_port()}")
    assert refused.startswith("connection refused by 127.0.0.1")
    assert "cannot resolve the host name 'no-such-host.invalid'" in connect_error(
        "http://no-such-host.invalid:8080"
    )


def test_wrong_base_path_says_404(stub: StubHttpServer) -> None:
    message = connect_error(stub.url + "/api")
    assert "(404)" in message and "base URL" in message


def test_unlisted_model_is_refused_at_connect(stub: StubHttpServer) -> None:
    message = connect_error(stub.url, "not-there")
    assert "has no model 'not-there'" in message and "vllm" in message


def test_submit_before_connecting_fails_the_turn() -> None:
    with RemoteEngine(Endpoint("http://127.0.0.1:9")) as engine:
        events = turn_events(engine, engine.submit(MESSAGES))
    assert "not connected" in errors_of(events)[0]


def test_sampling_goes_into_the_request(stub: StubHttpServer) -> None:
    sampling = SamplingSettings(temperature=0.0, seed=3, max_tokens=9, stop=("END",))
    with connect(stub.url, "vllm") as engine:
        turn_events(engine, engine.submit(MESSAGES, sampling))
    body = stub.bodies[-1]
    assert body["model"] == "vllm" and body["messages"] == MESSAGES
    assert (body["temperature"], body["seed"], body["max_tokens"], body["stop"]) == (
        0.0,
        3,
        9,
        ["END"],
    )


def test_silence_between_tokens_is_a_timeout_with_the_reply_kept(stub: StubHttpServer) -> None:
    events, finished = one_turn(stub.url, "stall", token_timeout_s=0.3)
    (message,) = errors_of(events)
    assert message.startswith("the server sent nothing for 0.3 s after 1 tokens")
    assert finished.text == WORDS[0] and finished.metrics.stop_reason == "error"


def test_403_says_access_was_refused(stub: StubHttpServer) -> None:
    events, _ = one_turn(stub.url, "forbidden")
    assert "refused access (403): This key may not use this model" in errors_of(events)[0]


def test_a_server_that_refuses_stream_options_is_asked_again_without(stub: StubHttpServer) -> None:
    events, finished = one_turn(stub.url, "old")
    assert not errors_of(events) and finished.text == "".join(WORDS)
    assert "stream_options" in stub.bodies[-2] and "stream_options" not in stub.bodies[-1]


def test_connect_timeout_message() -> None:
    fault = transport_fault(
        httpx.ConnectTimeout("timed out"), "http://10.1.2.3:8000/v1/models", tokens=0, timeout_s=5
    )
    assert str(fault) == "connecting to 10.1.2.3:8000 timed out: is the server up and reachable?"


def test_slot_cells_and_their_fill_agree_when_the_server_also_has_metrics(
    stub: StubHttpServer,
) -> None:
    _, finished = one_turn(stub.url, "llamacpp")  # this stub also serves /metrics (0.25)
    m = finished.metrics
    assert (m.kv_cells_used, m.kv_cells_total) == (19, 2048)
    assert m.kv_fill == pytest.approx(19 / 2048)


def test_a_local_model_file_is_refused_with_a_reason(stub: StubHttpServer) -> None:
    with RemoteEngine(Endpoint(stub.url)) as engine:
        engine.load("/models/other.Q4_K_M.gguf")
        events = [engine.next_event(timeout=10) for _ in range(2)]
    assert isinstance(events[1], ev.EngineError)
    assert "local model file needs the local engine" in events[1].message
