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
