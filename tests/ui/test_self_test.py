"""`glassbox --self-test`: the real app in a child process, offscreen, on the bundled model."""

from __future__ import annotations

import os
import subprocess
import sys


def test_self_test_answers_one_prompt_and_exits_0(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.pop("QT_QPA_PLATFORM", None)  # the self-test goes offscreen by itself
    env["GLASSBOX_HOME"] = str(tmp_path / "home")
    result = subprocess.run(
        [sys.executable, "-m", "app.cli.main", "--self-test"],
        capture_output=True,
        text=True,
        env=env,
        timeout=280,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("glassbox self-test passed: model ")
    assert "answered with" in result.stdout
    # It ran in a scratch home: nothing was written to the user's.
    assert not (tmp_path / "home" / "glassbox.sqlite3").exists()
