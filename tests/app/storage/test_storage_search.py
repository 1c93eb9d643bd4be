"""Conversation search through the full-text index (schema version 2), on real SQLite files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from app.storage import MIGRATIONS, Store, migrate, schema_version
from app.storage import schema as schema_module
from app.storage.schema import latest_version


def raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def found(store: Store, text: str) -> set[int]:
    return {c.id for c in store.list_conversations(text)}


def fts_rows(path: Path) -> int:
    conn = raw(path)
    try:
        return int(conn.execute("SELECT count(*) FROM messages_fts").fetchone()[0])
    finally:
        conn.close()


def index_is_consistent(path: Path) -> bool:
    conn = raw(path)
    try:
        # Raises SQLITE_CORRUPT_VTAB when the index and the messages disagree.
        conn.execute("INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)")
        return True
    finally:
        conn.close()


def make_version_1_file(path: Path) -> tuple[int, int]:
    """A file as the previous build left it: schema 1, no index, some history."""
    conn = raw(path)
    try:
        assert migrate(conn, MIGRATIONS[:1]) == 1
        conn.execute(
            "INSERT INTO conversations (title, created_at, updated_at) VALUES ('Old', 1, 1)"
        )
        old_id = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
        conn.execute(
            "INSERT INTO messages (conversation_id, role, content, created_at) "
            "VALUES (?, 'user', 'Tell me about the Lighthouse keeper', 1)",
            (old_id,),
        )
        conn.execute(
            "INSERT INTO conversations (title, created_at, updated_at) VALUES ('Other', 2, 2)"
        )
        other_id = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
        conn.execute(
            "INSERT INTO messages (conversation_id, role, content, created_at) "
            "VALUES (?, 'assistant', 'Schrödinger''s cat is in the box', 2)",
            (other_id,),
        )
    finally:
        conn.close()
    return old_id, other_id


def test_a_version_1_file_upgrades_and_its_messages_are_searchable(tmp_path: Path) -> None:
    path = tmp_path / "v1.sqlite3"
    old_id, other_id = make_version_1_file(path)
    with Store.open(path) as store:
        conn = raw(path)
        try:
            assert schema_version(conn) == latest_version() >= 2
        finally:
            conn.close()
        assert fts_rows(path) == 2  # the rebuild indexed what was already there
        assert found(store, "lighthouse KEEPER") == {old_id}
        assert found(store, "SCHRÖDINGER's") == {other_id}
        assert found(store, "the") == {old_id, other_id}
        assert found(store, "not in any message") == set()
        assert store.integrity_check() == "ok" and index_is_consistent(path)


def test_search_follows_messages_added_edited_and_deleted(store: Store) -> None:
    first = store.create_conversation("First")
    second = store.create_conversation("Second")
    question = store.add_message(first.id, "user", "What do penguins eat?")
    reply = store.add_message(first.id, "assistant", "", partial=True)
    assert found(store, "penguins") == {first.id}
    assert found(store, "krill") == set()

    # A reply streaming in: every flush replaces the indexed text.
    store.update_message_content(reply.id, "Mostly kri")
    assert found(store, "krill") == set()
    store.update_message_content(reply.id, "Mostly krill and fish")
    assert found(store, "krill") == {first.id}
    store.finish_message(reply.id, "Mostly squid.", partial=False, stop_reason="eos")
    assert found(store, "krill") == set() and found(store, "squid") == {first.id}

    store.delete_message(question.id)
    assert found(store, "penguins") == set()

    store.add_message(second.id, "user", "More about squid, please")
    assert found(store, "squid") == {first.id, second.id}

    # Soft delete hides, restore shows, purge removes the rows (a cascade) and their index entries.
    store.delete_conversation(first.id)
    assert found(store, "squid") == {second.id}
    store.restore_conversation(first.id)
    assert found(store, "squid") == {first.id, second.id}
    store.delete_conversation(first.id)
    store.purge_deleted()
    assert found(store, "squid") == {second.id}
    assert fts_rows(store.path) == 1
    assert index_is_consistent(store.path)


def test_writers_that_bypass_the_store_keep_the_index_in_step(store: Store) -> None:
    conversation = store.create_conversation("Raw")
    conn = raw(store.path)
    conn.execute("PRAGMA foreign_keys = ON")
    try:
        conn.execute(
            "INSERT INTO messages (conversation_id, role, content, created_at) "
            "VALUES (?, 'user', 'written by another program', 0)",
            (conversation.id,),
        )
        assert found(store, "another program") == {conversation.id}
        conn.execute("UPDATE messages SET content = 'changed text' WHERE content LIKE 'written%'")
        assert found(store, "another program") == set()
        assert found(store, "changed") == {conversation.id}
        conn.execute("DELETE FROM conversations WHERE id = ?", (conversation.id,))
        assert found(store, "changed") == set()
    finally:
        conn.close()
    assert index_is_consistent(store.path)


def test_search_answers_from_the_index(store: Store) -> None:
    conversation = store.create_conversation("Title words")
    store.add_message(conversation.id, "user", "an indexed sentence")
    assert found(store, "indexed") == {conversation.id}
    conn = raw(store.path)
    try:
        conn.execute("INSERT INTO messages_fts (messages_fts) VALUES ('delete-all')")
    finally:
        conn.close()
    # With the index emptied behind its back, a needle of 3+ characters finds nothing in
    # messages: the answer came from the index, not a scan. Titles and short needles still scan.
    assert found(store, "indexed") == set()
    assert found(store, "title") == {conversation.id}
    assert found(store, "an") == {conversation.id}


@pytest.mark.parametrize(
    "needle",
    ['"quoted"', "NOT this", "a OR b", "star*", "col:on", "-minus", "(paren", "x AND y", "^caret"],
)
def test_query_syntax_in_the_search_text_is_plain_text(store: Store, needle: str) -> None:
    hit = store.create_conversation("hit")
    store.add_message(hit.id, "user", f"before {needle} after")
    miss = store.create_conversation("miss")
    store.add_message(miss.id, "user", "quoted this a b star col on minus paren x y caret")
    assert found(store, needle) == {hit.id}


def test_without_trigram_support_the_file_still_opens_and_search_scans(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(schema_module, "trigram_supported", lambda: False)
    path = tmp_path / "plain.sqlite3"
    with Store.open(path) as store:
        conversation = store.create_conversation()
        store.add_message(conversation.id, "user", "Straße und ÄRGER")
        assert found(store, "ärger") == {conversation.id}
        assert found(store, "STRASSE") == {conversation.id}
    conn = raw(path)
    try:
        assert schema_version(conn) == latest_version()
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        assert "messages_fts" not in names
    finally:
        conn.close()
