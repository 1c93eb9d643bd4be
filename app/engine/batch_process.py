"""The batched worker process's entry point: load the model with N sequences, then run
app.engine.batch_worker's BatchRunner until told to close.

Runs only in the child process (it loads llama.cpp); the parent is app.engine.batched.
"""

from __future__ import annotations

import ctypes
import signal
import traceback
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as EventType
from typing import Any

from app.engine import events as ev
from app.engine.batch_worker import BatchRunner
from app.engine.llama_hooks import ModelParamsHook, on_llama_log, redirect_output
from app.engine.worker import Loaded
from app.settings import RuntimeSettings


def _context_params_hook(llama_cpp: Any, n_parallel: int) -> None:
    """Llama() offers no n_seq_max: its context defaults are wrapped, in this process only.
    A unified KV buffer lets the slots share n_ctx cells however their lengths fall."""
    original = llama_cpp.llama_cpp.llama_context_default_params

    def params_for_slots() -> Any:
        params = original()
        params.n_seq_max = n_parallel
        params.kv_unified = True
        return params

    llama_cpp.llama_cpp.llama_context_default_params = params_for_slots


def batch_main(conn: Connection, cancel: EventType, log_path: str) -> None:
    """Child entry point: ("load", payload), then ("chat"|"cancel"|"close", ...)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    redirect_output(log_path)
    from app.engine.worker import llama_cpp_module  # noqa: PLC0415 - a worker-side import

    llama_cpp = llama_cpp_module()

    callback = llama_cpp.llama_log_callback(on_llama_log)
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
    hook = ModelParamsHook(llama_cpp, conn, cancel)
    try:
        command, payload = conn.recv()
    except (EOFError, OSError):
        return
    if command != "load":
        return
    n_parallel = int(payload["n_parallel"])
    _context_params_hook(llama_cpp, n_parallel)
    hook.reset(bool(payload.get("use_extra_bufts", False)) and hook.supports_extra_bufts)
    settings = RuntimeSettings.from_dict(payload["settings"])
    try:
        loaded = Loaded(payload["path"], settings, hook.use_extra_bufts)
    except ValueError as exc:
        message = f"llama.cpp could not load the model: {exc}"
        conn.send(ev.EngineError(message=message, load_id=payload.get("load_id")))
        return
    event = loaded.loaded_event()
    event.load_id = payload.get("load_id", 1)
    event.settings = {**event.settings, "n_parallel": n_parallel}
    conn.send(event)
    runner = BatchRunner(loaded, n_parallel, conn, bool(payload.get("prompt_cache", True)))
    try:
        while not runner.closed:
            if not runner.busy():
                runner.handle(*conn.recv())  # idle: wait for work
            while conn.poll():
                runner.handle(*conn.recv())
            if not runner.closed:
                runner.step()
    except (EOFError, OSError, BrokenPipeError):
        return
    except Exception:
        traceback.print_exc()
        raise
    finally:
        runner.close()
