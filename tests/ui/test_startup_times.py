"""GLASSBOX_STARTUP_TIMES: the hook benchmarks/bench_startup.py reads, in a real `glassbox` process."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from ui.startup import STARTUP_TIMES_ENV, STARTUP_TIMES_PREFIX


def test_glassbox_prints_window_shown_then_model_ready_and_exits(glassbox_home):
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "GLASSBOX_AUTOTUNE": "0",
        STARTUP_TIMES_ENV: "1",
    }
    launched = time.monotonic_ns()
    result = subprocess.run(
        [sys.executable, "-m", "app.cli.main"],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    moments = {}
    for line in result.stdout.splitlines():
        prefix, _, rest = line.partition(" ")
        if prefix == STARTUP_TIMES_PREFIX:
            name, value = rest.split()
            moments[name] = float(value)
    assert list(moments) == ["window_shown", "model_ready", "worker_load_ms"]
    assert moments["worker_load_ms"] > 0
    # The child reads the same monotonic clock as this process.
    assert launched < moments["window_shown"] < moments["model_ready"] < time.monotonic_ns()
    assert (glassbox_home / "glassbox.sqlite3").exists()  # it ran in the isolated home
