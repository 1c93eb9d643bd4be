"""A writer process SIGKILLed mid-stream loses nothing it reported as committed."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

from app.storage import Store

# The writer_child fixture (conftest.py); conftest is not imported, its module name is not unique.
WriterChildFactory = Callable[[Path, str], "subprocess.Popen[str]"]

LINES_BEFORE_KILL = 150


def read_lines_then_kill(proc: subprocess.Popen[str], count: int) -> list[str]:
    """Read `count` lines while the child keeps writing, SIGKILL it, then drain the pipe.

    Lines still in the pipe after the kill were printed after their commit, so
    they count too.
    """
    assert proc.stdout is not None
    lines: list[str] = []
    while len(lines) < count:
        line = proc.stdout.readline()
        if not line:
            stderr = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"writer child ended early: {stderr}")
        lines.append(line.rstrip("\n"))
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    lines.extend(line.rstrip("\n") for line in proc.stdout.read().splitlines())
    # A line cut short by the kill has no newline and may be incomplete.
    return lines


def test_killed_writer_keeps_every_reported_message(
    tmp_path: Path, writer_child: WriterChildFactory
) -> None:
    db_path = tmp_path / "crash.sqlite3"
    lines = read_lines_then_kill(writer_child(db_path, "messages"), LINES_BEFORE_KILL)

    conversation_id = int(lines[0].split()[1])
    reported: dict[int, str] = {}
    for line in lines[1:]:
        id_text, _, text = line.partition(" ")
        if text.startswith("message "):
            reported[int(id_text)] = text

    with Store.open(db_path) as store:
        assert store.integrity_check() == "ok"
        stored = {message.id: message for message in store.messages(conversation_id)}
        assert len(reported) >= LINES_BEFORE_KILL - 1
        for message_id, text in reported.items():
            message = stored[message_id]
            assert message.content == text
            if message.role == "assistant":
                assert message.partial is False
                metrics = message.metrics
                assert metrics is not None
                assert metrics.stop_reason == "eos"
        # The store still takes writes after the crash.
        store.add_message(conversation_id, "user", "after the crash")
        assert store.messages(conversation_id)[-1].content == "after the crash"


def test_killed_stream_leaves_partial_reply(
    tmp_path: Path, writer_child: WriterChildFactory
) -> None:
    db_path = tmp_path / "stream.sqlite3"
    lines = read_lines_then_kill(writer_child(db_path, "stream"), 100)

    conversation_id = int(lines[0].split()[1])
    reply_id = int(lines[1].split()[1])
    last_flush = max(int(line) for line in lines[2:] if line.isdigit())

    with Store.open(db_path) as store:
        assert store.integrity_check() == "ok"
        user, reply = store.messages(conversation_id)
        assert user.content == "tell me a long story"
        assert reply.id == reply_id
        assert reply.role == "assistant"
        assert reply.partial is True
        assert reply.stop_reason is None
        assert reply.metrics is None
        # The child may have committed one more flush before the kill landed.
        flushed = len(reply.content) // len("tok ")
        assert reply.content == "tok " * flushed
        assert flushed >= last_flush
