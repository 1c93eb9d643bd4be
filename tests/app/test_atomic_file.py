"""Atomic JSON writes: whole file or the old one, never half; concurrent writers both land."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from app.atomic_file import write_json_atomic, write_text_atomic


def test_writes_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "er" / "settings.json"
    write_json_atomic(target, {"a": 1})
    write_json_atomic(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert [p.name for p in target.parent.iterdir()] == ["settings.json"]


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "settings.json"
    write_json_atomic(target, {"a": 1})
    with pytest.raises(TypeError):
        write_json_atomic(target, {"a": object()})  # not JSON: fails before any file
    with pytest.raises(UnicodeEncodeError):
        write_text_atomic(target, "half \ud800")  # fails while the temporary file is open
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["settings.json"]


def test_concurrent_writers_never_collide(tmp_path: Path) -> None:
    target = tmp_path / "shared.json"
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            start.wait()
            for j in range(20):
                write_json_atomic(target, {"writer": i, "n": j, "pad": "x" * 4096})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert json.loads(target.read_text())["n"] == 19
    assert [p.name for p in tmp_path.iterdir()] == ["shared.json"]
