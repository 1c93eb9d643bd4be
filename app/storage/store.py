"""Conversations, messages and per-turn metrics in one SQLite file.

One connection per Store, shared by the engine reader thread and the GUI/CLI
thread: check_same_thread=False plus an RLock around every use. The
connection is in autocommit mode, so a single statement commits on its own
and multi-statement writes use an explicit BEGIN IMMEDIATE transaction.
Every write method has committed when it returns; with WAL and
synchronous=FULL a committed write survives the process being killed and a
power cut too (the WAL is fsynced at every commit; benchmarks/bench_sync.py
measures what that costs a streamed flush).

SQLite failures (a full disk, an I/O error, text SQLite cannot take) come out
as StorageError with one line for the user; the file keeps what was committed
before. A file that is not a database, or whose schema is damaged, is moved
aside at open (never deleted) and a fresh one created: see Store.recovered.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from app.metrics import FIELD_NAMES, TurnMetrics
from app.paths import database_path
from app.storage.reply_tokens import pack as pack_reply_tokens
from app.storage.reply_tokens import unpack as unpack_reply_tokens
from app.storage.schema import StorageError, migrate

ROLES: tuple[str, ...] = ("system", "user", "assistant")

_log = logging.getLogger(__name__)

# Waiting this long for another connection's write lock is better than
# failing a user's message with "database is locked".
BUSY_TIMEOUT_S = 10.0

# PRAGMA synchronous values Store accepts; FULL is the default (see the module docstring).
SYNCHRONOUS_MODES = ("FULL", "NORMAL")

# SQLite's primary result codes for a damaged file: SQLITE_CORRUPT, SQLITE_NOTADB.
_CORRUPT_CODES = (11, 26)
_CORRUPT_WORDS = ("file is not a database", "malformed", "database disk image")


class NotFoundError(StorageError, KeyError):
    """No conversation or message with that id (never existed or purged).

    Also a KeyError, so `except KeyError` works as well as `except GlassboxError`.
    """

    def __str__(self) -> str:
        # KeyError.__str__ would wrap the message in quotes.
        return str(self.args[0]) if self.args else ""


@dataclass
class Conversation:
    id: int
    title: str
    system_prompt: str
    created_at: float
    updated_at: float
    # Not None while the conversation sits soft-deleted, waiting for undo or purge.
    deleted_at: float | None = None


@dataclass
class Message:
    id: int
    conversation_id: int
    role: str
    content: str
    created_at: float
    partial: bool
    stop_reason: str | None
    metrics: TurnMetrics | None = None
    model: str | None = None
    runtime_settings: dict[str, Any] | None = None
    sampling_settings: dict[str, Any] | None = None


_CONVERSATION_COLUMNS = "id, title, system_prompt, created_at, updated_at, deleted_at"
_METRIC_COLUMNS = ", ".join(f"t.{name}" for name in FIELD_NAMES)
_MESSAGE_SELECT = (
    "SELECT m.id, m.conversation_id, m.role, m.content, m.created_at, m.partial, m.stop_reason, "
    f"t.message_id, t.model, t.runtime_settings, t.sampling_settings, {_METRIC_COLUMNS} "
    "FROM messages AS m LEFT JOIN turn_metrics AS t ON t.message_id = m.id"
)
_METRICS_INSERT = (
    "INSERT OR REPLACE INTO turn_metrics (message_id, "
    + ", ".join(FIELD_NAMES)
    + ", model, runtime_settings, sampling_settings, created_at) VALUES ("
    + ", ".join("?" * (len(FIELD_NAMES) + 5))
    + ")"
)


def _contains_casefold(haystack: str | None, needle: str | None) -> int:
    # SQLite's LIKE and lower() fold ASCII only; search must match "Ä" with "ä".
    if haystack is None or needle is None:
        return 0
    return int(needle in haystack.casefold())


class Store:
    """The app's SQLite database. Thread-safe; use Store.open() to get one.

    Unknown conversation or message ids raise NotFoundError (a KeyError and a
    GlassboxError). Soft-deleted conversations still accept messages, so a
    reply streaming into a conversation the user just deleted does not fail.
    """

    def __init__(self, path: Path, *, synchronous: str = "FULL", recover: bool = True) -> None:
        """recover: move a damaged file aside and start a fresh one (see `recovered`)
        instead of raising StorageError."""
        if synchronous not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS_MODES}, got {synchronous!r}")
        self.path = path
        self.synchronous = synchronous
        self._lock = threading.RLock()
        # Where a damaged database was moved at open, and the line that tells the user.
        self.recovered: Path | None = None
        self.recovery_notice = ""
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = self._connect()
        except sqlite3.DatabaseError as exc:
            if not (recover and is_corruption(exc)):
                raise StorageError(f"cannot open the database {path}: {exc}") from None
            self.recovered = move_aside(path)
            self.recovery_notice = (
                f"the database {path.name} was damaged ({exc}); it was moved to "
                f"{self.recovered.name} and a new, empty one was started"
            )
            # Every command opens the store its own way; with no logging set up, Python
            # prints a warning on stderr, so each one tells the user. The window also
            # shows it (ui/startup.py).
            _log.warning("glassbox: %s", self.recovery_notice)
            self._conn = self._connect()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            str(self.path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        self._conn = conn
        try:
            self._configure()
            migrate(conn)
            # Absent where SQLite lacks trigram FTS5 (see schema version 2).
            self._search_index = bool(
                conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'messages_fts'"
                ).fetchall()
            )
        except BaseException:
            conn.close()
            raise
        return conn

    @classmethod
    def open(cls, path: Path | None = None, **options: Any) -> Store:
        """Open, creating and migrating as needed; default app.paths.database_path().

        options: synchronous ("FULL", "NORMAL"), recover (see __init__)."""
        return cls(Path(path) if path is not None else database_path(), **options)

    def _configure(self) -> None:
        mode = self._enable_wal()
        if mode != "wal":
            raise StorageError(f"cannot use write-ahead logging for {self.path} (got {mode})")
        # FULL under WAL fsyncs the WAL at every commit, so a power cut loses
        # nothing that was reported committed; NORMAL only for the benchmark.
        self._conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        self._conn.execute("PRAGMA foreign_keys = ON")
        self._conn.create_function("gb_contains", 2, _contains_casefold, deterministic=True)

    def _enable_wal(self) -> str:
        # Leaving rollback-journal mode needs an exclusive lock, and SQLite
        # returns SQLITE_BUSY for it without calling the busy handler when
        # another connection holds a shared lock (two processes opening a new
        # file at once). So retry here, within the same time budget.
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                row = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()
                return str(row[0]).lower()
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _locked(self) -> Iterator[sqlite3.Connection]:
        """The connection under the lock; SQLite's failures become one-line StorageErrors."""
        with self._lock:
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise StorageError(_describe_failure(self.path, exc)) from exc
            except UnicodeEncodeError as exc:
                # A lone surrogate (from a broken paste) cannot be encoded as UTF-8.
                raise StorageError(
                    f"the text cannot be stored: it holds a character that is not valid "
                    f"Unicode ({exc.object[exc.start : exc.end]!a})"
                ) from None

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._locked() as conn:
            # IMMEDIATE takes the write lock up front, so a second connection
            # waits in busy_timeout instead of failing halfway through.
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                # A full disk may already have rolled the transaction back.
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            try:
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        with self._locked() as conn:
            return conn.execute(sql, params).fetchall()

    # Conversations

    def create_conversation(
        self, title: str = "New conversation", system_prompt: str = ""
    ) -> Conversation:
        now = time.time()
        with self._locked():
            cursor = self._conn.execute(
                "INSERT INTO conversations (title, system_prompt, created_at, updated_at) "
                "VALUES (?, ?, ?, ?)",
                (title, system_prompt, now, now),
            )
            conversation_id = cursor.lastrowid
        assert conversation_id is not None
        return Conversation(conversation_id, title, system_prompt, now, now)

    def get_conversation(self, conversation_id: int) -> Conversation | None:
        """The conversation, soft-deleted ones included (see deleted_at); None if absent."""
        rows = self._query(
            f"SELECT {_CONVERSATION_COLUMNS} FROM conversations WHERE id = ?", (conversation_id,)
        )
        return Conversation(*rows[0]) if rows else None

    def list_conversations(self, search: str | None = None) -> list[Conversation]:
        """Newest updated first, without soft-deleted ones.

        `search` matches any substring of the title or of a message's content,
        case-insensitively. Messages are searched through the trigram index
        (messages_fts) when the needle has 3 characters or more; shorter needles,
        and needles whose Unicode case folding is more than lower-casing ("ß"),
        scan the messages instead. The index folds case character by character,
        so "ss" does not find "ß" as a scan would.
        """
        sql = f"SELECT {_CONVERSATION_COLUMNS} FROM conversations AS c WHERE deleted_at IS NULL"
        params: tuple[Any, ...] = ()
        if search:
            needle = search.casefold()
            if self._search_index and len(search) >= 3 and needle == search.lower():
                sql += (
                    " AND (gb_contains(c.title, ?) OR c.id IN (SELECT m.conversation_id"
                    " FROM messages_fts AS f JOIN messages AS m ON m.id = f.rowid"
                    " WHERE messages_fts MATCH ?))"
                )
                params = (needle, _fts_phrase(search))
            else:
                sql += (
                    " AND (gb_contains(c.title, ?) OR EXISTS (SELECT 1 FROM messages AS m"
                    " WHERE m.conversation_id = c.id AND gb_contains(m.content, ?)))"
                )
                params = (needle, needle)
        sql += " ORDER BY updated_at DESC, id DESC"
        return [Conversation(*row) for row in self._query(sql, params)]

    def rename_conversation(self, conversation_id: int, title: str) -> None:
        # Renaming leaves updated_at alone so the list does not reorder under the user.
        self._update_conversation(conversation_id, "title = ?", (title,))

    def set_system_prompt(self, conversation_id: int, system_prompt: str) -> None:
        self._update_conversation(
            conversation_id, "system_prompt = ?, updated_at = ?", (system_prompt, time.time())
        )

    def sampling_overrides(self, conversation_id: int) -> dict[str, Any] | None:
        """The sampling fields this conversation overrides, as stored (None: none).
        StorageError when the stored text is not a JSON object."""
        rows = self._query(
            "SELECT sampling_overrides FROM conversations WHERE id = ?", (conversation_id,)
        )
        if not rows:
            raise NotFoundError(f"no conversation with id {conversation_id}")
        text = rows[0][0]
        if text is None:
            return None
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise StorageError(
                f"the sampling settings stored with conversation {conversation_id} are not "
                f"a JSON object: {text[:80]!r}"
            )
        return value

    def set_sampling_overrides(
        self, conversation_id: int, overrides: dict[str, Any] | None
    ) -> None:
        """Store the conversation's sampling overrides; None or {} clears them. Checking
        the values is app.conversation_settings' job; updated_at is left alone."""
        self._update_conversation(
            conversation_id, "sampling_overrides = ?", (_to_json(overrides or None),)
        )

    def delete_conversation(self, conversation_id: int) -> None:
        """Soft delete: hidden from list_conversations until restored or purged."""
        self._update_conversation(conversation_id, "deleted_at = ?", (time.time(),))

    def restore_conversation(self, conversation_id: int) -> None:
        self._update_conversation(conversation_id, "deleted_at = NULL", ())

    def purge_deleted(self) -> None:
        """Hard delete soft-deleted conversations; messages and metrics go by cascade."""
        with self._locked():
            self._conn.execute("DELETE FROM conversations WHERE deleted_at IS NOT NULL")

    def _update_conversation(
        self, conversation_id: int, assignments: str, params: tuple[Any, ...]
    ) -> None:
        with self._locked():
            cursor = self._conn.execute(
                f"UPDATE conversations SET {assignments} WHERE id = ?", (*params, conversation_id)
            )
        if cursor.rowcount == 0:
            raise NotFoundError(f"no conversation with id {conversation_id}")

    def _require_conversation(self, conversation_id: int) -> None:
        if not self._query("SELECT 1 FROM conversations WHERE id = ?", (conversation_id,)):
            raise NotFoundError(f"no conversation with id {conversation_id}")

    # Messages

    def add_message(
        self, conversation_id: int, role: str, content: str, *, partial: bool = False
    ) -> Message:
        """Append a message (committed on return) and bump the conversation's updated_at."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        now = time.time()
        with self._transaction() as conn:
            bumped = conn.execute(
                "UPDATE conversations SET updated_at = ? WHERE id = ?", (now, conversation_id)
            )
            if bumped.rowcount == 0:
                raise NotFoundError(f"no conversation with id {conversation_id}")
            cursor = conn.execute(
                "INSERT INTO messages (conversation_id, role, content, created_at, partial) "
                "VALUES (?, ?, ?, ?, ?)",
                (conversation_id, role, content, now, int(partial)),
            )
            message_id = cursor.lastrowid
        assert message_id is not None
        return Message(message_id, conversation_id, role, content, now, partial, None)

    def update_message_content(
        self, message_id: int, content: str, *, partial: bool = True
    ) -> None:
        """Overwrite the text of a message, e.g. to flush a reply while it streams."""
        with self._locked():
            cursor = self._conn.execute(
                "UPDATE messages SET content = ?, partial = ? WHERE id = ?",
                (content, int(partial), message_id),
            )
        if cursor.rowcount == 0:
            raise NotFoundError(f"no message with id {message_id}")

    def finish_message(
        self,
        message_id: int,
        content: str,
        *,
        partial: bool,
        stop_reason: str | None,
        metrics: TurnMetrics | None = None,
        model: str | None = None,
        runtime_settings: dict[str, Any] | None = None,
        sampling_settings: dict[str, Any] | None = None,
    ) -> None:
        """Final text, stop reason and (when any is given) the metrics row, in one transaction.

        Calling it again replaces the metrics row. A row whose metric figures are
        all None reads back as metrics=None (model and settings are kept).
        """
        now = time.time()
        with self._transaction() as conn:
            cursor = conn.execute(
                "UPDATE messages SET content = ?, partial = ?, stop_reason = ? WHERE id = ?",
                (content, int(partial), stop_reason, message_id),
            )
            if cursor.rowcount == 0:
                raise NotFoundError(f"no message with id {message_id}")
            conn.execute(
                "UPDATE conversations SET updated_at = ? WHERE id = "
                "(SELECT conversation_id FROM messages WHERE id = ?)",
                (now, message_id),
            )
            extras = (model, runtime_settings, sampling_settings)
            if metrics is not None or any(value is not None for value in extras):
                values = metrics.to_dict() if metrics is not None else {}
                conn.execute(
                    _METRICS_INSERT,
                    (
                        message_id,
                        *(values.get(name) for name in FIELD_NAMES),
                        model,
                        _to_json(runtime_settings),
                        _to_json(sampling_settings),
                        now,
                    ),
                )

    def set_reply_tokens(self, message_id: int, tokens: list[dict[str, Any]] | None) -> None:
        """Store a reply's tokens with their probabilities ({id, text, logprob, top} each,
        as TurnFinished.tokens holds them), replacing any; None removes them."""
        with self._locked() as conn:
            if tokens is None:
                conn.execute("DELETE FROM reply_tokens WHERE message_id = ?", (message_id,))
            else:
                conn.execute(
                    "INSERT OR REPLACE INTO reply_tokens (message_id, tokens) VALUES (?, ?)",
                    (message_id, pack_reply_tokens(tokens)),
                )

    def reply_tokens(self, message_id: int) -> list[dict[str, Any]] | None:
        """The reply's stored tokens (set_reply_tokens; log-probabilities rounded to 5
        decimals), or None when it has none."""
        rows = self._query("SELECT tokens FROM reply_tokens WHERE message_id = ?", (message_id,))
        return unpack_reply_tokens(rows[0][0]) if rows else None

    def delete_message(self, message_id: int) -> None:
        with self._locked():
            cursor = self._conn.execute("DELETE FROM messages WHERE id = ?", (message_id,))
        if cursor.rowcount == 0:
            raise NotFoundError(f"no message with id {message_id}")

    def messages(self, conversation_id: int) -> list[Message]:
        """Messages in the order they were added, each with its metrics row if it has one."""
        with self._lock:
            self._require_conversation(conversation_id)
            rows = self._query(
                f"{_MESSAGE_SELECT} WHERE m.conversation_id = ? ORDER BY m.id", (conversation_id,)
            )
        return [_message_from_row(row) for row in rows]

    def import_conversation(
        self,
        title: str,
        system_prompt: str,
        created_at: float,
        updated_at: float,
        messages: Sequence[Message],
        *,
        sampling_overrides: dict[str, Any] | None = None,
    ) -> Conversation:
        """A new conversation holding copies of `messages` (their ids are ignored) with
        their timestamps, settings and metrics rows, all in one transaction: an import
        that fails halfway leaves nothing behind. `sampling_overrides`: the
        conversation's own sampling settings (a branch keeps its original's)."""
        with self._transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO conversations (title, system_prompt, created_at, updated_at, "
                "sampling_overrides) VALUES (?, ?, ?, ?, ?)",
                (
                    title,
                    system_prompt,
                    created_at,
                    updated_at,
                    _to_json(sampling_overrides or None),
                ),
            )
            conversation_id = cursor.lastrowid
            for message in messages:
                if message.role not in ROLES:
                    choices = ", ".join(ROLES)
                    raise ValueError(f"role must be one of {choices}, got {message.role!r}")
                row = conn.execute(
                    "INSERT INTO messages (conversation_id, role, content, created_at, partial, "
                    "stop_reason) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        conversation_id,
                        message.role,
                        message.content,
                        message.created_at,
                        int(message.partial),
                        message.stop_reason,
                    ),
                )
                extras = (message.model, message.runtime_settings, message.sampling_settings)
                if message.metrics is None and all(value is None for value in extras):
                    continue
                values = message.metrics.to_dict() if message.metrics is not None else {}
                conn.execute(
                    _METRICS_INSERT,
                    (
                        row.lastrowid,
                        *(values.get(name) for name in FIELD_NAMES),
                        message.model,
                        _to_json(message.runtime_settings),
                        _to_json(message.sampling_settings),
                        message.created_at,
                    ),
                )
        assert conversation_id is not None
        return Conversation(conversation_id, title, system_prompt, created_at, updated_at)

    def turn_metrics(self, conversation_id: int) -> list[tuple[int, TurnMetrics]]:
        """(message_id, metrics) for every message that has metrics, in turn order."""
        return [
            (message.id, message.metrics)
            for message in self.messages(conversation_id)
            if message.metrics is not None
        ]

    def integrity_check(self) -> str:
        """PRAGMA integrity_check joined into one string; "ok" when the file is sound."""
        rows = self._query("PRAGMA integrity_check")
        return "\n".join(str(row[0]) for row in rows)


def is_corruption(exc: sqlite3.DatabaseError) -> bool:
    """Whether SQLite's error says the file is damaged (not locked, full or unreadable)."""
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None:
        return code & 0xFF in _CORRUPT_CODES
    return any(word in str(exc).lower() for word in _CORRUPT_WORDS)


def move_aside(path: Path) -> Path:
    """Rename a damaged database (with its -wal and -shm files) to NAME.corrupt-TIMESTAMP;
    the user's data is never deleted. Returns the new path of the main file."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            side.rename(target.with_name(target.name + suffix))
    path.rename(target)
    return target


def _describe_failure(path: Path, exc: sqlite3.Error) -> str:
    code = getattr(exc, "sqlite_errorcode", None)
    text = str(exc)
    if (code is not None and code & 0xFF == 13) or "disk is full" in text:  # SQLITE_FULL
        return (
            f"could not write to the database {path}: the disk is full (earlier "
            "messages are kept; free some space and try again)"
        )
    if code is not None and code & 0xFF == 10:  # SQLITE_IOERR: a file size limit, a bad disk
        return (
            f"could not write to the database {path}: {text} (is the disk full or failing? "
            "earlier messages are kept)"
        )
    return f"database error in {path}: {text}"


def _fts_phrase(text: str) -> str:
    """An FTS5 query matching `text` as written: one quoted phrase, which the trigram
    tokenizer turns into "these characters, in a row"; operators stay plain text."""
    return '"' + text.replace('"', '""') + '"'


def _to_json(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True)


def _from_json(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    value = json.loads(text)
    return value if isinstance(value, dict) else None


def _message_from_row(row: tuple[Any, ...]) -> Message:
    (message_id, conversation_id, role, content, created_at, partial, stop_reason) = row[:7]
    has_metrics_row, model, runtime_json, sampling_json = row[7:11]
    figures = row[11:]
    metrics = None
    if has_metrics_row is not None and any(value is not None for value in figures):
        metrics = TurnMetrics(**dict(zip(FIELD_NAMES, figures, strict=True)))
    return Message(
        id=message_id,
        conversation_id=conversation_id,
        role=role,
        content=content,
        created_at=created_at,
        partial=bool(partial),
        stop_reason=stop_reason,
        metrics=metrics,
        model=model,
        runtime_settings=_from_json(runtime_json),
        sampling_settings=_from_json(sampling_json),
    )
