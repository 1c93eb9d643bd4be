"""Background work for the GUI thread: storage and engine commands off the event loop.

One worker thread runs jobs in submission order (so "send" then "cancel" stay in
order); the callback runs back in the GUI thread through a queued signal, the
way Anki's background operations report success on the main thread.
"""

from __future__ import annotations

import concurrent.futures
import traceback
from collections.abc import Callable
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, Qt, Signal

from app.errors import GlassboxError


class BackgroundTasks(QObject):
    """Runs callables on one worker thread.

    Signals:
        failed(str): a job without on_error raised; carries a one-line message.
        idle(): no job is left to run.
    """

    failed = Signal(str)
    idle = Signal()
    _finished = Signal(object, object, object, object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="glassbox-gui-io"
        )
        self._in_flight = 0
        self._closed = False
        self._finished.connect(self._on_self_finished, Qt.ConnectionType.QueuedConnection)

    def run(
        self,
        job: Callable[[], Any],
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        if self._closed:
            return  # shutting down: callbacks delivered late may still ask for work
        self._in_flight += 1

        def wrapped() -> None:
            try:
                result, error = job(), None
            except BaseException as exc:  # reported in the GUI thread
                result, error = None, exc
            self._finished.emit(result, error, on_done, on_error)

        self._pool.submit(wrapped)

    def pending(self) -> int:
        return self._in_flight

    def shutdown(self) -> None:
        """Run the queued jobs to the end; later run() calls are dropped."""
        self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=False)

    def _on_self_finished(
        self, result: Any, error: BaseException | None, on_done: Any, on_error: Any
    ) -> None:
        self._in_flight -= 1
        try:
            # Like a Qt connection, a callback bound to a deleted QObject (a closed
            # dialog with WA_DeleteOnClose) is dropped instead of touching dead widgets.
            on_done, on_error = _alive(on_done), _alive(on_error)
            if error is None:
                if on_done is not None:
                    on_done(result)
            elif on_error is not None:
                on_error(error)
            else:
                self.failed.emit(describe_error(error))
        finally:
            if self._in_flight == 0:
                self.idle.emit()


def _alive(callback: Callable[..., Any] | None) -> Callable[..., Any] | None:
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, QObject) and not shiboken6.isValid(owner):
        return lambda *_args: None
    return callback


def describe_error(error: BaseException) -> str:
    """One line for the user: the message of a GlassboxError, else type and message."""
    if isinstance(error, GlassboxError):
        return str(error)
    lines = traceback.format_exception_only(type(error), error)
    return lines[-1].strip() if lines else type(error).__name__
