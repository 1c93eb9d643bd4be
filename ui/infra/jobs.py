"""BackgroundJobs: a thread pool whose results reach the GUI thread through a polled queue."""

from __future__ import annotations

import itertools
import queue
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QThreadPool, QTimer

from app.errors import GlassboxError


def describe(error: BaseException) -> str:
    if isinstance(error, GlassboxError):
        return str(error)
    return f"{type(error).__name__}: {error}".splitlines()[0]


class BackgroundJobs(QObject):
    """Runs fn(report_progress) on its own QThreadPool; callbacks run in the GUI thread.

    Worker threads never touch a Qt object, not even a signal: they put results on
    a queue that a GUI-thread timer drains. A worker holding the last reference to
    a Qt wrapper would let it be garbage-collected off the GUI thread, which crashes.
    """

    POLL_MS = 40

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self._results: queue.SimpleQueue[tuple[int, str, Any]] = queue.SimpleQueue()
        self._callbacks: dict[int, tuple[Callable[..., Any], ...]] = {}
        self._ids = itertools.count(1)
        self._timer = QTimer(self)
        self._timer.setInterval(self.POLL_MS)
        self._timer.timeout.connect(self._on_timer_timeout)

    def run(
        self,
        fn: Callable[[Callable[[Any], None]], Any],
        on_done: Callable[[Any], None],
        on_error: Callable[[BaseException], None],
        on_progress: Callable[[Any], None] | None = None,
    ) -> None:
        """fn must not capture Qt objects: it runs, and is released, on a worker thread."""
        job_id = next(self._ids)
        self._callbacks[job_id] = (on_done, on_error, on_progress or (lambda _v: None))
        results = self._results

        def job() -> None:
            try:
                value = fn(lambda progress: results.put((job_id, "progress", progress)))
            except BaseException as exc:  # reported in the GUI thread
                results.put((job_id, "error", exc))
            else:
                results.put((job_id, "done", value))

        self.pool.start(job)
        self._timer.start()

    def pending(self) -> int:
        return len(self._callbacks)

    def _on_timer_timeout(self) -> None:
        latest: dict[int, Any] = {}  # progress is coalesced: only the newest per tick counts
        while True:
            try:
                job_id, kind, value = self._results.get_nowait()
            except queue.Empty:
                break
            callbacks = self._callbacks.get(job_id)
            if callbacks is None:
                continue
            if kind == "progress":
                latest[job_id] = value
                continue
            if job_id in latest:
                callbacks[2](latest.pop(job_id))
            del self._callbacks[job_id]
            (callbacks[0] if kind == "done" else callbacks[1])(value)
        for job_id, value in latest.items():
            self._callbacks[job_id][2](value)
        if not self._callbacks:
            self._timer.stop()
