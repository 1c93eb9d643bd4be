"""Hooks into llama.cpp for the worker process: its log, its load progress, fd 1 and 2.

Imported only by app.engine.worker (in the child process). The llama_cpp
module is passed in rather than imported, so nothing here loads llama.cpp.
"""

from __future__ import annotations

import collections
import os
import sys
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as EventType
from typing import Any

from app.engine import events as ev

# A load logs about 2,000 lines at debug level; the KV report sits in the middle.
LOG_RING_LINES = 8000
log_ring: collections.deque[str] = collections.deque(maxlen=LOG_RING_LINES)
_partial_line: list[str] = []


def on_llama_log(level: int, text: bytes, user_data: Any) -> None:
    """llama.cpp log callback: keep recent lines for parsing and tee them to stderr."""
    chunk = text.decode("utf-8", errors="replace")
    try:
        os.write(2, text)
    except OSError:
        pass
    _partial_line.append(chunk)
    if chunk.endswith("\n"):
        log_ring.extend("".join(_partial_line).splitlines())
        _partial_line.clear()


PROGRESS_STEP = 0.05


class ModelParamsHook:
    """Sets what Llama() does not expose on llama.cpp's model parameters.

    Llama() builds its model parameters from llama_model_default_params() and
    offers neither a progress hook nor `use_extra_bufts`, so in this process
    (and only here) that function is wrapped. It sets:
    - progress_callback: load progress to the parent, and cancel aborts a load;
    - use_extra_bufts: whether llama.cpp may repack weights into its extra
      buffer types (AMX, CPU_REPACK, ...), whose kernels crash on some CPUs.
    """

    def __init__(self, llama_cpp: Any, conn: Connection, cancel: EventType) -> None:
        self._conn, self._cancel, self._last = conn, cancel, -1.0
        self.use_extra_bufts = True
        self._callback = llama_cpp.llama_progress_callback(self._on_progress)
        params_type = llama_cpp.llama_cpp.llama_model_params
        self.supports_extra_bufts = "use_extra_bufts" in {f[0] for f in params_type._fields_}
        original = llama_cpp.llama_cpp.llama_model_default_params

        def params_with_hooks() -> Any:
            params = original()
            params.progress_callback = self._callback
            if self.supports_extra_bufts:
                params.use_extra_bufts = self.use_extra_bufts
            return params

        llama_cpp.llama_cpp.llama_model_default_params = params_with_hooks

    def reset(self, use_extra_bufts: bool) -> None:
        self._last = -1.0
        self.use_extra_bufts = use_extra_bufts

    def _on_progress(self, fraction: float, user_data: Any) -> bool:
        if fraction >= 1.0 or fraction - self._last >= PROGRESS_STEP:
            self._last = fraction
            self._conn.send(ev.ModelLoadProgress(fraction=min(1.0, fraction)))
        return not self._cancel.is_set()  # False makes llama.cpp abort the load


def redirect_output(log_path: str) -> None:
    """Send fd 1 and 2 to the log file: llama.cpp and llama-cpp-python print there,
    and the parent's stdout (a piped `glassbox chat`) must carry only the reply."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
