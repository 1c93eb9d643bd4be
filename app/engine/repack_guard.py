"""Weight repacking: what to ask llama.cpp for, and what to remember after a crash.

llama.cpp can keep a second copy of the weights in a CPU-specific layout (its
"extra buffer types": AMX on Intel Xeons with AMX, CPU_REPACK for interleaved
quantized blocks) and run its own kernels on it. On some CPUs those kernels
crash the process (llama.cpp issue 20824, SIGSEGV in ggml_backend_amx_mul_mat on
the first multi-token decode). Turning the extra buffers off
(`use_extra_bufts = false`) avoids it at some cost in speed.

Mode "auto" repacks, and if the worker dies while loading, warming up or in the
first turn after a load with repacking on, the engine loads once more without
it and remembers that per CPU model, llama-cpp-python version and model file
(in the user cache directory, shared by the app, the CLI and `glassbox demo`),
so the next start does not crash first. "on" and "off" are the user's word.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.atomic_file import write_json_atomic
from app.engine.kv_log import parse_kv_report
from app.engine.log_marks import LOAD_MARK, WARM_UP_MARK
from app.machine import machine_model_key
from app.paths import cache_dir

FILE_NAME = "repack_decisions.json"


@dataclass(frozen=True)
class RepackPlan:
    """What one load asks of llama.cpp, and why."""

    use_extra_bufts: bool
    may_fall_back: bool  # "auto" with repacking on: a crash gets one reload without it
    note: str = ""  # plain words for the user; "" when there is nothing to say


class RepackMemory:
    """The stored decisions: {key: {"repack": "off", "reason": ..., "decided": ...}}.

    Safe to use from several threads; the file is rewritten atomically, so a
    second process reading it sees the old or the new decisions, never half.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or cache_dir() / FILE_NAME
        self._lock = threading.Lock()

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def decision(self, model_path: str | Path) -> dict[str, Any] | None:
        with self._lock:
            found = self._read().get(machine_model_key(model_path))
        return found if isinstance(found, dict) else None

    def remember_off(self, model_path: str | Path, reason: str) -> None:
        with self._lock:
            data = self._read()
            data[machine_model_key(model_path)] = {
                "repack": "off",
                "reason": reason,
                "decided": time.strftime("%Y-%m-%d %H:%M:%S"),
            }
            write_json_atomic(self.path, data)


def plan_for(mode: str, model_path: str | Path, memory: RepackMemory) -> RepackPlan:
    if mode == "off":
        return RepackPlan(use_extra_bufts=False, may_fall_back=False)
    if mode == "on":
        return RepackPlan(use_extra_bufts=True, may_fall_back=False)
    stored = memory.decision(model_path)
    if stored is not None and stored.get("repack") == "off":
        reason = stored.get("reason") or "it crashed on this CPU before"
        return RepackPlan(
            use_extra_bufts=False,
            may_fall_back=False,
            note=f"weight repacking off: {reason} (remembered since {stored.get('decided')})",
        )
    return RepackPlan(use_extra_bufts=True, may_fall_back=True)


def fallback_reason(extra_buffers: dict[str, float] | None, phase: str, status: str) -> str:
    """The plain-words reason for a fallback, naming llama.cpp's buffers when known.

    phase: "loading the model", "warming up" or "the first turn".
    """
    if extra_buffers:
        kernels = "/".join(sorted(extra_buffers))
        what = f"llama.cpp's {kernels} kernels crashed on this CPU"
    else:
        what = "llama.cpp crashed on this CPU with weight repacking allowed"
    # The consequence first: a status bar shows the start of a long line.
    return f"running without weight repacking: {what} ({status}, {phase})"


def crash_reason(log: list[str], while_loading: bool, status: str) -> str:
    """The fallback's reason from the worker's log: the phase it died in (the worker
    marks the start of each load and of its warm-up) and the extra buffers it made."""
    marks = [i for i, line in enumerate(log) if line.startswith(LOAD_MARK)]
    this_load = log[marks[-1] :] if marks else log
    if not while_loading:
        phase = "in the first turn after loading"
    elif any(line.startswith(WARM_UP_MARK) for line in this_load):
        phase = "warming up"
    else:
        phase = "loading the model"
    return fallback_reason(parse_kv_report(this_load).extra_mib, phase, status)
