"""The worker process itself: start it, send to it, stop it, read its log.

Plain Python, no llama_cpp import. LocalEngine decides what runs when; this
module only knows how to run a worker. One process per WorkerProcess: after
it dies, a new WorkerProcess is made, so state never leaks from one to the next.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection, wait
from multiprocessing.context import SpawnContext
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

from app.paths import logs_dir

CLOSE_GRACE_S = 3.0

LOG_TAIL_BYTES = 64_000


@contextlib.contextmanager
def _main_module_hidden() -> Iterator[None]:
    """Keep spawn from re-running the caller's __main__ in the worker.

    spawn re-imports the parent's main module in the child so pickled objects
    from it resolve. The worker needs nothing from it, and re-running it fails
    for `python -` (no file) and starts a script without a __main__ guard all
    over again. spawn records the main module while start() runs, so hiding
    its file and spec for that moment is enough.
    """
    main = sys.modules.get("__main__")
    namespace: dict[str, Any] = main.__dict__ if main is not None else {}
    saved: dict[str, Any] = {
        name: namespace[name] for name in ("__file__", "__spec__") if name in namespace
    }
    namespace.pop("__file__", None)
    namespace["__spec__"] = None  # spawn reads the attribute itself, so it must exist
    try:
        yield
    finally:
        namespace.pop("__spec__", None)
        namespace.update(saved)


def new_log_path() -> Path:
    fd, name = tempfile.mkstemp(prefix="worker-", suffix=".log", dir=logs_dir())
    os.close(fd)  # the worker opens it itself; ours would only leak
    return Path(name)


def read_log_tail(path: Path, max_bytes: int = LOG_TAIL_BYTES) -> list[str]:
    """The last non-empty lines of a worker log (llama.cpp's output and any traceback)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - max_bytes))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()]


class WorkerProcess:
    """One spawned worker: a duplex pipe, a reader thread and a send lock.

    Every send goes through the lock: the pipe is written from the caller's
    thread and from background threads, and a message over one pipe buffer is
    written in several pieces that must not interleave with another message.
    """

    def __init__(
        self,
        ctx: SpawnContext,
        cancel: EventType,
        log_path: Path,
        on_message: Callable[[WorkerProcess, Any], None],
        on_exit: Callable[[WorkerProcess], None],
    ) -> None:
        from app.engine.worker import worker_main  # noqa: PLC0415 - runs in the child only

        parent_conn, child_conn = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(
            target=worker_main,
            args=(child_conn, cancel, str(log_path)),
            name="glassbox-worker",
            daemon=True,
        )
        with _main_module_hidden():
            self.proc.start()
        # Our copy of the child's end must go, or EOF never arrives when it dies.
        child_conn.close()
        self.conn: Connection = parent_conn
        self._send_lock = threading.Lock()
        self._on_message, self._on_exit = on_message, on_exit
        self.reader = threading.Thread(target=self._read_loop, daemon=True, name="glassbox-reader")
        self.reader.start()

    @property
    def pid(self) -> int | None:
        return self.proc.pid

    def is_alive(self) -> bool:
        return bool(self.proc.is_alive())

    @property
    def exitcode(self) -> int | None:
        return self.proc.exitcode

    def send(self, message: Any) -> None:
        """Raises OSError when the worker is gone (the reader reports the exit)."""
        with self._send_lock:
            self.conn.send(message)

    def stop(self) -> None:
        """Ask the worker to close, then make sure it is gone."""
        with contextlib.suppress(OSError, ValueError):
            self.send(("close", None))
        self.proc.join(CLOSE_GRACE_S)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(CLOSE_GRACE_S)
        if threading.current_thread() is not self.reader:
            self.reader.join(CLOSE_GRACE_S)
        self.conn.close()
        self.proc.close()

    def _read_loop(self) -> None:
        conn, sentinel = self.conn, self.proc.sentinel
        while True:
            try:
                ready = wait([conn, sentinel])
                if conn not in ready:
                    raise EOFError
                message = conn.recv()
            except (EOFError, OSError, ValueError):
                self.proc.join(1.0)
                self._on_exit(self)
                return
            self._on_message(self, message)


def spawn_context() -> SpawnContext:
    return mp.get_context("spawn")
