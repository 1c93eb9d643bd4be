"""ChatSession: commit before send, streamed flushes, queued follow-ups, regenerate and edit.

The session's own rules run against FakeEngine (scripted events with real
timings, milliseconds a test); what needs a real model (a cached prefix, the
real model's metadata) runs against LocalEngine and the bundled model.
"""

from __future__ import annotations

import queue

import pytest

from app.engine import events as ev
from app.engine.fake import FakeEngine, FakeReply
from app.engine.local import LocalEngine
from app.session import ChatSession, ReplyStored, RequestSubmitted
from app.settings import RuntimeSettings, SamplingSettings
from app.storage.store import Store

from helpers import until_stored

SHORT = SamplingSettings(temperature=0.0, max_tokens=12)


def _long_replies(messages):
    # Every prompt gets a reply longer than any test's max_tokens.
    return FakeReply(tokens=[f" word{i}" for i in range(2000)])


@pytest.fixture
def chat(tmp_path):
    store = Store.open(tmp_path / "chat.sqlite3")
    events: queue.Queue = queue.Queue()
    engine = FakeEngine(script=_long_replies, token_interval_s=0.004)
    session = ChatSession(engine, store, events.put)
    engine.load("fake.gguf", RuntimeSettings(n_ctx=1024, n_threads=1))
    while not isinstance(events.get(timeout=60), ev.ModelLoaded):
        pass
    yield session, store, events
    engine.close()
    store.close()


@pytest.fixture
def real_chat(bundled_model, tmp_path):
    store = Store.open(tmp_path / "chat.sqlite3")
    events: queue.Queue = queue.Queue()
    engine = LocalEngine()
    session = ChatSession(engine, store, events.put)
    engine.load(bundled_model, RuntimeSettings(n_ctx=1024, n_threads=2))
    while not isinstance(events.get(timeout=60), ev.ModelLoaded):
        pass
    yield session, store, events
    engine.close()
    store.close()


def test_user_message_is_committed_before_the_engine_sees_it(real_chat, tmp_path):
    session, store, events = real_chat
    conversation = store.create_conversation(system_prompt="Be brief.")
    request_id = session.send(conversation.id, "Hello there", SHORT)
    # Another connection, as a second process would see it, right after send().
    with Store.open(tmp_path / "chat.sqlite3") as other:
        stored = other.messages(conversation.id)
        assert [(m.role, m.content) for m in stored] == [("user", "Hello there"), ("assistant", "")]
        assert stored[1].partial  # the reply's row, waiting
    seen = until_stored(events, request_id)
    assert isinstance(seen[0], RequestSubmitted)
    messages = store.messages(conversation.id)
    assert [m.role for m in messages] == ["user", "assistant"]
    reply = messages[-1]
    finished = next(e for e in seen if isinstance(e, ev.TurnFinished))
    assert reply.content == finished.text and not reply.partial
    assert reply.metrics == finished.metrics
    assert reply.model and reply.runtime_settings["n_ctx"] == 1024
    assert reply.sampling_settings["max_tokens"] == 12
    # The first message names the conversation.
    assert store.get_conversation(conversation.id).title == "Hello there"


def test_queued_follow_up_sees_the_first_reply(real_chat):
    session, store, events = real_chat
    conversation = store.create_conversation()
    # Both sent before the first reply starts.
    first = session.send(conversation.id, "Name a fruit.", SHORT)
    second = session.send(conversation.id, "Name another one.", SHORT)
    until_stored(events, first)
    seen = until_stored(events, second)
    messages = store.messages(conversation.id)
    assert [m.role for m in messages] == ["user", "assistant", "user", "assistant"]
    first_reply = messages[1].content
    assert first_reply and not messages[1].partial
    # The second turn's prompt held the first reply: its cached prefix covers it.
    started = next(e for e in seen if isinstance(e, ev.TurnStarted))
    assert started.prompt_tokens_cached > 0
    assert session.history(conversation.id, messages[2].id) == [
        {"role": "user", "content": "Name a fruit."},
        {"role": "assistant", "content": first_reply},
        {"role": "user", "content": "Name another one."},
    ]


def test_a_request_cancelled_in_the_queue_leaves_no_reply(chat):
    session, store, events = chat
    conversation = store.create_conversation()
    running = session.send(conversation.id, "Write a poem.", SamplingSettings(max_tokens=40))
    queued = session.send(conversation.id, "And another.", SHORT)
    session.cancel(queued)
    finished, stored = set(), set()
    while running not in stored or queued not in finished:
        event = events.get(timeout=60)
        if isinstance(event, ev.TurnFinished):
            finished.add(event.request_id)
        if isinstance(event, ReplyStored):
            stored.add(event.request_id)
    assert queued not in stored
    assert [m.role for m in store.messages(conversation.id)] == ["user", "assistant", "user"]


def test_history_stops_at_the_request_own_message(chat):
    session, store, _ = chat
    conversation = store.create_conversation(system_prompt="sys")
    a = store.add_message(conversation.id, "user", "first")
    store.add_message(conversation.id, "user", "second")
    assert session.history(conversation.id, a.id) == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "first"},
    ]


def test_regenerate_replaces_the_last_reply(chat):
    session, store, events = chat
    conversation = store.create_conversation()
    until_stored(events, session.send(conversation.id, "Tell me a joke.", SHORT))
    old_reply = store.messages(conversation.id)[-1]
    until_stored(
        events, session.regenerate(conversation.id, SHORT.with_changes(temperature=0.9, seed=7))
    )
    messages = store.messages(conversation.id)
    assert [m.role for m in messages] == ["user", "assistant"]
    assert messages[-1].id != old_reply.id


def test_edit_last_user_message_and_resend(chat):
    session, store, events = chat
    conversation = store.create_conversation()
    until_stored(events, session.send(conversation.id, "Capital of Spain?", SHORT))
    until_stored(events, session.edit_last_user(conversation.id, "Capital of Italy?", SHORT))
    messages = store.messages(conversation.id)
    assert next((m.role, m.content) for m in messages) == ("user", "Capital of Italy?")
    assert len(messages) == 2


def test_streamed_text_is_flushed_while_it_streams(chat, tmp_path):
    session, store, events = chat
    conversation = store.create_conversation()
    request_id = session.send(
        conversation.id,
        "Write a long story about a forest.",
        SamplingSettings(temperature=0.0, max_tokens=400),
    )
    flushed_mid_stream = ""
    with Store.open(tmp_path / "chat.sqlite3") as other:
        while True:
            event = events.get(timeout=60)
            if isinstance(event, ev.Token) and event.index == 150:
                reply = other.messages(conversation.id)[-1]
                assert reply.role == "assistant" and reply.partial
                flushed_mid_stream = reply.content
            if isinstance(event, ReplyStored) and event.request_id == request_id:
                break
    final = store.messages(conversation.id)[-1]
    assert flushed_mid_stream, "nothing was flushed before the reply ended"
    assert final.content.startswith(flushed_mid_stream)


def test_cancelled_reply_is_kept_and_marked_partial(chat):
    session, store, events = chat
    conversation = store.create_conversation()
    request_id = session.send(
        conversation.id, "Write a long poem.", SamplingSettings(temperature=0.0, max_tokens=500)
    )
    while True:
        event = events.get(timeout=60)
        if isinstance(event, ev.Token) and event.index == 5:
            session.cancel(request_id)
        if isinstance(event, ReplyStored):
            break
    reply = store.messages(conversation.id)[-1]
    assert reply.partial and reply.stop_reason == "cancelled" and reply.content


def test_every_event_of_a_request_comes_after_its_announcement(chat):
    """Ids are handed out before submit: no event can precede RequestSubmitted."""
    session, store, events = chat
    conversation = store.create_conversation()
    ids = [session.send(conversation.id, f"message {i}", SHORT) for i in range(5)]
    announced: set[int] = set()
    stored: set[int] = set()
    while stored != set(ids):
        event = events.get(timeout=10)
        if isinstance(event, RequestSubmitted):
            announced.add(event.request_id)
        elif event.request_id is not None:
            assert event.request_id in announced, f"{event} before its RequestSubmitted"
            if isinstance(event, ReplyStored):
                stored.add(event.request_id)


def test_a_crashed_reply_keeps_the_streamed_text_once(tmp_path):
    store = Store.open(tmp_path / "chat.sqlite3")
    events: queue.Queue = queue.Queue()
    reply = FakeReply(tokens=["Once", " upon", " a", " time"], crash_after=3)
    engine = FakeEngine(script=lambda messages: reply)
    session = ChatSession(engine, store, events.put)
    engine.load("fake.gguf", RuntimeSettings(n_threads=1))
    conversation = store.create_conversation()
    request_id = session.send(conversation.id, "Tell me a story.", SHORT)
    seen = until_stored(events, request_id)
    finished = next(e for e in seen if isinstance(e, ev.TurnFinished))
    assert finished.metrics.stop_reason == "error" and finished.text == ""
    stored = store.messages(conversation.id)[-1]
    assert stored.content == "Once upon a" and stored.partial
    engine.close()
    store.close()


def test_a_submit_that_fails_closes_its_announced_request(chat):
    session, store, events = chat
    conversation = store.create_conversation()
    session.engine.close()
    with pytest.raises(Exception, match="closed"):
        session.send(conversation.id, "Hello?", SHORT)
    submitted = events.get(timeout=5)
    while not isinstance(submitted, RequestSubmitted):
        submitted = events.get(timeout=5)
    finished = events.get(timeout=5)
    assert isinstance(finished, ev.TurnFinished) and finished.request_id == submitted.request_id
    assert [m.role for m in store.messages(conversation.id)] == ["user"]  # no empty reply row


def test_a_request_id_taken_beforehand_keys_the_turn_and_can_be_cancelled_first(chat):
    """The GUI takes the id on its own thread, shows the turn under it, and may
    press Stop before the send (on a background thread) reaches the engine."""
    session, store, events = chat
    conversation = store.create_conversation()
    kept = session.engine.new_request_id()
    assert session.send(conversation.id, "Hello", SHORT, request_id=kept) == kept
    until_stored(events, kept)
    stopped = session.engine.new_request_id()
    session.cancel(stopped)  # before the send
    session.send(conversation.id, "Never mind", SHORT, request_id=stopped)
    finished = next(e for e in _events_of(events, stopped) if isinstance(e, ev.TurnFinished))
    assert finished.metrics.stop_reason == "cancelled"
    roles = [m.role for m in store.messages(conversation.id)]
    assert roles == ["user", "assistant", "user"]  # no reply row for the cancelled one


def test_streamed_text_is_read_from_the_session_with_its_last_token_index(chat):
    session, store, events = chat
    conversation = store.create_conversation()
    request_id = session.send(conversation.id, "Talk.", SamplingSettings(max_tokens=200))
    while True:
        event = events.get(timeout=10)
        if isinstance(event, ev.Token) and event.index == 20:
            text, last = session.streamed(request_id)
            assert last >= 20 and text.startswith(" word0 word1")
            assert text.count(" word") == last + 1
            session.cancel(request_id)
        if isinstance(event, ReplyStored):
            break
    assert session.streamed(request_id) is None  # the turn has ended


def _events_of(events: queue.Queue, request_id: int) -> list:
    seen = []
    while True:
        event = events.get(timeout=10)
        if event.request_id == request_id:
            seen.append(event)
            if isinstance(event, ev.TurnFinished):
                return seen


def test_a_reply_cancelled_during_prefill_is_stored_empty_and_left_out_of_the_next_prompt(
    bundled_model, tmp_path
):
    store = Store.open(tmp_path / "chat.sqlite3")
    events: queue.Queue = queue.Queue()
    engine = LocalEngine()
    session = ChatSession(engine, store, events.put)
    try:
        engine.load(bundled_model, RuntimeSettings(n_ctx=2048, n_threads=2))
        while not isinstance(events.get(timeout=60), ev.ModelLoaded):
            pass
        conversation = store.create_conversation()
        passage = "The river runs past old stone bridges under a pale autumn sky. " * 90
        request_id = session.send(conversation.id, "Summarise: " + passage, SHORT)
        seen = []
        while True:
            event = events.get(timeout=120)
            if event.request_id != request_id:
                continue
            seen.append(event)
            if isinstance(event, ev.TurnStarted):
                assert event.prompt_tokens > 1200
                session.cancel(request_id)  # during the prefill
            if isinstance(event, ReplyStored):
                break
        assert not [e for e in seen if isinstance(e, ev.Token)]
        reply = store.messages(conversation.id)[-1]
        # Stored as a reply cancelled before it started: no text, marked partial.
        assert (reply.role, reply.content, reply.partial) == ("assistant", "", True)
        assert reply.stop_reason == "cancelled"
        follow_up = session.send(
            conversation.id, "Never mind. Say hi.", SHORT.with_changes(max_tokens=2)
        )
        while not (
            isinstance(event := events.get(timeout=300), ReplyStored)
            and event.request_id == follow_up
        ):
            pass  # the long message is evaluated again: minutes on a busy 2-core machine
        # The next prompt holds both user messages and no reply in between.
        assert [m["role"] for m in session.history(conversation.id)][:2] == ["user", "user"]
    finally:
        engine.close()
        store.close()
