"""EngineBridge: engine and session callbacks (reader thread) -> Qt signals (GUI thread).

The engine calls its listener from its reader thread; widgets may only be
touched from the GUI thread. `post()` may be called from any thread: it emits a
private signal whose queued connection lands in the GUI thread, where the event
is re-emitted on the typed signal below. Order is kept: Qt delivers queued
events from one thread in the order they were posted.
"""

from __future__ import annotations

import threading

from PySide6.QtCore import QObject, Qt, Signal

from app.engine import events as ev

try:  # the session's own events; the bridge works with a bare engine too
    from app.session import ReplyStored, RequestSubmitted
except ImportError:  # pragma: no cover - session not installed
    ReplyStored = RequestSubmitted = None  # type: ignore[assignment,misc]


class EngineBridge(QObject):
    """Re-emits engine/session events in the GUI thread.

    Signals (each carries the event dataclass):
        event_received(EngineEvent): every event, before the typed signal below.
        model_load_started(ModelLoadStarted)
        model_loaded(ModelLoaded)
        request_submitted(RequestSubmitted): the session stored the user message.
        request_queued(RequestQueued)
        turn_started(TurnStarted)
        token_received(Token)
        turn_finished(TurnFinished): every request ends with one (done, cancelled, error, crash).
        reply_stored(ReplyStored): the session stored the reply and its metrics.
        engine_error(EngineError)
        engine_crashed(EngineCrashed)
    """

    event_received = Signal(object)
    model_load_started = Signal(object)
    model_loaded = Signal(object)
    request_submitted = Signal(object)
    request_queued = Signal(object)
    turn_started = Signal(object)
    token_received = Signal(object)
    turn_finished = Signal(object)
    reply_stored = Signal(object)
    engine_error = Signal(object)
    engine_crashed = Signal(object)

    _posted = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._closed = threading.Event()
        self._posted.connect(self._on_self_posted, Qt.ConnectionType.QueuedConnection)
        self._routes: list[tuple[type, Signal]] = [
            (ev.ModelLoadStarted, self.model_load_started),
            (ev.ModelLoaded, self.model_loaded),
            (ev.RequestQueued, self.request_queued),
            (ev.TurnStarted, self.turn_started),
            (ev.Token, self.token_received),
            (ev.TurnFinished, self.turn_finished),
            (ev.EngineError, self.engine_error),
            (ev.EngineCrashed, self.engine_crashed),
        ]
        if RequestSubmitted is not None:
            self._routes += [
                (RequestSubmitted, self.request_submitted),
                (ReplyStored, self.reply_stored),
            ]

    def post(self, event: ev.EngineEvent) -> None:
        """Hand an event to the GUI thread. Safe from any thread; never blocks."""
        if not self._closed.is_set():
            self._posted.emit(event)

    def close(self) -> None:
        """Drop events posted from now on (the window is going away)."""
        self._closed.set()

    def _on_self_posted(self, event: ev.EngineEvent) -> None:
        if self._closed.is_set():
            return
        self.event_received.emit(event)
        for cls, signal in self._routes:
            if isinstance(event, cls):
                signal.emit(event)
                return
