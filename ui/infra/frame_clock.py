"""FrameGate: run a view update at most once per frame, however often it is asked for.

A model streaming 150 tokens a second asks for an update per token; the screen
shows about 30 frames a second. Views call `request()` whenever their data
changed; the gate runs the update on the next event-loop pass when the last one
was at least a frame ago, otherwise when the frame is up. Every request made in
between is folded into that one run.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, QTimer

FRAME_MS = 33  # about 30 Hz: smooth for text and plots, cheap for a 2-core machine


class FrameGate(QObject):
    """Calls `update` at most once per `interval_ms`, soon after the first `request()`.

    `runs` counts the updates made (tests compare it with the requests).
    """

    def __init__(
        self,
        update: Callable[[], object],
        interval_ms: int = FRAME_MS,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._update = update
        self._interval_ns = interval_ms * 1_000_000
        self._last_ns = -self._interval_ns
        self.runs = 0
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.timeout.connect(self._on_timer_timeout)

    def request(self) -> None:
        """Ask for one update; a no-op while one is already due."""
        if self._timer.isActive():
            return
        wait_ns = self._interval_ns - (time.monotonic_ns() - self._last_ns)
        self._timer.start(max(0, wait_ns // 1_000_000))

    def pending(self) -> bool:
        return self._timer.isActive()

    def cancel(self) -> None:
        self._timer.stop()

    def run_now(self) -> None:
        """Update at once (a turn's end, a screenshot), folding in a pending request."""
        self._timer.stop()
        self._on_timer_timeout()

    def _on_timer_timeout(self) -> None:
        self._last_ns = time.monotonic_ns()
        self.runs += 1
        self._update()
