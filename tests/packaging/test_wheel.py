"""The wheel carries both packages and the entry points; the desktop file runs the same command."""

from __future__ import annotations

import configparser
import importlib.metadata
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_has_the_packages_and_entry_points(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("glassbox_chat-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for module in (
        "app/engine/worker.py",
        "app/cli/main.py",
        "ui/launch.py",
        "ui/chrome/main_window.py",
    ):
        assert module in names
    assert not any(name.startswith("tests/") for name in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "glassbox = app.cli.main:main" in text
    assert "[glassbox.commands]" in text and "gui = ui.launch:register" in text


def test_desktop_file_runs_the_console_script():
    desktop = configparser.ConfigParser(interpolation=None)
    desktop.optionxform = str  # keys are case-sensitive
    desktop.read(ROOT / "packaging" / "linux" / "org.glassbox.Glassbox.desktop")
    entry = desktop["Desktop Entry"]
    scripts = {ep.name for ep in importlib.metadata.entry_points(group="console_scripts")}
    assert entry["Exec"].split()[0] in scripts
    assert entry["Type"] == "Application" and entry["Name"] == "Glassbox"
