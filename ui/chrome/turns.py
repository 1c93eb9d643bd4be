"""TurnsController: sending messages and showing each reply as its events arrive.

A request's id is taken from the engine on the GUI thread before the send goes
to the background, so the reply is shown, keyed and cancellable at once, and
every event that comes back finds its turn. The reply's text lives once, in the
session: a conversation opened again mid-reply reads it from there
(ChatSession.streamed) and skips the tokens that text already covers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from app.branching import branch_before
from app.conversation_settings import conversation_sampling
from app.engine import events as ev
from app.gui_settings import GuiSettings
from app.metrics import TurnMetrics
from app.session import ChatSession, ReplyStored, RequestSubmitted
from app.settings import SamplingSettings
from app.storage.store import Store
from ui.chat.chat_view import ChatView
from ui.chrome.conversations import ConversationsController
from ui.infra.bridge import EngineBridge, FrameTokens
from ui.infra.error_dialog import show_error
from ui.infra.tasks import BackgroundTasks, describe_error
from ui.internals.panel import InternalsPanel

if TYPE_CHECKING:
    from app.engine.base import Engine

# (conversation id, sampling, request id); runs on the background thread.
SessionCall = Callable[[int, SamplingSettings, int], int]


@dataclass(eq=False)
class _Turn:
    request_id: int  # also the chat view's key for the reply
    conversation_id: int | None
    started: bool = False
    tokens: int = 0
    finished: bool = False
    reply_id: int | None = None  # the reply's stored row, known from RequestSubmitted
    # Tokens up to this index are already in the bubble (read from the session
    # when the conversation was shown again); later copies of them are skipped.
    shown_through: int = -1
    prefix: str = ""  # Continue: the reply's text before this turn


class TurnsController(QObject):
    """Chat commands (send, regenerate, edit and resend, stop) and the replies' events.

    Signals:
        reply_finished(object): a TurnFinished was applied to the views.
        reply_stored(object): a ReplyStored was applied to the views.
    """

    reply_finished = Signal(object)
    reply_stored = Signal(object)

    def __init__(
        self,
        *,
        engine: Engine,
        session: ChatSession,
        store: Store,
        bridge: EngineBridge,
        tasks: BackgroundTasks,
        chat: ChatView,
        panel: InternalsPanel,
        conversations: ConversationsController,
        settings: GuiSettings,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.engine, self.session, self.store, self.tasks = engine, session, store, tasks
        self.chat, self.panel, self.conversations = chat, panel, conversations
        self.settings = settings
        self._turns: dict[int, _Turn] = {}  # by request id, until the reply is stored
        self._crashed_requests: set[int] = set()

        chat.send_requested.connect(self.send)
        chat.edit_resend_requested.connect(self.edit_resend)
        chat.stop_requested.connect(self.stop)
        chat.regenerate_requested.connect(self.regenerate)
        chat.branch_edit_requested.connect(self.branch_edit)
        chat.branch_regenerate_requested.connect(self.branch_regenerate)
        chat.continue_requested.connect(self.continue_reply)
        conversations.conversation_opened.connect(self._on_conversations_conversation_opened)
        self._after_open: tuple[int, Callable[[], None]] | None = None
        conversations.messages_shown.connect(self._on_conversations_messages_shown)
        bridge.request_submitted.connect(self._on_bridge_request_submitted)
        bridge.request_queued.connect(self._on_bridge_request_queued)
        bridge.turn_started.connect(self._on_bridge_turn_started)
        bridge.tokens_received.connect(self._on_bridge_tokens_received)
        bridge.engine_error.connect(self._on_bridge_engine_error)
        bridge.engine_crashed.connect(self._on_bridge_engine_crashed)
        bridge.turn_finished.connect(self._on_bridge_turn_finished)
        bridge.reply_stored.connect(self._on_bridge_reply_stored)

    # ---- commands -----------------------------------------------------------------------
    def send(self, text: str) -> None:
        self._submit(
            lambda cid, sampling, rid: self.session.send(cid, text, sampling, rid), user_text=text
        )

    def regenerate(self) -> None:
        if self.busy():
            return
        self.chat.drop_last_reply()
        self._submit(
            lambda cid, sampling, rid: self.session.regenerate(cid, sampling, rid), user_text=None
        )

    def edit_resend(self, text: str) -> None:
        if self.busy():
            return
        self.chat.drop_last_exchange()
        self._submit(
            lambda cid, sampling, rid: self.session.edit_last_user(cid, text, sampling, rid),
            user_text=text,
        )

    def continue_reply(self, message_id: int) -> None:
        """Generate more of the last reply (cut at the token limit), in its own bubble."""
        widget = next((w for w in self.chat.message_widgets() if w.message_id == message_id), None)
        if self.busy() or widget is None:
            return
        self._submit(
            lambda cid, sampling, rid: self.session.continue_reply(cid, sampling, rid),
            user_text=None,
            resume=(message_id, widget.text()),
        )

    def branch_edit(self, message_id: int, text: str) -> None:
        """An earlier message edited: a branch holding what came before it, then `text`."""
        self._branch(message_id, lambda: self.send(text))

    def branch_regenerate(self, message_id: int) -> None:
        """An earlier reply regenerated: a branch up to its question, answered again."""
        self._branch(
            message_id,
            lambda: self._submit(
                lambda cid, sampling, rid: self.session.regenerate(cid, sampling, rid),
                user_text=None,
            ),
        )

    def _branch(self, message_id: int, then: Callable[[], None]) -> None:
        source = self.conversations.conversation_id
        if self.busy() or source is None:
            return

        def opened(branch_id: int) -> None:
            self._after_open = (branch_id, then)  # sent once the branch is on screen
            self.conversations.open_conversation(branch_id)
            self.conversations.refresh_conversations()

        self.tasks.run(lambda: branch_before(self.store, source, message_id).id, on_done=opened)

    def _on_conversations_conversation_opened(self, conversation_id: int) -> None:
        if self._after_open is not None and self._after_open[0] == conversation_id:
            _, then = self._after_open
            self._after_open = None
            then()

    def stop(self) -> None:
        """Esc / Stop: leave edit mode, or cancel queued requests and the running one."""
        if self.chat.cancel_edit():
            return
        live = [t for t in self._turns.values() if not t.finished]
        for turn in sorted(live, key=lambda t: t.started):  # queued first, so none starts next
            # A flag, a queued request dropped, or one not yet submitted ended on arrival.
            self.session.cancel(turn.request_id)

    def busy(self) -> bool:
        return any(not t.finished for t in self._turns.values())

    def _submit(
        self,
        call: SessionCall,
        user_text: str | None,
        resume: tuple[int, str] | None = None,
    ) -> None:
        """Start a turn. resume: (message id, text) of a shown reply this turn extends."""
        if self.engine.model_info is None and self.engine.state not in ("loading", "generating"):
            show_error(
                self.chat.window(),
                "No model",
                "No model is loaded. Choose one with File > Models… "
                "or wait for the current load to finish.",
            )
            return
        request_id = self.engine.new_request_id()
        conversation_id = self.conversations.conversation_id
        turn = _Turn(request_id, conversation_id)
        self._turns[request_id] = turn
        if resume is not None:
            turn.reply_id, turn.prefix = resume
            self.chat.bind_reply(request_id, turn.reply_id, turn.prefix, "continuing…")
        else:
            self.chat.add_request(request_id, user_text)
        self.chat.set_generating(True)
        defaults = self.settings.sampling
        store = self.store

        def job() -> int:
            cid = conversation_id if conversation_id is not None else store.create_conversation().id
            # The global defaults with this conversation's own overrides (read off the GUI thread).
            return call(cid, conversation_sampling(store, cid, defaults), request_id)

        def failed(error: BaseException) -> None:
            self.chat.finish_turn(request_id, None, True, f"not sent: {describe_error(error)}")
            self._forget(turn)
            self.chat.set_generating(self.busy())

        # The first message names the conversation: the list shows the new title.
        self.tasks.run(
            job, on_done=lambda _rid: self.conversations.refresh_conversations(), on_error=failed
        )

    # ---- events -------------------------------------------------------------------------
    def _turn_of(self, event: ev.EngineEvent) -> _Turn | None:
        """The turn this event belongs to (None: not a request of this window)."""
        return self._turns.get(event.request_id) if event.request_id is not None else None

    def _visible(self, turn: _Turn) -> bool:
        return turn.conversation_id == self.conversations.conversation_id

    def _on_bridge_request_submitted(self, event: RequestSubmitted) -> None:
        if (turn := self._turn_of(event)) is None:
            return
        turn.conversation_id, turn.reply_id = event.conversation_id, event.assistant_message_id
        self.conversations.adopt(event.conversation_id)
        self.chat.set_message_ids(
            turn.request_id, user_id=event.user_message_id, reply_id=event.assistant_message_id
        )

    def _on_bridge_request_queued(self, event: ev.RequestQueued) -> None:
        if (turn := self._turn_of(event)) is None:
            return
        ahead = event.position
        self.chat.set_turn_status(
            turn.request_id,
            f"⏳ queued: waiting for {ahead} request{'s' if ahead != 1 else ''} ahead"
            if ahead
            else "waiting for the engine…",
        )

    def _on_bridge_turn_started(self, event: ev.TurnStarted) -> None:
        if (turn := self._turn_of(event)) is None:
            return
        turn.started = True
        dropped = (
            f"; {event.dropped_messages} oldest messages left out to fit"
            if event.dropped_messages
            else ""
        )
        self.chat.set_turn_status(
            turn.request_id,
            f"prefill: {event.prompt_tokens} prompt tokens "
            f"({event.prompt_tokens_cached} cached){dropped}…",
        )
        if self._visible(turn):
            self.panel.begin_live(event)

    def _on_bridge_tokens_received(self, batch: FrameTokens) -> None:
        """The tokens of one frame: one chat update and one live-strip update for all."""
        if (turn := self._turn_of(batch)) is None:
            return
        if not turn.tokens:
            self.chat.set_turn_status(turn.request_id, "generating…")
        turn.tokens += len(batch.tokens)
        fresh = [t for t in batch.tokens if t.index > turn.shown_through]
        if fresh:
            self.chat.append_reply_text(turn.request_id, "".join(t.text for t in fresh))
        if self._visible(turn):
            self.panel.add_tokens([token.t_ns for token in batch.tokens])

    def _on_bridge_engine_error(self, event: ev.EngineError) -> None:
        if (turn := self._turn_of(event)) is not None:
            self.chat.set_turn_status(turn.request_id, f"error: {event.message}")

    def _on_bridge_engine_crashed(self, event: ev.EngineCrashed) -> None:
        if event.request_id is not None:  # looked up when its TurnFinished comes
            self._crashed_requests.add(event.request_id)

    def _on_bridge_turn_finished(self, event: ev.TurnFinished) -> None:
        if (turn := self._turn_of(event)) is None:
            return
        turn.finished = True
        reason = event.metrics.stop_reason
        crashed = turn.request_id in self._crashed_requests
        partial = reason in ("cancelled", "error")
        label = "engine crashed" if crashed else reason
        if partial and not (event.text or turn.tokens):
            label = f"{label} before it started"
        text = turn.prefix + event.text if event.text else None
        metrics: TurnMetrics | None = event.metrics
        nothing_new = bool(turn.prefix) and not event.text
        if nothing_new:  # a continuation that added nothing: the reply stays as it was
            partial, text, metrics = False, turn.prefix, None
        self.chat.finish_turn(turn.request_id, text, partial, label, metrics=metrics)
        if self._visible(turn) and turn.started:
            self.panel.end_live(event.metrics if not partial else None, state=label or "finished")
        if not (event.text or turn.started) or nothing_new:
            self._forget(turn)  # the session stores nothing, so no ReplyStored follows
        self.chat.set_generating(self.busy())
        self.reply_finished.emit(event)

    def _on_bridge_reply_stored(self, event: ReplyStored) -> None:
        if (turn := self._turn_of(event)) is None:
            return
        self.chat.set_message_ids(turn.request_id, reply_id=event.message_id)
        self._forget(turn)
        if self._visible(turn):
            self.conversations.reload_turns()
        self.reply_stored.emit(event)

    def _on_conversations_messages_shown(self, conversation_id: int) -> None:
        """Back in a conversation whose reply is still streaming or queued: the stored
        row is shown; make it the live bubble again, with the text streamed so far."""
        for turn in self._turns.values():
            if turn.conversation_id != conversation_id or turn.finished or turn.reply_id is None:
                continue
            if turn.tokens:
                status = "generating…"
            elif turn.started:
                status = "prefill…"
            else:
                status = "⏳ queued"
            text, turn.shown_through = self.session.streamed(turn.request_id) or ("", -1)
            self.chat.bind_reply(turn.request_id, turn.reply_id, text, status)
        self.chat.set_generating(self.busy())

    def _forget(self, turn: _Turn) -> None:
        self._turns.pop(turn.request_id, None)
        self._crashed_requests.discard(turn.request_id)
