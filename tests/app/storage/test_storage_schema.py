"""Schema, pragmas and migrations."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from app.metrics import FIELD_NAMES
from app.storage import MIGRATIONS, SchemaError, Store, migrate, schema_version
from app.storage.schema import latest_version, split_statements

# A made-up next migration, to test upgrading a file written by this build.
ADD_PINNED = (
    latest_version() + 1,
    "ALTER TABLE conversations ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX conversations_pinned ON conversations (pinned);",
)
# Its first statement works, its second fails: neither may stick.
BROKEN = (
    latest_version() + 1,
    "ALTER TABLE conversations ADD COLUMN pinned INTEGER;CREATE TABLE broken (id INTEGER, id);",
)


def raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]


def test_new_file_is_at_latest_version_in_wal_mode(store: Store) -> None:
    conn = raw(store.path)
    try:
        assert schema_version(conn) == latest_version() == MIGRATIONS[-1][0]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()
    assert store.integrity_check() == "ok"


def test_turn_metrics_columns_are_the_metrics_field_names(store: Store) -> None:
    conn = raw(store.path)
    try:
        assert columns(conn, "turn_metrics") == [
            "message_id",
            *FIELD_NAMES,
            "model",
            "runtime_settings",
            "sampling_settings",
            "created_at",
        ]
        assert columns(conn, "messages") == [
            "id",
            "conversation_id",
            "role",
            "content",
            "created_at",
            "partial",
            "stop_reason",
        ]
        assert "deleted_at" in columns(conn, "conversations")
    finally:
        conn.close()


def test_schema_rejects_bad_rows_itself(store: Store) -> None:
    # Constraints hold even for writers that bypass Store.
    conversation = store.create_conversation()
    conn = raw(store.path)
    conn.execute("PRAGMA foreign_keys = ON")
    try:
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute(
                "INSERT INTO messages (conversation_id, role, content, created_at) "
                "VALUES (?, 'tool', 'x', 0)",
                (conversation.id,),
            )
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute(
                "INSERT INTO messages (conversation_id, role, content, created_at) "
                "VALUES (99999, 'user', 'x', 0)"
            )
    finally:
        conn.close()


def test_old_file_is_migrated_and_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with Store.open(path) as store:
        conversation = store.create_conversation("from the old version")
        store.add_message(conversation.id, "user", "still here")

    conn = raw(path)
    try:
        assert migrate(conn, (*MIGRATIONS, ADD_PINNED)) == ADD_PINNED[0]
        assert "pinned" in columns(conn, "conversations")
        # Running again is a no-op.
        assert migrate(conn, (*MIGRATIONS, ADD_PINNED)) == ADD_PINNED[0]
    finally:
        conn.close()

    # This build refuses a file from a newer schema instead of guessing.
    with pytest.raises(SchemaError, match="newer Glassbox"):
        Store.open(path)


def test_empty_file_at_version_zero_is_migrated_on_open(tmp_path: Path) -> None:
    path = tmp_path / "empty.sqlite3"
    raw(path).close()
    conn = raw(path)
    assert schema_version(conn) == 0
    conn.close()
    with Store.open(path) as store:
        store.add_message(store.create_conversation().id, "user", "works")
    conn = raw(path)
    assert schema_version(conn) == latest_version()
    conn.close()


def test_failing_migration_leaves_the_old_version(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with Store.open(path) as store:
        conversation = store.create_conversation("keep me")
    old_version = latest_version()

    conn = raw(path)
    try:
        with pytest.raises(sqlite3.OperationalError, match="duplicate column"):
            migrate(conn, (*MIGRATIONS, BROKEN))
        assert not conn.in_transaction
        assert schema_version(conn) == old_version
        assert "pinned" not in columns(conn, "conversations")
    finally:
        conn.close()

    with Store.open(path) as store:
        assert store.integrity_check() == "ok"
        assert store.get_conversation(conversation.id) == conversation


def test_failure_in_a_later_migration_keeps_the_earlier_ones(tmp_path: Path) -> None:
    conn = raw(tmp_path / "fresh.sqlite3")
    try:
        with pytest.raises(sqlite3.OperationalError):
            migrate(conn, (*MIGRATIONS, BROKEN))
        assert schema_version(conn) == latest_version()
        assert "conversations" in {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
    finally:
        conn.close()


def test_migration_list_must_be_ascending(tmp_path: Path) -> None:
    conn = raw(tmp_path / "x.sqlite3")
    try:
        with pytest.raises(ValueError):
            migrate(conn, ((2, "SELECT 1"), (1, "SELECT 1")))
        assert schema_version(conn) == 0
    finally:
        conn.close()


def test_split_statements_respects_strings_and_triggers() -> None:
    sql = """
    CREATE TABLE t (a TEXT DEFAULT 'x;y');
    CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN UPDATE t SET a = 'p;q'; END;
    INSERT INTO t DEFAULT VALUES;
    """
    statements = split_statements(sql)
    assert len(statements) == 3
    assert statements[1].startswith("CREATE TRIGGER") and statements[1].endswith("END;")
    with pytest.raises(ValueError, match="incomplete"):
        split_statements("SELECT 'unterminated;")


def test_two_connections_creating_one_file_at_once(tmp_path: Path) -> None:
    path = tmp_path / "race.sqlite3"
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def open_store() -> None:
        try:
            barrier.wait()
            with Store.open(path) as store:
                store.create_conversation()
        except BaseException as error:  # reported by the assert below
            errors.append(error)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with Store.open(path) as store:
        assert len(store.list_conversations()) == 4
