"""c. Start-up: launch to window shown, and launch to the bundled model ready.

Each run is a fresh `glassbox` process (the installed console script, offscreen,
a new empty GLASSBOX_HOME) started with GLASSBOX_STARTUP_TIMES=1: it prints
time.monotonic_ns() when its event loop first runs with the window shown and
when the model is ready, then exits. The launcher reads the same clock just
before it starts the process. "Cold" means a new process and a new data
directory; the OS file cache stays warm (dropping it needs root).

    .venv/bin/python benchmarks/bench_startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for entry in (str(REPO), str(HERE)):
    if entry not in sys.path:
        sys.path.insert(0, entry)

from benchlib import BenchConfig, Ratio, Section, median, wait_for_quiet  # noqa: E402

TITLE = "c. Start-up"
ORDER = "c"

WINDOW_TARGET_S = 1.5
MODEL_TARGET_S = 2.5
PREFIX = "glassbox-startup"  # ui.startup.STARTUP_TIMES_PREFIX, without importing Qt here


def glassbox_command() -> list[str]:
    script = Path(sys.executable).with_name("glassbox")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "app.cli.main"]


def one_launch(model: str | None, timeout_s: float = 120.0) -> dict[str, Any]:
    """One cold start; seconds from launch to each moment the app printed."""
    with tempfile.TemporaryDirectory(prefix="glassbox-startup-") as home:
        env = dict(
            os.environ,
            GLASSBOX_HOME=home,
            GLASSBOX_AUTOTUNE="0",
            GLASSBOX_STARTUP_TIMES="1",
            QT_QPA_PLATFORM="offscreen",
        )
        command = glassbox_command() + (["--model", model] if model else [])
        started_ns = time.monotonic_ns()
        proc = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=str(REPO),
        )
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            raise RuntimeError(f"glassbox did not exit within {timeout_s:.0f} s") from None
        moments: dict[str, Any] = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == PREFIX:
                if parts[1].endswith("_ms"):
                    moments[parts[1]] = float(parts[2])
                else:
                    moments[f"{parts[1]}_s"] = (int(parts[2]) - started_ns) / 1e9
        if proc.returncode != 0 or "model_ready_s" not in moments:
            tail = (err or out).strip().splitlines()[-3:]
            raise RuntimeError(f"glassbox exited {proc.returncode}: {' / '.join(tail)}")
        return moments


def run(config: BenchConfig) -> Section:
    runs = int(config.extra.get("startup_runs") or (2 if config.quick else 5))
    section = Section(TITLE)
    launches = []
    for number in range(1, runs + 1):
        load = wait_for_quiet(limit_s=60, step_s=10)
        moments = one_launch(config.model)
        launches.append(moments)
        section.rows.append(
            {
                "run": number,
                "window shown (s)": round(moments["window_shown_s"], 3),
                "model ready (s)": round(moments["model_ready_s"], 3),
                "of which worker load + warm-up (s)": round(
                    moments.get("worker_load_ms", 0) / 1000, 3
                ),
                "load avg": round(load, 2),
            }
        )
        print(f"start-up run {number}/{runs}: {moments}, load {load:.2f}", flush=True)
    window = median([m["window_shown_s"] for m in launches])
    ready = median([m["model_ready_s"] for m in launches])
    section.rows.append(
        {
            "run": "median",
            "window shown (s)": round(window, 3) if window is not None else None,
            "model ready (s)": round(ready, 3) if ready is not None else None,
            "of which worker load + warm-up (s)": median(
                [m.get("worker_load_ms", 0) / 1000 for m in launches]
            ),
        }
    )
    section.ratios = [
        Ratio("launch to window shown", window, "<=", WINDOW_TARGET_S, unit="s"),
        Ratio("launch to bundled model ready", ready, "<=", MODEL_TARGET_S, unit="s"),
    ]
    section.notes.append(
        f"{runs} runs of the installed `glassbox` command, each a new process with a new, empty "
        "GLASSBOX_HOME (so the database is created and migrated), offscreen; the OS file cache "
        "is warm. Window shown: the first frame painted (the window's first UpdateRequest done). Model ready: the "
        "engine's loaded event reached the window (worker process spawned, GGUF checked, model "
        "loaded, warm-up decode done)."
    )
    section.raw = {"launches": launches}
    return section


def main() -> None:
    from app.paths import bundled_model_path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--model", default=str(bundled_model_path()))
    args = parser.parse_args()
    section = run(BenchConfig(model=args.model, threads=0, extra={"startup_runs": args.runs}))
    for row in section.rows:
        print(row)
    for ratio in section.ratios:
        print(ratio.to_dict())


if __name__ == "__main__":
    main()
