"""`glassbox demo` end to end in a real subprocess, and the no-display message of the GUI command."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from PySide6.QtGui import QImage


def test_demo_writes_a_non_blank_png_of_the_requested_size(tmp_path, glassbox_home):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Say hi.\nName a colour.\n", encoding="utf-8")
    out = tmp_path / "shot.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "app.cli.main",
            "demo",
            "--prompts",
            str(prompts),
            "--screenshot",
            str(out),
            "--size",
            "1100x700",
            "--max-tokens",
            "16",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "queue_ms" in result.stdout and "   2 " in result.stdout
    image = QImage(str(out))
    assert (image.width(), image.height()) == (1100, 700)
    colours = {image.pixel(x, y) for x in range(0, 1100, 37) for y in range(0, 700, 23)}
    assert len(colours) > 8  # not a blank or single-colour grab


def test_gui_without_display_says_so_in_one_line(monkeypatch, capsys):
    from ui.launch import run_gui

    monkeypatch.setattr(sys, "platform", "linux")
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    assert run_gui(argparse.Namespace(model=None, ctx=None, gpu_layers=None, threads=None)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "glassbox demo --prompts" in err
