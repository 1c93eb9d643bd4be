"""ThreadTuner: measures the fastest thread counts with the window streaming, as in a chat.

The window's own CPU use (Markdown re-rendering, plot painting) changes the
best decode count, so the measurement's decoded text streams into a bubble in
the chat, through the same render path a reply takes, while the engine
measures (LocalEngine.tune, context "window"). It starts by itself after the
first load of a model on this machine (no stored window result) and on demand
(Settings > Threads). The engine stops it for any chat message or load, so it
never delays an answer. GLASSBOX_AUTOTUNE=0 turns the automatic start off
(the test suite sets it; a test that wants it turns it back on).
"""

from __future__ import annotations

import os
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from app.engine import events as ev
from app.engine.thread_tuning import load_tuned

AUTOTUNE_ENV = "GLASSBOX_AUTOTUNE"
BUBBLE_KEY = ("thread-measurement",)  # the chat view's key for the streaming bubble
INTRO = (
    "*Measuring how many CPU threads run this model fastest here, with this window "
    "streaming as in a chat. Sending a message stops it.*"
)


def autotune_enabled() -> bool:
    return os.environ.get(AUTOTUNE_ENV, "1").strip() not in ("0", "false", "no", "off")


class ThreadTuner(QObject):
    """Starts thread measurements and shows them in the chat and the status bar.

    Signals:
        tuning_started(): a measurement began.
        tuning_finished(object): its TuneFinished (done, cancelled or failed).
    """

    tuning_started = Signal()
    tuning_finished = Signal(object)

    # Passed to LocalEngine.tune (counts, rounds, decode_tokens); empty: its
    # defaults. A test makes the measurement small here.
    tune_options: dict[str, Any] = {}  # noqa: RUF012 - replaced, never mutated

    def __init__(
        self, *, engine: Any, bridge: Any, chat: Any, status: Any, tasks: Any, parent: Any = None
    ) -> None:
        super().__init__(parent)
        self.engine, self.chat, self.status, self.tasks = engine, chat, status, tasks
        engine.tuning_context = "window"
        self.last_result: ev.TuneFinished | None = None
        self._wanted = False  # start as soon as the engine is idle
        self._checked: set[str] = set()  # models whose stored result was looked up
        bridge.tune_progressed.connect(self._on_bridge_tune_progressed)
        bridge.tune_finished.connect(self._on_bridge_tune_finished)
        bridge.model_loaded.connect(self._on_bridge_model_loaded)
        bridge.turn_finished.connect(self._on_bridge_turn_finished)

    @property
    def running(self) -> bool:
        return bool(self.engine.tuning)

    def measure_now(self) -> bool:
        """Measure as soon as the engine is idle; True if it started right away."""
        self._wanted = True
        return self._try_start()

    # ---- internals -----------------------------------------------------------------------

    def _try_start(self) -> bool:
        if not self._wanted or self.engine.tuning:
            return False
        if not self.engine.tune(**self.tune_options):
            return False  # busy: tried again when the engine goes idle
        self._wanted = False
        self.chat.add_request(BUBBLE_KEY, None)
        self.chat.append_reply_text(BUBBLE_KEY, INTRO)
        self.chat.set_turn_status(BUBBLE_KEY, "measuring threads…")
        self.status.showMessage("Measuring threads…")
        self.tuning_started.emit()
        return True

    def _check_stored(self, model_path: str) -> None:
        """After a model's first load here: measure when no window result is stored."""
        if model_path in self._checked or not autotune_enabled():
            return
        self._checked.add(model_path)

        def done(found: Any) -> None:
            # No window measurement yet, or one taken while the machine was busy.
            if found is None or found.context != "window" or found.busy_cores is not None:
                self._wanted = True
                QTimer.singleShot(0, self._try_start)

        # The lookup reads the cache file and /proc: off the GUI thread.
        self.tasks.run(lambda: load_tuned(model_path, "window"), on_done=done)

    def _on_bridge_tune_progressed(self, event: ev.TuneProgress) -> None:
        if event.phase == "prefill":
            label = "thread" if event.n_threads == 1 else "threads"
            # Plain text: a streamed bubble shows its unfinished paragraph as typed, so
            # Markdown marks would show as asterisks until the paragraph ends.
            self.chat.append_reply_text(BUBBLE_KEY, f"\n\n{event.n_threads} {label}: ")
            text = f"measuring threads {event.step}/{event.total}: {event.n_threads} {label}"
            self.chat.set_turn_status(BUBBLE_KEY, text + "…")
            self.status.showMessage(f"Measuring threads {event.step}/{event.total}…")
        elif event.phase == "decode":
            self.chat.append_reply_text(BUBBLE_KEY, event.text)

    def _on_bridge_tune_finished(self, event: ev.TuneFinished) -> None:
        self.chat.remove_reply(BUBBLE_KEY)
        self.last_result = event
        info = self.engine.model_info  # the engine updated it before this event
        if event.applied and info is not None:
            self.status.set_model_info(info)
        self.status.showMessage(describe_result(event), 10_000)
        self.tuning_finished.emit(event)

    def _on_bridge_model_loaded(self, event: ev.ModelLoaded) -> None:
        self._check_stored(event.model_path)
        self._retry_when_idle()

    def _on_bridge_turn_finished(self, _event: ev.TurnFinished) -> None:
        self._retry_when_idle()

    def _retry_when_idle(self) -> None:
        if self._wanted:  # asked for while the engine was busy
            QTimer.singleShot(0, self._try_start)


def describe_result(event: ev.TuneFinished) -> str:
    if event.cancelled:
        return "Thread measurement stopped for your message"
    if event.n_threads is None:
        return f"Thread measurement failed: {event.error}"
    where = "now in use" if event.applied else "Settings name other counts"
    text = f"Threads measured: {event.n_threads} decode / {event.n_threads_batch} prefill ({where})"
    return f"{text}; {event.busy_note}" if event.busy_note else text
