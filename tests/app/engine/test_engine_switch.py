"""EngineSwitch (app.engine.switching): the chat's engine is LocalEngine at n_parallel 1 and
BatchedEngine above it, through ChatSession and a real store, on the bundled model."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli.main import main
from app.engine import events as ev
from app.engine.batched import BatchedEngine
from app.engine.local import LocalEngine
from app.engine.switching import EngineSwitch
from app.errors import SettingsError
from app.session import ChatSession, ReplyStored
from app.settings import RuntimeSettings, SamplingSettings
from app.storage.store import Store

TIMEOUT_S = 300.0
# llama.cpp's sums differ with the batch's make-up (which prompts share a step depends
# on when each arrives), so a near tie can flip: "Tell me about cats." went "... animals
# that" batched and "... animals with" alone at its 8th token. 6 tokens stay clear of it.
GREEDY = SamplingSettings(temperature=0.0, max_tokens=6, seed=1)
PROMPTS = ("Tell me about cats.", "What is 2+2?")
PLAIN = RuntimeSettings(n_ctx=2048, n_threads=2, repack="off")
TWO = PLAIN.with_changes(n_parallel=2)


@pytest.mark.parametrize(
    ("changes", "wanted"),
    [
        ({"n_parallel": 0}, "parallel sequences must be 1..8, got 0"),
        ({"n_parallel": 9}, "parallel sequences must be 1..8, got 9"),
        ({"n_parallel": "2"}, "parallel sequences must be a whole number, got '2'"),
        ({"n_parallel": 4, "n_batch": 2}, "must hold one token per parallel sequence (4)"),
    ],
)
def test_invalid_parallel_settings_say_why_in_one_line(changes, wanted) -> None:
    with pytest.raises(SettingsError) as raised:
        RuntimeSettings(**changes).validate()
    assert wanted in str(raised.value) and "\n" not in str(raised.value)


def test_the_parallel_flag_out_of_range_is_a_one_line_cli_error(capsys) -> None:
    assert main(["chat", "--parallel", "9"]) == 1
    err = capsys.readouterr().err
    assert err == "glassbox: parallel sequences must be 1..8, got 9\n"


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


class Chat:
    """An EngineSwitch under a ChatSession and a real store; events in one queue."""

    def __init__(self, tmp_path: Path) -> None:
        self.store = Store.open(tmp_path / "chat.sqlite3")
        self.events: queue.Queue[ev.EngineEvent] = queue.Queue()
        self.engine = EngineSwitch()
        self.session = ChatSession(self.engine, self.store, self.events.put)

    def load(self, model: Path, settings: RuntimeSettings) -> ev.ModelLoaded:
        self.engine.load(model, settings)
        while True:
            event = self.events.get(timeout=TIMEOUT_S)
            if isinstance(event, ev.ModelLoaded):
                return event
            assert not isinstance(event, ev.EngineError | ev.EngineCrashed), event

    def until_stored(self, ids: list[int]) -> list[ev.EngineEvent]:
        """Every event until each request's reply is stored, in arrival order."""
        seen: list[ev.EngineEvent] = []
        stored: set[int] = set()
        while not stored.issuperset(ids):
            event = self.events.get(timeout=TIMEOUT_S)
            seen.append(event)
            if isinstance(event, ReplyStored):
                stored.add(event.request_id)  # type: ignore[arg-type]
        return seen

    def close(self) -> None:
        self.engine.close()
        self.store.close()


@pytest.fixture
def chat(tmp_path: Path) -> Iterator[Chat]:
    opened = Chat(tmp_path)
    yield opened
    opened.close()


def finished(events: list[ev.EngineEvent], rid: int) -> ev.TurnFinished:
    return next(e for e in events if isinstance(e, ev.TurnFinished) and e.request_id == rid)


def position(events: list[ev.EngineEvent], kind: type, rid: int) -> int:
    return next(i for i, e in enumerate(events) if isinstance(e, kind) and e.request_id == rid)


def test_one_parallel_sequence_is_the_plain_local_engine(chat: Chat, bundled_model: Path) -> None:
    loaded = chat.load(bundled_model, PLAIN)
    assert type(chat.engine.serving) is LocalEngine and chat.engine.kind == "local"
    assert loaded.settings["n_parallel"] == 1
    conversation = chat.store.create_conversation()
    rid = chat.session.send(conversation.id, "What is 2+2?", GREEDY)
    events = chat.until_stored([rid])
    assert finished(events, rid).metrics.stop_reason in ("eos", "length")
    assert chat.engine.worker_pid is None or chat.engine.worker_pid > 0  # the LocalEngine's own


def test_batched_chat_decodes_two_conversations_together_and_as_each_alone(
    chat: Chat, bundled_model: Path
) -> None:
    chat.load(bundled_model, PLAIN)
    before = chat.store.create_conversation()
    chat.until_stored([chat.session.send(before.id, "Hello", GREEDY)])

    loaded = chat.load(bundled_model, TWO)  # a runtime change: the switch swaps engines
    serving = chat.engine.serving
    assert isinstance(serving, BatchedEngine) and serving.n_parallel == 2
    assert loaded.settings["n_parallel"] == 2 and chat.engine.model_info is loaded
    assert [m.role for m in chat.store.messages(before.id)] == ["user", "assistant"]

    conversations = [chat.store.create_conversation().id for _ in PROMPTS]
    together = [chat.session.send(c, p, GREEDY) for c, p in zip(conversations, PROMPTS)]
    events = chat.until_stored(together)
    # Both had a sequence before either finished: they decoded in the same steps.
    first_end = min(position(events, ev.TurnFinished, rid) for rid in together)
    assert all(position(events, ev.TurnStarted, rid) < first_end for rid in together)
    texts = [finished(events, rid).text for rid in together]

    # Each prompt decoded alone, evaluated whole as in the batch (no cached prefix: one
    # read from a one-token batch can differ in the last bits and flip a near tie).
    with BatchedEngine(1, prompt_cache=False) as single:
        single.load(bundled_model, PLAIN)
        while not isinstance(single.next_event(timeout=TIMEOUT_S), ev.ModelLoaded):
            pass
        alone = []
        for prompt in PROMPTS:
            single.submit(ask(prompt), GREEDY)
            while not isinstance(event := single.next_event(timeout=TIMEOUT_S), ev.TurnFinished):
                pass
            alone.append(event.text)
    assert all(texts) and texts == alone
    for conversation, text in zip(conversations, texts):
        stored = chat.store.messages(conversation)[-1]
        assert stored.content == text and stored.metrics.queue_ms is not None
        assert stored.runtime_settings["n_parallel"] == 2


def test_a_follow_up_in_one_conversation_waits_for_the_reply_before_it(
    chat: Chat, bundled_model: Path
) -> None:
    chat.load(bundled_model, TWO)
    conversation = chat.store.create_conversation().id
    first = chat.session.send(conversation, "Name a fruit.", GREEDY)
    second = chat.session.send(conversation, "And a colour?", GREEDY)  # sent before the reply
    events = chat.until_stored([first, second])
    assert position(events, ev.TurnFinished, first) < position(events, ev.TurnStarted, second)
    started = {e.request_id: e for e in events if isinstance(e, ev.TurnStarted)}
    reply = finished(events, first)
    # Its prompt holds the first exchange, the reply included, then the new question.
    assert started[second].prompt_tokens > started[first].prompt_tokens + len(reply.text) // 8
    roles = [m.role for m in chat.store.messages(conversation)]
    assert roles == ["user", "assistant", "user", "assistant"]


def test_back_to_one_sequence_restores_the_local_engine_and_keeps_the_conversation(
    chat: Chat, bundled_model: Path
) -> None:
    chat.load(bundled_model, TWO)
    conversation = chat.store.create_conversation().id
    chat.until_stored([chat.session.send(conversation, "Hi", GREEDY)])
    chat.load(bundled_model, PLAIN)
    assert type(chat.engine.serving) is LocalEngine
    rid = chat.session.send(conversation, "Name a fruit.", GREEDY)
    events = chat.until_stored([rid])
    assert finished(events, rid).text
    assert len(chat.store.messages(conversation)) == 4


def test_a_batched_worker_that_dies_is_restarted_by_the_next_request(
    chat: Chat, bundled_model: Path
) -> None:
    import os
    import signal

    chat.load(bundled_model, TWO)
    serving = chat.engine.serving
    assert isinstance(serving, BatchedEngine)
    os.kill(serving._proc.pid, signal.SIGKILL)  # the worker, as the OOM killer would
    while not isinstance(chat.events.get(timeout=TIMEOUT_S), ev.EngineCrashed):
        pass
    assert chat.engine.state == "crashed"
    rid = chat.session.send(chat.store.create_conversation().id, "What is 2+2?", GREEDY)
    events = chat.until_stored([rid])
    assert any(isinstance(e, ev.ModelLoaded) for e in events)
    assert finished(events, rid).metrics.stop_reason in ("eos", "length")


def test_a_server_that_cannot_be_reached_leaves_the_local_engine_serving(
    chat: Chat, bundled_model: Path
) -> None:
    chat.load(bundled_model, PLAIN)
    chat.engine.load("http://127.0.0.1:9")  # nothing listens there
    while not isinstance(event := chat.events.get(timeout=TIMEOUT_S), ev.EngineError):
        assert not isinstance(event, ev.ModelLoaded)
    assert event.load_id is not None and "127.0.0.1:9" in event.message
    assert chat.engine.kind == "local" and chat.engine.state == "ready"
    rid = chat.session.send(chat.store.create_conversation().id, "Hi", GREEDY)
    assert finished(chat.until_stored([rid]), rid).text


def test_an_unknown_saved_endpoint_is_refused_at_once() -> None:
    with EngineSwitch() as engine, pytest.raises(SettingsError) as raised:
        engine.load("endpoint:nowhere")
    assert str(raised.value) == "no saved endpoint is called 'nowhere' (Settings > Endpoints)"


def test_a_cancel_before_the_submit_ends_the_turn_on_arrival() -> None:
    with EngineSwitch() as engine:
        rid = engine.new_request_id()
        engine.cancel(rid)
        engine.submit([{"role": "user", "content": "Hi"}], GREEDY, request_id=rid)
        event = engine.next_event(timeout=10)
    assert isinstance(event, ev.TurnFinished) and event.request_id == rid
    assert event.metrics.stop_reason == "cancelled"


def test_a_follow_up_cancelled_while_it_waits_for_its_conversation_never_runs(
    chat: Chat, bundled_model: Path
) -> None:
    chat.load(bundled_model, TWO)
    conversation = chat.store.create_conversation().id
    long = GREEDY.with_changes(max_tokens=64)  # still decoding when the cancel comes
    first = chat.session.send(conversation, "Write a story about a fruit.", long)
    second = chat.session.send(conversation, "And a colour?", GREEDY)
    chat.session.cancel(second)
    events = chat.until_stored([first])
    while not any(isinstance(e, ev.TurnFinished) and e.request_id == second for e in events):
        events.append(chat.events.get(timeout=TIMEOUT_S))
    assert finished(events, second).metrics.stop_reason == "cancelled"
    assert not any(isinstance(e, ev.TurnStarted) and e.request_id == second for e in events)
    assert [m.role for m in chat.store.messages(conversation)] == ["user", "assistant", "user"]


def test_a_reply_streaming_during_a_swap_finishes_on_the_old_engine(
    chat: Chat, bundled_model: Path
) -> None:
    chat.load(bundled_model, PLAIN)
    old = chat.engine.serving
    conversation = chat.store.create_conversation().id
    long = GREEDY.with_changes(max_tokens=48)
    rid = chat.session.send(conversation, "Write a story about a dragon.", long)
    while not isinstance(chat.events.get(timeout=TIMEOUT_S), ev.Token):
        pass
    chat.engine.load(bundled_model, TWO)  # while the reply streams
    events = chat.until_stored([rid])
    assert finished(events, rid).metrics.stop_reason in ("eos", "length")  # not cancelled
    while chat.engine.serving is old:
        events.append(chat.events.get(timeout=TIMEOUT_S))  # the new engine's ModelLoaded
    assert isinstance(chat.engine.serving, BatchedEngine)
    stored = chat.store.messages(conversation)[-1]
    assert stored.content == finished(events, rid).text and not stored.partial
    rid = chat.session.send(conversation, "Go on.", GREEDY)
    assert finished(chat.until_stored([rid]), rid).text
    for _ in range(600):  # the old engine closes once its turn is over (on its own thread)
        if old.state == "closed":
            break
        time.sleep(0.05)
    assert old.state == "closed" and old.worker_pid is None
