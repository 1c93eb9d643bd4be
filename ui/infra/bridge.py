"""EngineBridge: engine and session callbacks (reader thread) -> Qt signals (GUI thread).

The engine calls its listener from its reader thread; widgets may only be
touched from the GUI thread. `post()` may be called from any thread: it emits a
private signal whose queued connection lands in the GUI thread, where the event
is re-emitted on its typed signal. Order is kept: events wait in one queue and
are re-emitted in the order they were posted.

Tokens are coalesced to the screen's refresh: a token wakes the GUI thread at
most once per frame (about 30 Hz), and the tokens that arrived meanwhile come
out as one FrameTokens. Every other event goes out at once, after the tokens
posted before it. A model streaming 150 tok/s therefore costs the GUI thread
about 30 wake-ups a second, not 150.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from PySide6.QtCore import QObject, Qt, Signal, SignalInstance

from app.engine import events as ev
from app.session import ReplyStored, RequestSubmitted
from ui.infra.frame_clock import FRAME_MS, FrameGate


@dataclass
class FrameTokens(ev.EngineEvent):
    """Consecutive tokens of one request that arrived within one frame, in order."""

    tokens: list[ev.Token] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(token.text for token in self.tokens)


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
        tokens_received(FrameTokens): the tokens of one request that arrived within a frame.
        turn_finished(TurnFinished): every request ends with one (done, cancelled, error, crash).
        reply_stored(ReplyStored): the session stored the reply and its metrics.
        engine_error(EngineError)
        engine_crashed(EngineCrashed)
        tune_progressed(TuneProgress)
        tune_finished(TuneFinished)
        event_received(EngineEvent): every event, right after its typed signal (none for
            a type without one), for views that follow the engine as a whole; for a
            FrameTokens, once, with its last token.
    """

    model_load_started = Signal(object)
    model_load_progressed = Signal(object)
    model_loaded = Signal(object)
    request_submitted = Signal(object)
    request_queued = Signal(object)
    turn_started = Signal(object)
    tokens_received = Signal(object)
    turn_finished = Signal(object)
    reply_stored = Signal(object)
    engine_error = Signal(object)
    engine_crashed = Signal(object)
    tune_progressed = Signal(object)
    tune_finished = Signal(object)
    event_received = Signal(object)

    _posted = Signal(object)

    def __init__(self, parent: QObject | None = None, frame_ms: int = FRAME_MS) -> None:
        super().__init__(parent)
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._queue: list[ev.EngineEvent] = []
        self._wake_queued = False  # a _posted signal is on its way to the GUI thread
        self._drain_due = False  # the GUI thread will drain the queue (now or at the frame)
        self._urgent = False  # the queue holds an event that must not wait for the frame
        self._frame = FrameGate(self._drain, frame_ms, self)
        self._posted.connect(self._on_self_posted, Qt.ConnectionType.QueuedConnection)
        self._routes: dict[type, SignalInstance] = {
            ev.ModelLoadStarted: self.model_load_started,
            ev.ModelLoadProgress: self.model_load_progressed,
            ev.ModelLoaded: self.model_loaded,
            RequestSubmitted: self.request_submitted,
            ev.RequestQueued: self.request_queued,
            ev.TurnStarted: self.turn_started,
            FrameTokens: self.tokens_received,
            ev.TurnFinished: self.turn_finished,
            ReplyStored: self.reply_stored,
            ev.EngineError: self.engine_error,
            ev.EngineCrashed: self.engine_crashed,
            ev.TuneProgress: self.tune_progressed,
            ev.TuneFinished: self.tune_finished,
        }

    def post(self, event: ev.EngineEvent) -> None:
        """Hand an event to the GUI thread. Safe from any thread; never blocks."""
        if self._closed.is_set():
            return
        urgent = not isinstance(event, ev.Token)
        with self._lock:
            self._queue.append(event)
            self._urgent |= urgent
            # A token needs no wake-up while one is on its way or a drain is due;
            # an urgent event needs one unless a wake-up is already on its way.
            wake = not self._wake_queued and (urgent or not self._drain_due)
            self._wake_queued |= wake
        if wake:
            self._posted.emit(None)

    def close(self) -> None:
        """Drop events posted from now on (the window is going away)."""
        self._closed.set()
        self._frame.cancel()

    def flush(self) -> None:
        """Deliver what is queued now (tests, and before a screenshot)."""
        self._drain()

    def _on_self_posted(self, _wake: object) -> None:
        with self._lock:
            self._wake_queued = False
            self._drain_due = True
            urgent = self._urgent
        if urgent:
            self._frame.run_now()
        else:
            self._frame.request()

    def _drain(self) -> None:
        with self._lock:
            events, self._queue = self._queue, []
            self._drain_due = self._urgent = False
        batch: FrameTokens | None = None
        for event in events:
            if isinstance(event, ev.Token):
                if batch is not None and batch.request_id == event.request_id:
                    batch.tokens.append(event)
                    continue
                self._emit(batch)
                batch = FrameTokens(request_id=event.request_id, tokens=[event])
                continue
            self._emit(batch)
            batch = None
            self._emit(event)
        self._emit(batch)

    def _emit(self, event: ev.EngineEvent | None) -> None:
        if event is None or self._closed.is_set():
            return
        signal = self._routes.get(type(event))
        if signal is not None:
            signal.emit(event)
        self.event_received.emit(event.tokens[-1] if isinstance(event, FrameTokens) else event)
