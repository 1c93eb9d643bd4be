"""EngineBridge: engine and session callbacks (reader thread) -> Qt signals (GUI thread).

The engine calls its listener from its reader thread; widgets may only be
touched from the GUI thread. `post()` may be called from any thread: it emits a
private signal whose queued connection lands in the GUI thread, where the event
is re-emitted on its typed signal. Order is kept: Qt delivers queued events
from one thread in the order they were posted.
"""

from __future__ import annotations

import threading

from PySide6.QtCore import QObject, Qt, Signal, SignalInstance

from app.engine import events as ev
from app.session import ReplyStored, RequestSubmitted


class EngineBridge(QObject):
    """Re-emits engine/session events in the GUI thread, each on the signal for its type.

    Signals (each carries the event dataclass):
        model_load_started(ModelLoadStarted)
        model_load_progressed(ModelLoadProgress): llama.cpp's own progress through the tensors.
        model_loaded(ModelLoaded)
        request_submitted(RequestSubmitted): the session stored the user message; the
            first event of every request, before any engine event for it.
        request_queued(RequestQueued)
        turn_started(TurnStarted)
        token_received(Token)
        turn_finished(TurnFinished): every request ends with one (done, cancelled, error, crash).
        reply_stored(ReplyStored): the session stored the reply and its metrics.
        engine_error(EngineError)
        engine_crashed(EngineCrashed)
        tune_progressed(TuneProgress)
        tune_finished(TuneFinished)
        event_received(EngineEvent): every event, right after its typed signal (none for
            a type without one), for views that follow the engine as a whole.
    """

    model_load_started = Signal(object)
    model_load_progressed = Signal(object)
    model_loaded = Signal(object)
    request_submitted = Signal(object)
    request_queued = Signal(object)
    turn_started = Signal(object)
    token_received = Signal(object)
    turn_finished = Signal(object)
    reply_stored = Signal(object)
    engine_error = Signal(object)
    engine_crashed = Signal(object)
    tune_progressed = Signal(object)
    tune_finished = Signal(object)
    event_received = Signal(object)

    _posted = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._closed = threading.Event()
        self._posted.connect(self._on_self_posted, Qt.ConnectionType.QueuedConnection)
        self._routes: dict[type, SignalInstance] = {
            ev.ModelLoadStarted: self.model_load_started,
            ev.ModelLoadProgress: self.model_load_progressed,
            ev.ModelLoaded: self.model_loaded,
            RequestSubmitted: self.request_submitted,
            ev.RequestQueued: self.request_queued,
            ev.TurnStarted: self.turn_started,
            ev.Token: self.token_received,
            ev.TurnFinished: self.turn_finished,
            ReplyStored: self.reply_stored,
            ev.EngineError: self.engine_error,
            ev.EngineCrashed: self.engine_crashed,
            ev.TuneProgress: self.tune_progressed,
            ev.TuneFinished: self.tune_finished,
        }

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
        signal = self._routes.get(type(event))
        if signal is not None:
            signal.emit(event)
        self.event_received.emit(event)
