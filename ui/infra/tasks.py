"""Background work for the GUI: the one runner for storage, engine, Hub and library jobs.

One rule: nothing but data crosses threads. A worker puts (job id, outcome) on a
queue and emits one argument-less queued signal, as the engine bridge does for
engine events, so task outcomes and engine events reach the GUI thread in the
order they happened; the GUI thread then runs the callbacks, the way Anki's
background operations report on the main thread. Callbacks and job callables
never travel: they stay in a GUI-side table and are released on the GUI thread,
since a worker dropping the last reference to a Qt wrapper would destroy it on
the wrong thread, which crashes. Jobs return data (rows, paths), not Qt objects.

max_workers=1 (the main window's runner) runs jobs one at a time in submission
order, so "send" then "cancel" stay in order. The models dialog uses several
workers, so a search is not held up behind a download.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import queue
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, Qt, Signal

from app.errors import GlassboxError

ProgressReporter = Callable[[Any], None]


@dataclass
class _Job:
    fn: Callable[[ProgressReporter], Any]
    on_done: Callable[[Any], None] | None
    on_error: Callable[[BaseException], None] | None
    on_progress: Callable[[Any], None] | None


class BackgroundTasks(QObject):
    """Runs callables on worker threads; their callbacks run on the GUI thread.

    Signals:
        failed(str): a job without on_error raised; carries a one-line message.
        idle(): no job is left to run.
    """

    failed = Signal(str)
    idle = Signal()
    _posted = Signal()  # emitted by workers: an outcome is waiting in the queue

    def __init__(
        self,
        parent: QObject | None = None,
        *,
        max_workers: int = 1,
        thread_name: str = "glassbox-gui-io",
    ) -> None:
        super().__init__(parent)
        self._max_workers, self._thread_name = max_workers, thread_name
        # Made on demand and let go when no job is left, so an idle runner (a
        # hidden dialog's) holds no threads, like a QThreadPool whose threads expire.
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._results: queue.SimpleQueue[tuple[int, str, Any]] = queue.SimpleQueue()
        self._jobs: dict[int, _Job] = {}
        self._futures: dict[int, concurrent.futures.Future[None]] = {}  # GUI thread only
        self._closed = False
        self._ids = itertools.count(1)
        self._posted.connect(self._deliver, Qt.ConnectionType.QueuedConnection)

    def run(
        self,
        job: Callable[[], Any],
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        """Run job() on a worker; on_done(result) or on_error(exception) on the GUI thread."""
        self.run_with_progress(lambda _report: job(), on_done, on_error)

    def run_with_progress(
        self,
        job: Callable[[ProgressReporter], Any],
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        on_progress: Callable[[Any], None] | None = None,
    ) -> None:
        """Run job(report) on a worker; report(value) reaches on_progress on the GUI thread.

        Progress is coalesced: when reports arrive faster than the GUI thread
        wakes, only the newest one is delivered.
        """
        if self._closed:
            return  # shutting down: callbacks delivered late may still ask for work
        job_id = next(self._ids)
        self._jobs[job_id] = _Job(job, on_done, on_error, on_progress)
        handoff = [job]
        results, wake = self._results, self._posted.emit

        def post(kind: str, value: Any) -> None:
            results.put((job_id, kind, value))
            try:
                wake()
            except RuntimeError:
                pass  # the runner was deleted with its window or dialog

        def work() -> None:
            fn = handoff.pop()
            try:
                outcome = ("done", fn(lambda value: post("progress", value)))
            except BaseException as exc:  # reported on the GUI thread
                outcome = ("error", exc)
            del fn  # the GUI-side table holds the job; it is released there
            post(*outcome)

        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=self._max_workers, thread_name_prefix=self._thread_name
            )
        self._futures[job_id] = self._pool.submit(work)

    def pending(self) -> int:
        """Jobs submitted whose outcome has not been delivered yet."""
        return len(self._jobs)

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until every submitted job has run (callbacks come later); False on timeout."""
        _done, not_done = concurrent.futures.wait(list(self._futures.values()), timeout_s)
        return not not_done

    def shutdown(self) -> None:
        """Run the queued jobs to the end; later run() calls are dropped."""
        self._closed = True
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=False)

    def _deliver(self) -> None:
        latest: dict[int, Any] = {}  # the newest progress per job, this wake-up
        finished = False
        while True:
            try:
                job_id, kind, value = self._results.get_nowait()
            except queue.Empty:
                break
            job = self._jobs.get(job_id)
            if job is None:
                continue
            if kind == "progress":
                latest[job_id] = value
                continue
            if job_id in latest and job.on_progress is not None:
                self._call(job.on_progress, latest.pop(job_id))
            del self._jobs[job_id]
            self._futures.pop(job_id, None)
            finished = True
            if kind == "done":
                if job.on_done is not None:
                    self._call(job.on_done, value)
            elif job.on_error is not None:
                self._call(job.on_error, value)
            else:
                self.failed.emit(describe_error(value))
        for job_id, value in latest.items():
            job = self._jobs.get(job_id)
            if job is not None and job.on_progress is not None:
                self._call(job.on_progress, value)
        if finished and not self._jobs:
            if self._pool is not None:  # every job has run: its threads may end
                self._pool.shutdown(wait=False)
                self._pool = None
            self.idle.emit()

    @staticmethod
    def _call(callback: Callable[[Any], None], value: Any) -> None:
        # Like a Qt connection, a callback bound to a deleted QObject (a closed
        # dialog with WA_DeleteOnClose) is dropped instead of touching dead widgets.
        owner = getattr(callback, "__self__", None)
        if isinstance(owner, QObject) and not shiboken6.isValid(owner):
            return
        # A failing callback is reported like any unexpected error and does not
        # stop the other outcomes of this wake-up from being delivered.
        try:
            callback(value)
        except Exception as exc:
            sys.excepthook(type(exc), exc, exc.__traceback__)


def describe_error(error: BaseException) -> str:
    """One line for the user: the message of a GlassboxError, else type and message."""
    if isinstance(error, GlassboxError):
        return str(error)
    lines = traceback.format_exception_only(type(error), error)
    return lines[-1].strip() if lines else type(error).__name__
