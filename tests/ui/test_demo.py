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
    assert "queue ms" in result.stdout and "   2 " in result.stdout
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


def _demo_args(tmp_path, model) -> argparse.Namespace:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Say hi.\n", encoding="utf-8")
    return argparse.Namespace(
        prompts=str(prompts),
        screenshot=str(tmp_path / "shot.png"),
        size="800x600",
        max_tokens=8,
        temperature=0.7,
        seed=1,
        theme="light",
        timeout=60.0,
        tune=False,
        model=str(model),
        ctx=None,
        gpu_layers=None,
        threads=None,
    )


def test_demo_gives_back_the_environment_and_its_data_dir_when_it_fails(tmp_path, monkeypatch):
    import tempfile

    import pytest

    from app.errors import GlassboxError
    from ui import demo

    monkeypatch.setenv("GLASSBOX_HOME", str(tmp_path / "mine"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(GlassboxError):
        demo.run(_demo_args(tmp_path, tmp_path / "missing.gguf"))
    assert os.environ["GLASSBOX_HOME"] == str(tmp_path / "mine")
    assert not list(tmp_path.glob("glassbox-demo-*"))


def test_demo_closes_the_store_when_the_model_fails_to_load(qtbot, tmp_path, monkeypatch):
    import tempfile

    from app.storage.store import Store
    from ui import demo

    closed: list[Store] = []
    store_close = Store.close

    def close(self: Store) -> None:
        closed.append(self)
        store_close(self)

    monkeypatch.setattr(Store, "close", close)
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # the demo installs its own
    monkeypatch.setenv("GLASSBOX_HOME", str(tmp_path / "mine"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    # A well-formed GGUF header (it passes the check made before loading) that
    # llama.cpp cannot load: the failure comes from the engine, with the window up.
    import gguf
    import numpy as np

    broken = tmp_path / "broken.gguf"
    writer = gguf.GGUFWriter(str(broken), "llama")
    writer.add_block_count(1)
    writer.add_tensor("a.weight", np.ones((8,), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert demo.run(_demo_args(tmp_path, broken)) == 1
    qtbot.wait(50)  # the closed window's leftover events are delivered here, not in a later test
    assert closed, "the demo's store was left open"
    assert os.environ["GLASSBOX_HOME"] == str(tmp_path / "mine")
    assert not list(tmp_path.glob("glassbox-demo-*"))
