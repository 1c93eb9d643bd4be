"""Fixtures for the GUI tests: headless Qt, a temporary GLASSBOX_HOME, a real window on the bundled model."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before pytest-qt creates the QApplication

from app.engine.base import Engine
from app.paths import bundled_model_path
from app.settings import SamplingSettings


@pytest.fixture
def glassbox_home(tmp_path, monkeypatch):
    monkeypatch.setenv("GLASSBOX_HOME", str(tmp_path))
    return tmp_path


@pytest.fixture
def model_path() -> str:
    path = bundled_model_path()
    if path is None:
        pytest.fail("the bundled model is not installed (make run installs it)")
    return str(path)


def open_window(
    qtbot,
    model: str,
    sampling: SamplingSettings,
    engine: Engine | None = None,
    n_threads: int | None = None,
    timeout_ms: int = 60_000,
):
    """A MainWindow built as the app builds it, shown, with `model` loaded and a fresh
    conversation open. engine: a FakeEngine for tests of the window's own logic."""
    from app.gui_settings import GuiSettings
    from app.settings import RuntimeSettings
    from ui.startup import build_window

    settings = (
        GuiSettings()
        if n_threads is None
        else GuiSettings(runtime=RuntimeSettings(n_threads=n_threads))
    )
    settings.sampling = sampling
    win = build_window(settings, engine=engine)
    qtbot.addWidget(win)
    win.show()
    with qtbot.waitSignals(
        [win.controller.model_ready, win.controller.conversation_opened], timeout=timeout_ms
    ):
        win.start(model)
    return win


@pytest.fixture
def window(qtbot, glassbox_home, model_path) -> Iterator:
    """The real MainWindow on the bundled model, loaded and showing a fresh conversation."""
    win = open_window(qtbot, model_path, SamplingSettings(temperature=0.0, seed=1, max_tokens=24))
    yield win
    win.close()


class Heartbeat:
    """A fast QTimer; max_gap_ms is the longest the event loop went without running it."""

    def __init__(self, interval_ms: int = 5) -> None:
        from PySide6.QtCore import QTimer

        self.interval_ms = interval_ms
        self.max_gap_ms = 0.0
        self.beats = 0
        self._last: float | None = None
        self._timer = QTimer()
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._on_timer_timeout)

    def _on_timer_timeout(self) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.max_gap_ms = max(self.max_gap_ms, (now - self._last) * 1000)
        self._last = now
        self.beats += 1

    def __enter__(self) -> Heartbeat:
        self._last = None
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.stop()


@pytest.fixture
def heartbeat() -> Heartbeat:
    return Heartbeat()
