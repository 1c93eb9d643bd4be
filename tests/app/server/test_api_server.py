"""The OpenAI-compatible server in-process: the real engine and bundled model, a real
HTTP server on 127.0.0.1 (an ephemeral port), the `openai` client, a real SQLite store."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request

import openai
import pytest

from app.errors import GlassboxError
from app.server import ApiServer
from app.session import ChatSession
from app.storage.store import Store

KEY = "test-key-123"
WAIT_S = 120.0


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "api.sqlite3") as opened:
        yield opened


def _server(loaded_engine, store, **kwargs) -> ApiServer:
    engine, _loaded = loaded_engine
    session = ChatSession(engine, store)
    server = ApiServer(session, port=0, **kwargs)
    session.set_listener(server.on_event)
    return server


@pytest.fixture
def server(loaded_engine, store):
    with _server(loaded_engine, store) as running:
        yield running


@pytest.fixture
def model_id(loaded_engine):
    return loaded_engine[1].model_path.rsplit("/", 1)[-1].removesuffix(".gguf")


def _client(server: ApiServer, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url, api_key=key, max_retries=0, timeout=WAIT_S)


def _post(server: ApiServer, path: str, data: bytes, headers: dict | None = None):
    """(status, parsed JSON body) of a raw request, errors included."""
    request = urllib.request.Request(
        server.url + path,
        data=data,
        headers={"Content-Type": "application/json", **(headers or {})},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=WAIT_S) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


def test_models_lists_the_loaded_model(server, model_id):
    with _client(server) as client:
        ids = [model.id for model in client.models.list()]
    assert ids == [model_id]


def test_non_streaming_reply_is_stored_as_its_own_conversation_with_metrics(
    server, store, model_id
):
    with _client(server) as client:
        reply = client.chat.completions.create(
            model=model_id,
            messages=[
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "Name a colour."},
            ],
            max_tokens=8,
            seed=1,
        )
    text = reply.choices[0].message.content
    assert text
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert (
        reply.usage.completion_tokens == reply.model_extra["glassbox"]["metrics"]["output_tokens"]
    )

    [conversation] = store.list_conversations()
    assert conversation.title.startswith("API · Name a colour")
    assert conversation.system_prompt == "You are terse."
    assert conversation.id == reply.model_extra["glassbox"]["conversation_id"]
    user, answer = store.messages(conversation.id)
    assert (user.role, user.content) == ("user", "Name a colour.")
    assert (answer.role, answer.content, answer.partial) == ("assistant", text, False)
    metrics = answer.metrics
    assert metrics is not None
    assert metrics.queue_ms is not None and metrics.ttft_ms is not None
    assert metrics.prompt_tokens == reply.usage.prompt_tokens
    assert metrics.output_tokens == reply.usage.completion_tokens


def test_streaming_reply_matches_the_stored_one(server, store, model_id):
    with _client(server) as client:
        stream = client.chat.completions.create(
            model=model_id,
            messages=[{"role": "user", "content": "Count to three."}],
            max_tokens=12,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert text
    assert finishes[-1] in ("stop", "length") and not any(finishes[:-1])
    usage = chunks[-1].usage
    [conversation] = store.list_conversations()
    [_user, answer] = store.messages(conversation.id)
    assert answer.content == text
    assert answer.metrics is not None
    assert answer.metrics.output_tokens == usage.completion_tokens
    assert answer.metrics.queue_ms is not None


def test_a_client_sending_the_history_back_continues_its_conversation(server, store, model_id):
    history = [{"role": "user", "content": "Say one word."}]
    with _client(server) as client:
        first = client.chat.completions.create(model=model_id, messages=history, max_tokens=4)
        history += [
            {"role": "assistant", "content": first.choices[0].message.content},
            {"role": "user", "content": "And another."},
        ]
        second = client.chat.completions.create(model=model_id, messages=history, max_tokens=4)
    [conversation] = store.list_conversations()
    assert second.model_extra["glassbox"]["conversation_id"] == conversation.id
    roles = [m.role for m in store.messages(conversation.id)]
    assert roles == ["user", "assistant", "user", "assistant"]


def test_an_earlier_history_from_another_client_starts_its_own_conversation(
    server, store, model_id
):
    messages = [
        {"role": "user", "content": "Hello."},
        {"role": "assistant", "content": "Hi there."},
        {"role": "user", "content": "Bye."},
    ]
    with _client(server) as client:
        client.chat.completions.create(model=model_id, messages=messages, max_tokens=3)
    [conversation] = store.list_conversations()
    stored = [(m.role, m.content) for m in store.messages(conversation.id)]
    assert stored[:3] == [("user", "Hello."), ("assistant", "Hi there."), ("user", "Bye.")]


def test_api_key_is_required_when_set(loaded_engine, store, model_id):
    with _server(loaded_engine, store, api_key=KEY) as server:
        with _client(server, key="wrong") as client, pytest.raises(openai.AuthenticationError):
            client.models.list()
        status, body = _post(server, "/chat/completions", b"{}")
        assert status == 401
        assert "Authorization: Bearer" in body["error"]["message"]
        with _client(server, key=KEY) as client:
            assert [m.id for m in client.models.list()] == [model_id]
    assert store.list_conversations() == []


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[]", 400, "JSON object"),
        (json.dumps({"model": "MODEL", "messages": []}).encode(), 400, "non-empty list"),
        (json.dumps({"messages": [{"role": "user", "content": "hi"}]}).encode(), 400, "'model'"),
        (
            json.dumps(
                {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
            ).encode(),
            404,
            "'gpt-4o' is not loaded here; loaded: MODEL",
        ),
        (
            json.dumps({"model": "MODEL", "messages": [{"role": "tool", "content": "x"}]}).encode(),
            400,
            "role must be one of",
        ),
        (
            json.dumps(
                {"model": "MODEL", "messages": [{"role": "assistant", "content": "x"}]}
            ).encode(),
            400,
            "last message must be from the user",
        ),
        (
            json.dumps(
                {
                    "model": "MODEL",
                    "messages": [{"role": "user", "content": "hi"}],
                    "temperature": "hot",
                }
            ).encode(),
            400,
            "'temperature' must be a number",
        ),
        (
            json.dumps(
                {"model": "MODEL", "messages": [{"role": "user", "content": "hi"}], "top_p": 3}
            ).encode(),
            400,
            "top-p must be in",
        ),
    ],
)
def test_bad_requests_get_one_line_errors_and_the_server_goes_on(
    server, store, model_id, body, status, fragment
):
    got_status, got = _post(server, "/chat/completions", body.replace(b"MODEL", model_id.encode()))
    assert got_status == status
    message = got["error"]["message"]
    assert fragment.replace("MODEL", model_id) in message
    assert "\n" not in message
    with _client(server) as client:
        assert [m.id for m in client.models.list()] == [model_id]  # still serving
    assert store.list_conversations() == []  # nothing half-stored


def test_unknown_path_is_a_json_404(server):
    status, body = _post(server, "/completions", b"{}")
    assert status == 404
    assert body["error"]["message"] == "Not Found: POST /v1/completions"


def test_a_client_that_goes_away_mid_stream_cancels_its_turn(server, store, model_id):
    with _client(server) as client:
        stream = client.chat.completions.create(
            model=model_id,
            messages=[{"role": "user", "content": "Write a long story about a dragon."}],
            max_tokens=400,
            stream=True,
        )
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                break
        stream.close()
    [conversation] = store.list_conversations()
    deadline = time.monotonic() + WAIT_S
    while (answer := store.messages(conversation.id)[-1]).stop_reason is None:
        assert time.monotonic() < deadline, "the cancelled turn never ended"
        time.sleep(0.05)
    assert answer.stop_reason == "cancelled"
    assert answer.partial
    assert answer.metrics is not None and answer.metrics.output_tokens < 400


def test_a_port_in_use_is_a_one_line_error(loaded_engine, store):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        engine, _loaded = loaded_engine
        server = ApiServer(ChatSession(engine, store), port=port)
        with pytest.raises(GlassboxError, match=f"cannot listen on 127.0.0.1:{port}"):
            server.start()
        server.stop()


def test_a_client_that_gives_up_on_a_whole_reply_cancels_its_turn(store):
    """On FakeEngine, whose reply outlasts any machine's speed: with the real model a fast
    machine can finish the reply (EOS) before the server checks the connection again."""
    import http.client

    from app.engine import events as ev
    from app.engine.fake import FakeEngine, FakeReply

    engine = FakeEngine(
        script=lambda _messages: FakeReply(tokens=[f" {i}," for i in range(3000)]),
        token_interval_s=0.01,
    )
    loaded = []
    engine.set_listener(lambda event: loaded.append(event))
    engine.load("fake.gguf")
    deadline = time.monotonic() + WAIT_S
    while not any(isinstance(e, ev.ModelLoaded) for e in loaded):
        assert time.monotonic() < deadline, "the fake model never loaded"
        time.sleep(0.01)
    session = ChatSession(engine, store)
    server = ApiServer(session, port=0)
    session.set_listener(server.on_event)
    try:
        with server:
            body = json.dumps(
                {
                    "model": "fake",
                    "messages": [{"role": "user", "content": "Count to 3000."}],
                    "max_tokens": 3000,
                }
            )
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=WAIT_S)
            connection.request(
                "POST", "/v1/chat/completions", body, {"Content-Type": "application/json"}
            )
            # Wait until the reply is streaming into the store (flushed twice a second),
            # then hang up.
            while not (
                (listed := store.list_conversations())
                and (reply := store.messages(listed[0].id)[-1]).role == "assistant"
                and reply.content
            ):
                assert time.monotonic() < deadline, "the reply never started"
                time.sleep(0.05)
            connection.close()
            while (answer := store.messages(listed[0].id)[-1]).stop_reason is None:
                assert time.monotonic() < deadline, "the abandoned turn never ended"
                time.sleep(0.05)
    finally:
        engine.close()
    assert answer.stop_reason == "cancelled"
    assert answer.metrics is not None and answer.metrics.output_tokens < 3000


def test_two_clients_at_once_are_queued_and_both_stored_with_queue_time(server, store, model_id):
    import threading

    replies: dict[str, object] = {}

    def ask(text: str) -> None:
        with _client(server) as client:
            replies[text] = client.chat.completions.create(
                model=model_id, messages=[{"role": "user", "content": text}], max_tokens=8
            )

    threads = [threading.Thread(target=ask, args=(t,)) for t in ("First one.", "Second one.")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_S)
    assert set(replies) == {"First one.", "Second one."}
    conversations = store.list_conversations()
    assert sorted(c.title for c in conversations) == ["API · First one.", "API · Second one."]
    stored = [store.messages(c.id)[-1].metrics for c in conversations]
    assert all(m is not None and m.queue_ms is not None and m.output_tokens for m in stored)


def test_model_id_is_the_file_name_or_a_remote_servers_own_name():
    from types import SimpleNamespace

    from app.engine import events as ev
    from app.server.routes import model_ids

    def served(info):
        return SimpleNamespace(session=SimpleNamespace(engine=SimpleNamespace(model_info=info)))

    local = ev.ModelLoaded(model_path="/models/SmolLM2-135M.Q4_1.gguf", model_name="Smollm2")
    remote = ev.ModelLoaded(
        model_path="http://127.0.0.1:8080/v1", model_name="qwen2.5", backend="remote"
    )
    assert model_ids(served(local)) == ("SmolLM2-135M.Q4_1",)
    assert model_ids(served(remote)) == ("qwen2.5",)
    assert model_ids(served(None)) == ()
