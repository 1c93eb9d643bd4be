"""A reply's token probabilities from the decode loop to SQLite and back (schema 4).

The session asks the engine for them (ChatSession.top_logprobs), stores what
TurnFinished brings with the reply, and leaves replies sent without them alone;
a FakeEngine stands in where the engine cannot compute them.
"""

from __future__ import annotations

import json
import queue
import sqlite3
from pathlib import Path

import pytest

from app.engine import events as ev
from app.engine.fake import FakeEngine, FakeReply
from app.engine.local import LocalEngine
from app.engine.switching import EngineSwitch
from app.session import ChatSession, ReplyStored
from app.settings import RuntimeSettings, SamplingSettings
from app.storage.schema import MIGRATIONS, migrate
from app.storage.store import Store

from helpers import until_stored

GREEDY = SamplingSettings(temperature=0.0, repeat_penalty=1.0, max_tokens=12, seed=0)
TOKENS = [
    {"id": 7, "text": "Hi", "logprob": -0.25, "top": [{"id": 7, "text": "Hi", "logprob": -0.25}]},
    {"id": 8, "text": "!", "logprob": -3.5, "top": [{"id": 9, "text": ".", "logprob": -0.1}]},
]


def test_reply_tokens_round_trip_replace_and_go_with_their_message(tmp_path: Path) -> None:
    with Store.open(tmp_path / "t.sqlite3") as store:
        conversation = store.create_conversation("t").id
        store.add_message(conversation, "user", "hello")
        reply = store.add_message(conversation, "assistant", "Hi!")
        assert store.reply_tokens(reply.id) is None
        store.set_reply_tokens(reply.id, TOKENS)
        assert store.reply_tokens(reply.id) == TOKENS
        store.set_reply_tokens(reply.id, TOKENS[:1])  # replaced, not appended
        assert store.reply_tokens(reply.id) == TOKENS[:1]
        store.set_reply_tokens(reply.id, None)
        assert store.reply_tokens(reply.id) is None
        store.set_reply_tokens(reply.id, TOKENS)
        store.delete_message(reply.id)
        count = store._conn.execute("SELECT COUNT(*) FROM reply_tokens").fetchone()[0]
        assert count == 0  # deleted with its message


def test_a_version_3_file_gains_the_table_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "v3.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrate(conn, MIGRATIONS[:3]) == 3
    conn.execute("INSERT INTO conversations (title, created_at, updated_at) VALUES ('old', 1, 1)")
    conn.execute(
        "INSERT INTO messages (conversation_id, role, content, created_at) "
        "VALUES (1, 'assistant', 'old reply', 1)"
    )
    conn.close()
    with Store.open(path) as store:
        assert store._conn.execute("PRAGMA user_version").fetchone()[0] == 4
        old = store.messages(1)[0]
        assert old.content == "old reply" and store.reply_tokens(old.id) is None
        store.set_reply_tokens(old.id, TOKENS)
        assert store.reply_tokens(old.id) == TOKENS


def _rounded(tokens: list[dict]) -> list[tuple]:
    return [
        (
            t["id"],
            t["text"],
            round(t["logprob"], 5),
            [(a["id"], a["text"], round(a["logprob"], 5)) for a in t["top"]],
        )
        for t in tokens
    ]


def test_the_stored_form_is_compact_and_reads_back(tmp_path: Path) -> None:
    from app.storage.reply_tokens import pack, unpack

    many = [dict(TOKENS[i % 2], logprob=-0.123456789) for i in range(200)]
    packed = pack(many)
    assert unpack(packed) == [dict(t, logprob=-0.12346) for t in many]
    assert len(packed) < len(json.dumps(many)) / 3  # texts once, no keys
    assert unpack('{"v": 99}') is None  # a later format: not misread


@pytest.fixture(params=[LocalEngine, EngineSwitch])
def real_chat(request, bundled_model, tmp_path):
    """A session on the bundled model, on LocalEngine and on the switch the CLI and GUI hold."""
    store = Store.open(tmp_path / "chat.sqlite3")
    events: queue.Queue = queue.Queue()
    engine = request.param()
    session = ChatSession(engine, store, events.put)
    engine.load(bundled_model, RuntimeSettings(n_ctx=1024, n_threads=2))
    while not isinstance(events.get(timeout=60), ev.ModelLoaded):
        pass
    yield session, store, events
    engine.close()
    store.close()


def test_the_session_stores_the_decode_loops_figures_with_the_reply(real_chat) -> None:
    session, store, events = real_chat
    conversation = store.create_conversation("t").id
    session.top_logprobs = 4
    rid = session.send(conversation, "Name three fruits.", GREEDY)
    seen = until_stored(events, rid)
    finished = next(e for e in seen if isinstance(e, ev.TurnFinished))
    stored = seen[-1]
    assert isinstance(stored, ReplyStored)
    tokens = store.reply_tokens(stored.message_id)
    assert tokens is not None and finished.tokens is not None
    assert _rounded(tokens) == _rounded(finished.tokens)  # stored to 5 decimals
    assert len(tokens) == finished.metrics.output_tokens
    assert all(len(t["top"]) == 4 and t["top"][0]["id"] == t["id"] for t in tokens)
    streamed = [e for e in seen if isinstance(e, ev.Token)]
    assert [e.token_id for e in streamed] == [t["id"] for t in tokens]

    session.top_logprobs = 0  # the view went off: the next reply has none
    rid = session.send(conversation, "And three vegetables?", GREEDY)
    seen = until_stored(events, rid)
    assert store.reply_tokens(seen[-1].message_id) is None
    assert all(e.logprob is None for e in seen if isinstance(e, ev.Token))


def test_an_engine_that_cannot_compute_them_is_not_asked(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "chat.sqlite3")
    events: queue.Queue = queue.Queue()
    engine = FakeEngine(script=lambda m: FakeReply(tokens=["a", "b"]), token_interval_s=0.001)
    session = ChatSession(engine, store, events.put)
    try:
        engine.load("fake.gguf", RuntimeSettings(n_ctx=1024, n_threads=1))
        while not isinstance(events.get(timeout=60), ev.ModelLoaded):
            pass
        session.top_logprobs = 10
        conversation = store.create_conversation("t").id
        seen = until_stored(events, session.send(conversation, "hello", GREEDY))
        assert not seen[-1].partial
        assert store.reply_tokens(seen[-1].message_id) is None
    finally:
        engine.close()
        store.close()


def test_a_continued_reply_keeps_its_tokens_in_order_or_none(real_chat) -> None:
    session, store, events = real_chat
    conversation = store.create_conversation("t").id
    short = GREEDY.with_changes(max_tokens=6)
    session.top_logprobs = 3
    first = until_stored(events, session.send(conversation, "Tell me a long story.", short))
    message_id = first[-1].message_id
    before = store.reply_tokens(message_id)
    assert before is not None and len(before) == 6
    more = until_stored(events, session.continue_reply(conversation, short))
    assert more[-1].message_id == message_id
    added = next(e for e in more if isinstance(e, ev.TurnFinished)).tokens
    assert added
    after = store.reply_tokens(message_id)
    assert after is not None and after[:6] == before and len(after) == 6 + len(added)

    session.top_logprobs = 0  # continued without them: the stored ones no longer cover it
    until_stored(events, session.continue_reply(conversation, short))
    assert store.reply_tokens(message_id) is None
