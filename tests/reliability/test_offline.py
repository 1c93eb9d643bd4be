"""Offline: with every socket refused (in this process and, through sitecustomize, in every
child Python it starts), the app lists and loads the models it has and answers; the window
starts on its model."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli.main import main as glassbox_main
from app.models.library import ModelLibrary

REPO_ROOT = Path(__file__).resolve().parents[2]
BLOCK_MESSAGE = "network blocked by the offline test"

SITECUSTOMIZE = f"""
import socket

class _Blocked(socket.socket):
    def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
        if family in (socket.AF_INET, socket.AF_INET6, -1) and fileno is None:
            raise OSError({BLOCK_MESSAGE!r})
        super().__init__(family, type, proto, fileno)

def _refuse(*args, **kwargs):
    raise OSError({BLOCK_MESSAGE!r})

socket.socket = _Blocked
socket.create_connection = _refuse
socket.getaddrinfo = _refuse
"""


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Sockets refused here and in child Pythons; the Hub's own offline switch off, so a
    code path that reaches for the network meets the block instead of a polite flag."""
    site = tmp_path / "offline-site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    pythonpath = os.pathsep.join([str(site), str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])
    monkeypatch.setenv("PYTHONPATH", pythonpath)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("GLASSBOX_HOME", str(tmp_path / "home"))

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(BLOCK_MESSAGE)

    class Blocked(socket.socket):
        def __init__(self, family: int = -1, type: int = -1, proto: int = -1, fileno=None):  # noqa: A002 - socket's signature
            if family in (socket.AF_INET, socket.AF_INET6, -1) and fileno is None:
                raise OSError(BLOCK_MESSAGE)
            super().__init__(family, type, proto, fileno)

    monkeypatch.setattr(socket, "socket", Blocked)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return site


def test_the_block_works(offline: Path) -> None:
    with pytest.raises(OSError, match="blocked"):
        socket.create_connection(("127.0.0.1", 9))
    code = "import socket; socket.socket(socket.AF_INET)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert BLOCK_MESSAGE in proc.stderr


def test_models_are_listed_offline(
    offline: Path, bundled_model: Path, capsys: pytest.CaptureFixture
) -> None:
    listed = [Path(entry.path).name for entry in ModelLibrary().scan()]
    assert bundled_model.name in listed
    assert glassbox_main(["models"]) == 0
    assert bundled_model.name in capsys.readouterr().out


def test_glassbox_chat_loads_and_answers_offline(offline: Path, bundled_model: Path) -> None:
    # The CLI and its worker are child Pythons: sitecustomize blocks their sockets.
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "app.cli.main",
            "chat",
            "--ctx",
            "256",
            "--max-tokens",
            "8",
            "--threads",
            "1",
        ],
        input="Say hi.",
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()
    assert BLOCK_MESSAGE not in proc.stderr


def test_the_window_starts_on_its_model_offline(offline: Path, bundled_model: Path, qtbot) -> None:
    from app.gui_settings import GuiSettings
    from ui.startup import build_window

    settings = GuiSettings()
    settings.runtime = settings.runtime.with_changes(n_ctx=256, n_threads=1, repack="off")
    window = build_window(settings)
    qtbot.addWidget(window)
    window.show()
    with qtbot.waitSignals([window.controller.model_ready], timeout=120_000):
        window.start(str(bundled_model))
    assert window.engine.model_info is not None
    window.close()
