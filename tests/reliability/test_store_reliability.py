"""The store keeps what it committed: damaged files moved aside, migrations that keep every
row or change nothing, a full disk reported with earlier data intact."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from app.metrics import TurnMetrics
from app.storage.schema import MIGRATIONS, SEARCH_INDEX_SQL, latest_version, migrate
from app.storage.store import StorageError, Store

FIXTURES = Path(__file__).with_name("fixtures")
REPO_ROOT = Path(__file__).resolve().parents[2]


def _dump(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [
            *conn.iterdump(),
            f"user_version={conn.execute('PRAGMA user_version').fetchone()[0]}",
        ]
    finally:
        conn.close()


def _database_from_fixture(name: str, target: Path) -> Path:
    conn = sqlite3.connect(target, isolation_level=None)
    conn.executescript(FIXTURES.joinpath(name).read_text(encoding="utf-8"))
    conn.close()
    return target


def _filled_store(path: Path) -> tuple[Store, int, list[str]]:
    store = Store.open(path)
    conversation = store.create_conversation("kept")
    texts = [f"message {i} " + "é" * i for i in range(20)]
    for text in texts:
        store.add_message(conversation.id, "user", text)
    return store, conversation.id, texts


# -- damaged files -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "damage",
    ["garbage", "header-overwritten", "schema-page-overwritten", "zeros"],
)
def test_a_damaged_database_is_moved_aside_and_a_fresh_one_started(
    tmp_path: Path, damage: str
) -> None:
    path = tmp_path / "glassbox.sqlite3"
    if damage == "garbage":
        path.write_bytes(b"this is not a database at all\n" * 100)
    elif damage == "zeros":
        path.write_bytes(b"\0" * 8192)
    else:
        store, _, _ = _filled_store(path)
        store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        store.close()
        with path.open("r+b") as f:
            if damage == "header-overwritten":
                f.write(b"\xff" * 100)
            else:  # page 1 after the header holds sqlite_master
                f.seek(100)
                f.write(os.urandom(3000))
    damaged = path.read_bytes()

    store = Store.open(path)
    try:
        assert store.recovered is not None and store.recovered.exists()
        assert store.recovered.read_bytes() == damaged, "the damaged file is kept as it was"
        assert store.recovered.name.startswith("glassbox.sqlite3.corrupt-")
        assert "moved to" in store.recovery_notice and "\n" not in store.recovery_notice
        assert store.integrity_check() == "ok"
        assert store.list_conversations() == []
        conversation = store.create_conversation()
        store.add_message(conversation.id, "user", "a fresh start")
    finally:
        store.close()


def test_without_recovery_a_damaged_file_is_an_error_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "glassbox.sqlite3"
    path.write_bytes(b"not a database" * 500)
    with pytest.raises(StorageError, match="cannot open the database"):
        Store.open(path, recover=False)
    assert path.read_bytes() == b"not a database" * 500
    assert [p.name for p in tmp_path.iterdir()] == ["glassbox.sqlite3"]


def test_a_database_from_a_newer_glassbox_is_not_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "glassbox.sqlite3"
    Store.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {latest_version() + 5}")
    conn.close()
    with pytest.raises(StorageError, match="newer Glassbox"):
        Store.open(path)
    assert sorted(p.name for p in tmp_path.iterdir() if ".corrupt-" in p.name) == []


def test_the_store_runs_wal_with_synchronous_full(tmp_path: Path) -> None:
    with Store.open(tmp_path / "db.sqlite3") as store:
        assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


# -- migrations ----------------------------------------------------------------------------


def test_a_version_1_database_keeps_every_row(tmp_path: Path) -> None:
    path = _database_from_fixture("schema_v1.sql", tmp_path / "v1.sqlite3")
    before = sqlite3.connect(path)
    tables = ("conversations", "messages", "turn_metrics")
    rows = {t: before.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in tables}
    before.close()
    assert sum(len(r) for r in rows.values()) == 9

    with Store.open(path) as store:
        assert store._conn.execute("PRAGMA user_version").fetchone()[0] == latest_version()
        for table in tables:
            after = store._conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
            # Later versions may add columns (3: conversations.sampling_overrides, NULL).
            assert [row[: len(rows[table][0])] for row in after] == rows[table]
        messages = store.messages(1)
        assert [m.content for m in messages][2] == "And in winter? 🌨"
        assert messages[3].partial and messages[3].stop_reason == "cancelled"
        assert messages[1].metrics is not None and messages[1].metrics.decode_tok_s == 98.7
        assert messages[1].runtime_settings == {"n_ctx": 2048}
        # The index added by version 2 covers the old rows.
        assert [c.id for c in store.list_conversations("winter")] == [1]
        assert store.get_conversation(2).deleted_at is not None
        assert store.integrity_check() == "ok"


def test_an_empty_file_becomes_the_latest_schema(tmp_path: Path) -> None:
    path = tmp_path / "empty.sqlite3"
    path.touch()
    with Store.open(path) as store:
        assert store.recovered is None
        assert store._conn.execute("PRAGMA user_version").fetchone()[0] == latest_version()


def _failing_v2(_conn: sqlite3.Connection) -> str:
    # The real version 2, then a statement that fails after it ran.
    return SEARCH_INDEX_SQL + "\nINSERT INTO no_such_table VALUES (1);"


def test_a_failure_mid_migration_leaves_the_file_unchanged(tmp_path: Path) -> None:
    path = _database_from_fixture("schema_v1.sql", tmp_path / "v1.sqlite3")
    before = _dump(path)
    conn = sqlite3.connect(path, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError, match="no_such_table"):
        migrate(conn, (MIGRATIONS[0], (2, _failing_v2)))
    conn.close()
    assert _dump(path) == before
    # And the real migration still works afterwards.
    with Store.open(path) as store:
        assert len(store.messages(1)) == 4


def test_a_failing_future_migration_leaves_the_current_file_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "current.sqlite3"
    store, conversation_id, _ = _filled_store(path)
    store.close()
    before = _dump(path)
    conn = sqlite3.connect(path, isolation_level=None)
    broken = (
        latest_version() + 1,
        "ALTER TABLE messages ADD COLUMN rating INTEGER; DROP TABLE messages; SELECT x;",
    )
    with pytest.raises(sqlite3.OperationalError):
        migrate(conn, (*MIGRATIONS, broken))
    conn.close()
    assert _dump(path) == before
    with Store.open(path) as store:
        assert len(store.messages(conversation_id)) == 20


# -- a full disk ------------------------------------------------------------------------------


def test_a_full_database_reports_the_error_and_keeps_earlier_data(tmp_path: Path) -> None:
    store, conversation_id, texts = _filled_store(tmp_path / "full.sqlite3")
    try:
        pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
        store._conn.execute(f"PRAGMA max_page_count = {pages + 2}")
        with pytest.raises(StorageError, match="disk is full") as raised:
            for _ in range(20):  # the WAL gives a little room first
                store.add_message(conversation_id, "user", "x" * 200_000)
        assert "\n" not in str(raised.value)
        reply = None
        with pytest.raises(StorageError, match="disk is full"):
            reply = store.add_message(conversation_id, "assistant", "", partial=True)
            store.finish_message(
                reply.id,
                "y" * 300_000,
                partial=False,
                stop_reason="eos",
                metrics=TurnMetrics(output_tokens=5),
            )
        kept = [m.content for m in store.messages(conversation_id)]
        assert kept[:20] == texts
        assert store.integrity_check() == "ok"
        # Room again: writes work, nothing half-written is left.
        store._conn.execute("PRAGMA max_page_count = 1073741823")
        store.add_message(conversation_id, "user", "after the disk was freed")
        assert store.messages(conversation_id)[-1].content == "after the disk was freed"
    finally:
        store.close()


FULL_DISK_CHILD = """
import resource, signal, sys
from pathlib import Path
from app.storage.store import Store, StorageError
path = Path(sys.argv[1])
store = Store.open(path)
conversation = store.list_conversations()[0]
# The file-size limit a nearly full disk gives: a little above what the files use now.
used = sum(p.stat().st_size for p in path.parent.iterdir())
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (used + 64 * 1024, resource.RLIM_INFINITY))
try:
    for i in range(1000):
        store.add_message(conversation.id, "user", "z" * 100_000)
        print("committed", i, flush=True)
except StorageError as exc:
    print("error:", exc, flush=True)
    sys.exit(0)
sys.exit("no error at all")
"""


def test_a_file_size_limit_in_a_writer_process_is_reported_and_data_kept(
    tmp_path: Path,
) -> None:
    path = tmp_path / "db" / "fsize.sqlite3"
    store, conversation_id, texts = _filled_store(path)
    store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    proc = subprocess.run(
        [sys.executable, "-c", FULL_DISK_CHILD, str(path)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("error: could not write to the database"), proc.stdout
    assert "earlier messages are kept" in last
    print(last)
    committed = sum(line.startswith("committed") for line in proc.stdout.splitlines())
    with Store.open(path) as store:
        assert store.recovered is None
        assert store.integrity_check() == "ok"
        messages = store.messages(conversation_id)
        assert [m.content for m in messages[:20]] == texts
        assert len(messages) == 20 + committed


def test_the_cli_tells_the_user_when_the_database_was_moved_aside(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "glassbox.sqlite3").write_bytes(b"definitely not SQLite\n" * 50)
    proc = subprocess.run(
        [sys.executable, "-m", "app.cli.main", "conversations", "list"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=dict(os.environ, GLASSBOX_HOME=str(home), PYTHONPATH=str(REPO_ROOT)),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "glassbox: the database glassbox.sqlite3 was damaged" in proc.stderr
    assert len(list(home.glob("glassbox.sqlite3.corrupt-*"))) == 1
