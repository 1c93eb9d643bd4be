"""No crash loop: after an unclean exit the remembered model is offered, not loaded."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from app import run_marker
from ui.startup import model_after_last_exit

MODEL = "/models/remembered.gguf"
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GLASSBOX_HOME", str(tmp_path))
    return tmp_path


def _killed_run(home: Path) -> None:
    """A process that marks itself running and dies without cleaning up (SIGKILL)."""
    code = (
        "import os, signal; from app import run_marker; "
        f"run_marker.mark_running({MODEL!r}); os.kill(os.getpid(), signal.SIGKILL)"
    )
    env = {"GLASSBOX_HOME": str(home), "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO_ROOT)
    assert proc.returncode < 0


def test_a_clean_exit_loads_the_remembered_model(home: Path) -> None:
    run_marker.mark_running(MODEL)
    run_marker.mark_clean_exit()
    assert run_marker.previous_unclean_exit() is None
    assert model_after_last_exit(argparse.Namespace(model=None), MODEL) == (MODEL, None)
    run_marker.mark_clean_exit()


def test_after_a_killed_run_the_model_is_offered_not_loaded(home: Path) -> None:
    _killed_run(home)
    unclean = run_marker.previous_unclean_exit()
    assert unclean is not None and unclean.model_path == MODEL
    assert model_after_last_exit(argparse.Namespace(model=None), MODEL) == (None, MODEL)
    # This run marked itself; closing it cleanly means the next start loads again.
    run_marker.mark_clean_exit()
    assert model_after_last_exit(argparse.Namespace(model=None), MODEL) == (MODEL, None)
    run_marker.mark_clean_exit()


def test_a_model_named_on_the_command_line_is_consent(home: Path) -> None:
    _killed_run(home)
    assert model_after_last_exit(argparse.Namespace(model=MODEL), MODEL) == (MODEL, None)
    run_marker.mark_clean_exit()


def test_a_second_window_running_now_is_not_an_unclean_exit(home: Path) -> None:
    run_marker.mark_running(MODEL)  # this process: alive
    assert run_marker.previous_unclean_exit() is None
    run_marker.mark_clean_exit()


def test_a_garbled_marker_is_ignored(home: Path) -> None:
    run_marker.marker_path().parent.mkdir(parents=True, exist_ok=True)
    run_marker.marker_path().write_bytes(b"\x00{not json")
    assert run_marker.previous_unclean_exit() is None


def test_the_window_asks_before_loading_after_an_unclean_exit(home: Path, qtbot) -> None:
    from PySide6.QtWidgets import QMessageBox

    from app.engine.fake import FakeEngine
    from app.gui_settings import GuiSettings
    from ui.startup import build_window, offer_model

    engine = FakeEngine()
    window = build_window(GuiSettings(), engine=engine)
    qtbot.addWidget(window)
    window.show()
    with qtbot.waitSignal(window.controller.conversation_opened, timeout=60_000):
        window.start(None)  # what launch passes after an unclean exit
    assert engine.model_info is None
    offer_model(window, "fake.gguf")
    box = window.findChild(QMessageBox)
    assert box is not None and box.isVisible()
    assert "did not close properly" in box.text()
    with qtbot.waitSignal(window.controller.model_ready, timeout=60_000):
        box.button(QMessageBox.StandardButton.Yes).click()
    assert engine.model_info is not None
    window.close()


def test_the_window_says_when_the_database_was_moved_aside(home: Path, qtbot) -> None:
    from PySide6.QtWidgets import QMessageBox

    from app.engine.fake import FakeEngine
    from app.gui_settings import GuiSettings
    from ui.startup import build_window

    home.mkdir(parents=True, exist_ok=True)
    (home / "glassbox.sqlite3").write_bytes(b"not a database\n" * 100)
    window = build_window(GuiSettings(), engine=FakeEngine())
    qtbot.addWidget(window)
    box = window.findChild(QMessageBox)
    assert box is not None and "was moved to glassbox.sqlite3.corrupt-" in box.text()
    window.close()
