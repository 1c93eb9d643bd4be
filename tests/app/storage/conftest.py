"""Fixtures for the storage tests: a real SQLite file under tmp_path."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.storage import Store

REPO_ROOT = Path(__file__).resolve().parents[3]
WRITER_CHILD = Path(__file__).with_name("storage_writer_child.py")

WriterChildFactory = Callable[[Path, str], "subprocess.Popen[str]"]


@pytest.fixture
def glassbox_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("GLASSBOX_HOME", str(home))
    return home


@pytest.fixture
def store(glassbox_home: Path) -> Iterator[Store]:
    opened = Store.open()
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def writer_child() -> Iterator[WriterChildFactory]:
    """Starts storage_writer_child.py processes; kills any still running at teardown."""
    started: list[subprocess.Popen[str]] = []

    def start(db_path: Path, mode: str) -> subprocess.Popen[str]:
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), PYTHONUNBUFFERED="1")
        proc = subprocess.Popen(
            [sys.executable, str(WRITER_CHILD), str(db_path), mode],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=str(REPO_ROOT),
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
