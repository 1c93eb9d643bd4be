"""`glassbox chat` with piped input: the conversation id, --each-line, and the shared table."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

from app.metrics_columns import table_header


def chat(home, stdin, *args):
    env = {**os.environ, "GLASSBOX_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "app.cli.main", "chat", "--max-tokens", "8", "--ctx", "512", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_each_line_sends_one_message_a_line_in_one_conversation(tmp_path):
    result = chat(tmp_path, "Say hi.\n\nSay bye.\n", "--each-line", "--temperature", "0")
    assert result.returncode == 0, result.stderr
    assert "conversation 1" in result.stderr.splitlines()
    # The table chat, bench and the demo share: one header (not interactive), a row a turn.
    lines = result.stderr.splitlines()
    assert lines.count(table_header()) == 1
    header_at = lines.index(table_header())
    rows = [line for line in lines[header_at + 1 :] if line.split()[:1] in (["1"], ["2"])]
    assert [row.split()[0] for row in rows] == ["1", "2"]
    with sqlite3.connect(tmp_path / "glassbox.sqlite3") as db:
        messages = db.execute("SELECT conversation_id, role, content FROM messages ORDER BY id")
        stored = messages.fetchall()
    assert [(c, r) for c, r, _t in stored] == [
        (1, "user"),
        (1, "assistant"),
        (1, "user"),
        (1, "assistant"),
    ]
    assert [t for _c, r, t in stored if r == "user"] == ["Say hi.", "Say bye."]


def test_piped_input_without_each_line_is_one_message(tmp_path):
    result = chat(tmp_path, "Say hi.\nSay bye.\n")
    assert result.returncode == 0, result.stderr
    assert "conversation 1" in result.stderr.splitlines()
    with sqlite3.connect(tmp_path / "glassbox.sqlite3") as db:
        users = db.execute("SELECT content FROM messages WHERE role = 'user'").fetchall()
    assert users == [("Say hi.\nSay bye.",)]


def test_each_line_with_only_blank_lines_is_a_one_line_error(tmp_path):
    result = chat(tmp_path, "\n  \n", "--each-line")
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("glassbox:")]
    assert errors == ["glassbox: stdin had no non-empty line: nothing to send"]
    assert "Traceback" not in result.stderr
