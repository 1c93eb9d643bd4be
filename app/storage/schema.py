"""SQLite schema and its migrations.

The schema version lives in PRAGMA user_version. MIGRATIONS is an append-only
list of (version, sql): never edit a shipped entry, add a new one. Each
migration runs in its own BEGIN IMMEDIATE transaction together with the
user_version bump, so a failing migration leaves the file at the version it
had before (SQLite DDL is transactional).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

from app.errors import GlassboxError

# The SQL of a migration, or a function that writes it for the SQLite library at
# hand (called inside the migration's transaction).
MigrationSql = str | Callable[[sqlite3.Connection], str]
Migration = tuple[int, MigrationSql]

# Version 1. turn_metrics has one column per TurnMetrics field, spelled the
# same. The DDL is written out rather than generated from the dataclass on
# purpose: a shipped migration must not change when TurnMetrics grows. A test
# compares the columns with FIELD_NAMES, so a new field fails CI until a
# migration adds its column.
_V1 = """
CREATE TABLE conversations (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    title         TEXT    NOT NULL,
    system_prompt TEXT    NOT NULL DEFAULT '',
    created_at    REAL    NOT NULL,
    updated_at    REAL    NOT NULL,
    deleted_at    REAL
);
CREATE INDEX conversations_listing ON conversations (deleted_at, updated_at);

CREATE TABLE messages (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    role            TEXT    NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
    content         TEXT    NOT NULL,
    created_at      REAL    NOT NULL,
    partial         INTEGER NOT NULL DEFAULT 0 CHECK (partial IN (0, 1)),
    stop_reason     TEXT
);
CREATE INDEX messages_by_conversation ON messages (conversation_id, id);

CREATE TABLE turn_metrics (
    message_id              INTEGER PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    queue_ms                REAL,
    ttft_ms                 REAL,
    prefill_ms              REAL,
    prompt_tokens           INTEGER,
    prompt_tokens_cached    INTEGER,
    prompt_tokens_evaluated INTEGER,
    prefill_tok_s           REAL,
    output_tokens           INTEGER,
    decode_ms               REAL,
    decode_tok_s            REAL,
    itl_ms_p50              REAL,
    itl_ms_p95              REAL,
    itl_ms_p99              REAL,
    kv_cells_used           INTEGER,
    kv_cells_total          INTEGER,
    kv_fill                 REAL,
    kv_bytes_used           INTEGER,
    kv_bytes_total          INTEGER,
    stop_reason             TEXT,
    total_ms                REAL,
    model                   TEXT,
    runtime_settings        TEXT,
    sampling_settings       TEXT,
    created_at              REAL    NOT NULL
);
"""

# Version 2. A full-text index of message content for conversation search. The
# trigram tokenizer keeps search's meaning (any substring, case-insensitive) while
# answering from the index instead of reading every message; it needs SQLite
# 3.34 with FTS5. External content: the text lives once, in messages, and the
# triggers keep the index in step with every insert, update and delete
# (foreign-key cascades included).
SEARCH_INDEX_SQL = """
CREATE VIRTUAL TABLE messages_fts USING fts5(
    content, content='messages', content_rowid='id', tokenize='trigram'
);
INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');
CREATE TRIGGER messages_fts_after_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, content) VALUES (new.id, new.content);
END;
CREATE TRIGGER messages_fts_after_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
END;
CREATE TRIGGER messages_fts_after_update AFTER UPDATE OF content ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
    INSERT INTO messages_fts (rowid, content) VALUES (new.id, new.content);
END;
"""


def trigram_supported() -> bool:
    """Whether this SQLite library has FTS5 with the trigram tokenizer."""
    probe = sqlite3.connect(":memory:")
    try:
        probe.execute("CREATE VIRTUAL TABLE probe USING fts5(x, tokenize='trigram')")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        probe.close()


def _v2_search_index(_conn: sqlite3.Connection) -> str:
    # Without trigram FTS5 the version still advances and search keeps scanning
    # messages (Store checks for the table), rather than refusing to open the file.
    return SEARCH_INDEX_SQL if trigram_supported() else ""


# Version 3. A conversation's own sampling settings: a JSON object holding only the
# SamplingSettings fields it overrides (app.conversation_settings); NULL: the defaults.
_V3 = "ALTER TABLE conversations ADD COLUMN sampling_overrides TEXT;"

# Version 4. A reply's tokens with the probability the model gave each and its top
# alternatives, as the decode loop computed them for a request that asked
# (app.engine.token_logprobs), as app.storage.reply_tokens writes them. Its own
# table, so message rows stay small; it goes with its message.
_V4 = """
CREATE TABLE reply_tokens (
    message_id INTEGER PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    tokens     TEXT    NOT NULL
);
"""

MIGRATIONS: tuple[Migration, ...] = (
    (1, _V1),
    (2, _v2_search_index),
    (3, _V3),
    (4, _V4),
)


class StorageError(GlassboxError):
    """The database cannot do what was asked."""


class SchemaError(StorageError):
    """The database file cannot be brought to the schema this build knows."""


def schema_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def latest_version(migrations: Sequence[Migration] = MIGRATIONS) -> int:
    return max((version for version, _ in migrations), default=0)


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Apply every migration newer than the file's user_version; return the final version.

    `conn` must be in autocommit mode (isolation_level=None). Two processes
    may open a fresh file at once: BEGIN IMMEDIATE takes the write lock first
    and the version is read again inside the transaction, so each migration
    runs exactly once.
    """
    versions = [version for version, _ in migrations]
    if versions != sorted(set(versions)) or (versions and versions[0] < 1):
        raise ValueError(f"migration versions must be unique, ascending and >= 1: {versions}")
    target = latest_version(migrations)
    found = schema_version(conn)
    if found > target:
        raise SchemaError(
            f"the database was written by a newer Glassbox (schema {found}, this build knows "
            f"{target}); update Glassbox or move the file aside"
        )
    for version, sql in migrations:
        if version > found:
            _apply(conn, version, sql)
    return schema_version(conn)


def split_statements(sql: str) -> list[str]:
    """Split a script into statements; sqlite3.complete_statement knows about
    semicolons inside strings and CREATE TRIGGER bodies."""
    statements: list[str] = []
    pending = ""
    for piece in sql.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \t\r\n;"):
                statements.append(pending.strip())
            pending = ""
    if pending.strip(" \t\r\n;"):
        raise ValueError(f"incomplete SQL statement in migration: {pending.strip()!r}")
    return statements


def _apply(conn: sqlite3.Connection, version: int, sql: MigrationSql) -> None:
    # Statements run one by one rather than through executescript(), which
    # would COMMIT the transaction we opened before running the script.
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Re-read under the write lock: another process opening the same new
        # file may have applied this migration while we waited.
        if schema_version(conn) < version:
            for statement in split_statements(sql if isinstance(sql, str) else sql(conn)):
                conn.execute(statement)
            # user_version lives in the file header, which is journaled like
            # any page: a rollback also undoes the bump.
            conn.execute(f"PRAGMA user_version = {int(version)}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
