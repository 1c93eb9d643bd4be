"""FrameGate: run a view update at most once per frame, however often it is asked for.

A model streaming 150 tokens a second asks for an update per token; the screen
shows about 30 frames a second. Views call `request()` whenever their data
changed; the gate runs the update on the next event-loop pass when the last one
was at least a frame ago, otherwise when the frame is up. Every request made in
between is folded into that one run.

The gates of the GUI thread share one timer (FrameTicker): the bridge's drain, the
chat's text and the panel's plots that are due together run in one timer callback,
so the widgets they change are repainted in one pass of Qt's repaint manager and
reach the screen in one flush. Each gate with its own timer made two or three
repaint passes per frame while a reply streamed.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import shiboken6
from PySide6.QtCore import QObject, Qt, QTimer

FRAME_MS = 33  # about 30 Hz: smooth for text and plots, cheap for a 2-core machine
# A gate due this soon after a tick runs with it (timer jitter): the gates that stream
# (bridge, chat, panel) have the same interval, so once aligned they stay aligned.
ALIGN_NS = 3_000_000


class FrameTicker(QObject):
    """One precise single-shot timer for the FrameGates of the GUI thread."""

    _instance: FrameTicker | None = None

    @classmethod
    def shared(cls) -> FrameTicker:
        if cls._instance is None:
            cls._instance = FrameTicker()
        return cls._instance

    def __init__(self) -> None:
        super().__init__()
        self._due: dict[FrameGate, int] = {}  # gate -> monotonic ns it may run from
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.timeout.connect(self._on_timer_timeout)
        self._armed_for = 0  # the due time the timer was started for
        # While a tick runs: when it started. Its gates count their frame from here, not
        # from when each ran, or a gate run after a slow one would drift into frames of
        # its own.
        self.tick_ns = 0
        self.ticks = 0

    def schedule(self, gate: FrameGate, due_ns: int) -> None:
        self._due[gate] = due_ns
        # Armed even during a tick: an update that opens a dialog runs a nested event loop,
        # and the frames must go on in it.
        self._arm()

    def cancel(self, gate: FrameGate) -> None:
        if self._due.pop(gate, None) is not None and not self._due:
            self._timer.stop()

    def scheduled(self, gate: FrameGate) -> bool:
        return gate in self._due

    def _arm(self) -> None:
        earliest = min(self._due.values())
        if self._timer.isActive() and self._armed_for <= earliest:
            return
        self._armed_for = earliest
        self._timer.start(max(0, (earliest - time.monotonic_ns()) // 1_000_000))

    def _on_timer_timeout(self) -> None:
        self.ticks += 1
        self.tick_ns = time.monotonic_ns()
        # Gates asked for while this tick runs (the bridge's drain asks the chat and the
        # panel) and due by now run in it too.
        while True:
            horizon = time.monotonic_ns() + ALIGN_NS
            ready = [gate for gate, due in self._due.items() if due <= horizon]
            if not ready:
                break
            for gate in ready:
                # pop, not del: a nested event loop in an update may have run it already.
                if self._due.pop(gate, None) is not None and shiboken6.isValid(gate):
                    gate.run_now()  # skipped when deleted with its view since it asked
        self.tick_ns = 0
        self._timer.stop()  # it may have been armed for a request this tick has served
        if self._due:
            self._arm()


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
        self._ticker = FrameTicker.shared()

    def request(self) -> None:
        """Ask for one update; a no-op while one is already due."""
        if self._ticker.scheduled(self):
            return
        self._ticker.schedule(self, max(time.monotonic_ns(), self._last_ns + self._interval_ns))

    def pending(self) -> bool:
        return self._ticker.scheduled(self)

    def cancel(self) -> None:
        self._ticker.cancel(self)

    def run_now(self) -> None:
        """Update at once (a turn's end, a screenshot), folding in a pending request."""
        self._ticker.cancel(self)
        self._last_ns = self._ticker.tick_ns or time.monotonic_ns()
        self.runs += 1
        self._update()
