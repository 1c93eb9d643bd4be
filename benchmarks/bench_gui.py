"""b. GUI: event-loop stalls while streaming, plot redraw rate, GUI CPU time per token.

The real window (offscreen, 1400x860, internals panel visible) on the bundled
model streams a reply at full speed while a 5 ms QTimer heartbeat records
every gap between its ticks: a gap is how long the event loop could not run
anything (p50 about 5 ms when idle). Per turn it also records the panel's
redraw count and the CPU time of the whole GUI process (every thread; the
engine's worker is a separate process and not counted) and of the GUI thread
alone, divided by the tokens generated. It runs in a child process of its own,
so the report's process never creates a QApplication.

    .venv/bin/python benchmarks/bench_gui.py [--rounds 5] [--max-tokens 256]

The Heartbeat and the event-loop helpers here are shared with bench_scale.py.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for entry in (str(REPO), str(HERE)):
    if entry not in sys.path:
        sys.path.insert(0, entry)

from benchlib import BenchConfig, Ratio, Section, load_average, median, wait_for_quiet  # noqa: E402

TITLE = "b. GUI while streaming"
ORDER = "b"

STALL_P99_TARGET_MS = 16.0
STALL_MAX_TARGET_MS = 50.0
HEARTBEAT_MS = 5
PROMPTS = (
    "Write a long story about a lighthouse keeper and a storm. Use many details.",
    "Now tell the same story from the point of view of the storm.",
    "Describe the lighthouse itself, room by room.",
    "Write a long letter the keeper sends to his sister.",
    "Explain how a lighthouse lens works, step by step.",
)
RESULT_PREFIX = "bench-child-result "


# ---- shared with bench_scale --------------------------------------------------------


class Heartbeat:
    """A fast QTimer that keeps every gap between its ticks (ms), and the CPU time the GUI
    thread itself spent within each gap: a long gap with little CPU was the thread waiting
    (preempted by other programs, or for the GIL), one with as much CPU was our own work."""

    def __init__(self, interval_ms: int = HEARTBEAT_MS) -> None:
        from PySide6.QtCore import Qt, QTimer

        self.gaps_ms: list[float] = []
        self.cpu_ms: list[float] = []
        self._last: float | None = None
        self._last_cpu = 0.0
        self._timer = QTimer()
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._on_timer_timeout)

    def _on_timer_timeout(self) -> None:
        now, cpu = time.perf_counter(), time.thread_time()
        if self._last is not None:
            self.gaps_ms.append((now - self._last) * 1000)
            self.cpu_ms.append((cpu - self._last_cpu) * 1000)
        self._last, self._last_cpu = now, cpu

    def __enter__(self) -> Heartbeat:
        self._last = None
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.stop()


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def gap_summary(gaps: list[float]) -> dict[str, float | None]:
    return {
        "p50_ms": percentile(gaps, 50),
        "p99_ms": percentile(gaps, 99),
        "max_ms": max(gaps) if gaps else None,
        "beats": len(gaps),
    }


def spin(ms: int) -> None:
    """Run the event loop for `ms` milliseconds."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def wait_signal(
    signal: Any, start: Callable[[], object] | None = None, timeout_ms: int = 120_000
) -> list[Any]:
    """Connect, call `start`, run the event loop until `signal` fires; its arguments."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    got: list[Any] = []

    def on_signal(*args: Any) -> None:
        if not got:
            got.append(args)
        loop.quit()

    signal.connect(on_signal)
    timer = QTimer()
    timer.setSingleShot(True)
    timer.timeout.connect(loop.quit)
    timer.start(timeout_ms)
    try:
        if start is not None:
            start()
        if not got:
            loop.exec()
    finally:
        timer.stop()
        signal.disconnect(on_signal)
    if not got:
        raise TimeoutError(f"no signal within {timeout_ms / 1000:.0f} s")
    return list(got[0])


def rss_mib() -> float:
    """Resident memory of this process now (peak where /proc is missing)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def run_child(
    script: Path, args: list[str], home: str, timeout_s: float = 3600.0
) -> dict[str, Any]:
    """Run `script --child ...` with its own GLASSBOX_HOME, offscreen; its JSON result."""
    env = dict(
        os.environ,
        GLASSBOX_HOME=home,
        GLASSBOX_AUTOTUNE="0",
        QT_QPA_PLATFORM="offscreen",
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p),
    )
    proc = subprocess.run(
        [sys.executable, str(script), "--child", *args],
        env=env,
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return dict(json.loads(line[len(RESULT_PREFIX) :]))
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
    raise RuntimeError(f"{script.name} child exited {proc.returncode}: {' / '.join(tail)}")


def open_window(
    model: str | None, n_ctx: int, max_tokens: int, temperature: float, seed: int
) -> Any:
    """The real MainWindow as `glassbox` builds it, shown offscreen; loaded when `model`."""
    from app.gui_settings import GuiSettings
    from app.settings import SamplingSettings, gui_runtime_defaults
    from ui.startup import build_window, create_application

    create_application("light")
    settings = GuiSettings(theme="light")
    settings.runtime = gui_runtime_defaults().with_changes(n_ctx=n_ctx)
    settings.sampling = SamplingSettings(temperature=temperature, seed=seed, max_tokens=max_tokens)
    window = build_window(settings)
    window.resize(1400, 860)
    window.show()
    controller = window.controller
    if model is None:
        wait_signal(controller.conversation_opened, lambda: window.start(None))
    else:
        opened: list[int] = []
        controller.conversation_opened.connect(opened.append)
        wait_signal(controller.model_ready, lambda: window.start(model))
        if not opened:
            wait_signal(controller.conversation_opened)
    spin(500)
    return window


# ---- section b ------------------------------------------------------------------------


def child_main(args: argparse.Namespace) -> dict[str, Any]:
    window = open_window(args.model, args.ctx, args.max_tokens, args.temperature, args.seed)
    controller, panel = window.controller, window.panel
    info = window.engine.model_info
    turns = []
    starts: list[float] = []
    window.bridge.turn_started.connect(lambda *_a: starts.append(time.perf_counter()))
    try:
        if not panel.drawable():
            raise RuntimeError("the internals panel is not visible")
        for round_no in range(args.rounds):
            # Other programs' threads preempt both the decode threads and the GUI thread:
            # wait (a while) for a quiet machine; the load is recorded either way.
            wait_for_quiet(limit_s=90, step_s=10, log=lambda m: print(m, file=sys.stderr))
            prompt = PROMPTS[round_no % len(PROMPTS)]
            redraws_before = getattr(panel, "redraw_count", None)
            starts.clear()
            cpu_before, thread_before = time.process_time(), time.thread_time()
            wall_before = time.perf_counter()
            with Heartbeat() as beat:
                # A turn that takes 2 s on a quiet machine can take minutes while other
                # programs' llama.cpp threads share the cores.
                (event,) = wait_signal(
                    controller.reply_finished,
                    lambda p=prompt: controller.send(p),
                    timeout_ms=600_000,
                )
                streamed_until = time.perf_counter()
                cpu, thread_cpu = (
                    time.process_time() - cpu_before,
                    time.thread_time() - thread_before,
                )
                redraws_after = getattr(panel, "redraw_count", None)
                spin(500)  # the end-of-turn redraw of every plot belongs to streaming too
            metrics = event.metrics
            tokens = metrics.output_tokens or 0
            stream_s = streamed_until - (starts[0] if starts else wall_before)
            redraws = (
                redraws_after - redraws_before
                if redraws_before is not None and redraws_after is not None
                else None
            )
            turns.append(
                {
                    "tokens": tokens,
                    "decode_tok_s": metrics.decode_tok_s,
                    "stop_reason": metrics.stop_reason,
                    "gaps_ms": beat.gaps_ms,
                    "cpu_in_gaps_ms": beat.cpu_ms,
                    "redraw_hz": redraws / stream_s
                    if redraws is not None and stream_s > 0
                    else None,
                    "cpu_ms_per_token": cpu * 1000 / tokens if tokens else None,
                    "gui_thread_ms_per_token": thread_cpu * 1000 / tokens if tokens else None,
                    "cpu_share_of_core": cpu / (streamed_until - wall_before),
                    "load": load_average(),
                }
            )
            print(
                f"gui turn {round_no + 1}/{args.rounds}: {tokens} tokens",
                file=sys.stderr,
                flush=True,
            )
    finally:
        window.close()
    return {
        "turns": turns,
        "n_threads": getattr(info, "n_threads", None),
        "n_ctx": getattr(info, "n_ctx", None),
    }


def cpu_in_longest(turn: dict[str, Any]) -> float | None:
    gaps, cpu = turn["gaps_ms"], turn["cpu_in_gaps_ms"]
    if not gaps:
        return None
    return float(cpu[max(range(len(gaps)), key=gaps.__getitem__)])


def stall_why(turns: list[dict[str, Any]]) -> str:
    """Whether the long gaps were the GUI thread's own work or waiting for a core."""
    own = max((max(t["cpu_in_gaps_ms"], default=0.0) for t in turns), default=0.0)
    longest = max(turns, key=lambda t: max(t["gaps_ms"], default=0.0), default=None)
    if longest is None or not longest["gaps_ms"]:
        return ""
    gap, cpu = max(longest["gaps_ms"]), cpu_in_longest(longest) or 0.0
    loads = ", ".join(f"{t['load']:.1f}" for t in turns)
    if cpu < gap / 2:
        return (
            f"the longest gap ({gap:.0f} ms) held {cpu:.1f} ms of GUI-thread CPU: the thread "
            f"was waiting (for a core: load averages {loads} on 2 cores; or for the GIL), not "
            f"working; its longest own work within one gap was {own:.1f} ms"
        )
    return (
        f"the longest gap ({gap:.0f} ms) was {cpu:.0f} ms of GUI-thread work (load averages "
        f"{loads}); profile the slots that run while streaming"
    )


def run(config: BenchConfig) -> Section:
    section = Section(TITLE)
    rounds = 2 if config.quick else config.rounds
    with tempfile.TemporaryDirectory(prefix="glassbox-bench-gui-") as home:
        result = run_child(
            Path(__file__),
            [
                "--model", config.model,
                "--rounds", str(rounds),
                "--max-tokens", str(config.max_tokens),
                "--temperature", str(config.temperature),
                "--seed", str(config.seed),
                "--ctx", str(config.n_ctx),
            ],
            home,
        )  # fmt: skip
    all_gaps: list[float] = []
    for number, turn in enumerate(result["turns"], 1):
        gaps = gap_summary(turn["gaps_ms"])
        all_gaps += turn["gaps_ms"]
        section.rows.append(
            {
                "turn": number,
                "tokens": turn["tokens"],
                "decode tok/s": turn["decode_tok_s"],
                "gap p50 (ms)": gaps["p50_ms"],
                "gap p99 (ms)": gaps["p99_ms"],
                "gap max (ms)": gaps["max_ms"],
                "GUI-thread CPU in the longest gap (ms)": cpu_in_longest(turn),
                "longest GUI-thread CPU in one gap (ms)": max(turn["cpu_in_gaps_ms"], default=None),
                "redraws/s": turn["redraw_hz"],
                "GUI process CPU ms/token": turn["cpu_ms_per_token"],
                "GUI thread CPU ms/token": turn["gui_thread_ms_per_token"],
                "GUI CPU (share of a core)": turn["cpu_share_of_core"],
                "load avg": round(turn["load"], 2),
            }
        )
    pooled = gap_summary(all_gaps)
    turns = result["turns"]
    section.rows.append(
        {
            "turn": "all",
            "tokens": sum(t["tokens"] for t in turns),
            "decode tok/s": median([t["decode_tok_s"] for t in turns]),
            "gap p50 (ms)": pooled["p50_ms"],
            "gap p99 (ms)": pooled["p99_ms"],
            "gap max (ms)": pooled["max_ms"],
            "GUI-thread CPU in the longest gap (ms)": max(
                (cpu_in_longest(t) or 0.0 for t in turns), default=None
            ),
            "longest GUI-thread CPU in one gap (ms)": max(
                (max(t["cpu_in_gaps_ms"], default=0.0) for t in turns), default=None
            ),
            "redraws/s": median([t["redraw_hz"] for t in turns]),
            "GUI process CPU ms/token": median([t["cpu_ms_per_token"] for t in turns]),
            "GUI thread CPU ms/token": median([t["gui_thread_ms_per_token"] for t in turns]),
            "GUI CPU (share of a core)": median([t["cpu_share_of_core"] for t in turns]),
        }
    )
    section.ratios = [
        Ratio(
            "event-loop gap p99 while streaming",
            pooled["p99_ms"],
            "<=",
            STALL_P99_TARGET_MS,
            unit="ms",
        ),
        Ratio(
            "event-loop gap max while streaming",
            pooled["max_ms"],
            "<=",
            STALL_MAX_TARGET_MS,
            unit="ms",
        ),
    ]
    why = stall_why(turns)
    for ratio in section.ratios:
        if ratio.met is False:
            ratio.why = why
    section.notes.append(
        f"{len(turns)} turns of one conversation in the real window (offscreen, 1400x860, "
        f"internals panel visible), up to {config.max_tokens} tokens each at temperature "
        f"{config.temperature}, decode threads {result.get('n_threads')}, n_ctx {result.get('n_ctx')}. "
        f"Gaps: time between ticks of a {HEARTBEAT_MS} ms QTimer from send until 0.5 s after "
        "the reply finished, pooled over all turns (row 'all'); beside them the GUI thread's "
        "own CPU time within the longest gap, and the most it used within any one gap: a long "
        "gap with little CPU is the thread waiting (other programs on the cores, or the GIL), "
        "not its work. Redraws/s: panel redraws "
        "during streaming. CPU: time.process_time() of the GUI process (all its threads) and "
        "time.thread_time() of the GUI thread, send to reply finished, per output token."
    )
    section.raw = {
        "turns": [
            {k: v for k, v in t.items() if k not in ("gaps_ms", "cpu_in_gaps_ms")} for t in turns
        ]
    }
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", default=None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--ctx", type=int, default=4096)
    args = parser.parse_args()
    if args.model is None:
        from app.paths import bundled_model_path

        args.model = str(bundled_model_path())
    if args.child:
        print(RESULT_PREFIX + json.dumps(child_main(args)), flush=True)
        return
    config = BenchConfig(
        model=args.model,
        threads=0,
        rounds=args.rounds,
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        seed=args.seed,
        n_ctx=args.ctx,
    )
    section = run(config)
    for row in section.rows:
        print(row)
    for ratio in section.ratios:
        print(ratio.to_dict())
    for note in section.notes:
        print(note)


if __name__ == "__main__":
    main()
