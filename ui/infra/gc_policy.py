"""Garbage collection only on the GUI thread, in small steps.

Python's cyclic collector runs in whichever thread happens to allocate. Here
that includes the engine reader thread and the background task threads, and a
collection there can destroy a Qt wrapper from the wrong thread and crash the
process. A full collection of a heap holding Qt, pyqtgraph and numpy objects
also takes tens of milliseconds, long enough to stall the event loop.

So automatic collection is turned off; a GUI-thread timer checks the
allocation counters against the usual thresholds and, as CPython's own
collector does, collects the oldest generation that is due (a collection of
generation n takes the younger ones with it). Objects alive after start-up are
frozen (gc.freeze), so older-generation collections only walk what came later.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

CHECK_INTERVAL_MS = 200


class GuiThreadCollector(QObject):
    """Runs the cyclic garbage collector from a GUI-thread QTimer. No signals."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._was_enabled = gc.isenabled()
        self._timer = QTimer(self)
        self._timer.setInterval(CHECK_INTERVAL_MS)
        self._timer.timeout.connect(self._on_timer_timeout)

    def start(self) -> None:
        gc.collect()
        gc.freeze()
        gc.disable()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()
        gc.unfreeze()
        if self._was_enabled:
            gc.enable()

    def _on_timer_timeout(self) -> None:
        counts = gc.get_count()
        thresholds = gc.get_threshold()
        due = [gen for gen in (2, 1, 0) if counts[gen] > thresholds[gen]]
        if due:
            gc.collect(due[0])
