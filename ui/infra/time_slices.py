"""TimeSlicer: long GUI-thread work cut into slices the event loop can breathe between.

Building or deleting a widget per message takes a few milliseconds; doing 2,000 in one
call stalls the window for seconds. Work that must happen on the GUI thread is handed
over as a `step` callable that does one small unit and says whether more is left; the
slicer calls it until its budget for this pass is spent, then yields to the event loop
(a zero-timeout timer) and goes on in the next pass. Input, painting and other timers
get their turn between slices.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer

SLICE_MS = 5.0  # a third of a 16 ms frame: room left for layout and a repaint in the same frame


class TimeSlicer(QObject):
    """Runs `step()` repeatedly, at most about `budget_ms` per event-loop pass.

    `step` returns True while work is left. `start()` is idempotent while running.
    """

    def __init__(
        self,
        step: Callable[[], bool],
        budget_ms: float = SLICE_MS,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._step = step
        self._budget_s = budget_ms / 1000
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self.run_slice)
        self.slices = 0

    def start(self) -> None:
        if not self._timer.isActive():
            self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def running(self) -> bool:
        return self._timer.isActive()

    def run_slice(self) -> None:
        """One slice now: steps until the budget is spent or the work is done."""
        self.slices += 1
        deadline = time.perf_counter() + self._budget_s
        while self._step():
            if time.perf_counter() >= deadline:
                self._timer.start()
                return
        self._timer.stop()
