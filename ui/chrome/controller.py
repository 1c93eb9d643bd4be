"""ChatController: the glue between the views and the core (session, engine, store).

Commands from the views run on BackgroundTasks (the store and engine.submit
touch the disk); events come back through EngineBridge in the GUI thread. A
request is shown at once under a local key; the request id arrives when the
background send returns, and events that beat it are held until then.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, Signal

from app.engine import events as ev
from app.gui_settings import GuiSettings
from app.models.fit_check import estimate_vs_loaded
from app.settings import RuntimeSettings, SamplingSettings
from ui.chat.chat_view import ChatView
from ui.chat.conversation_list import ConversationList
from ui.chrome.crash_banner import CrashBanner
from ui.chrome.status_bar import EngineStatusBar
from ui.infra.bridge import EngineBridge, ReplyStored, RequestSubmitted
from ui.infra.error_dialog import show_error
from ui.infra.tasks import BackgroundTasks, describe_error
from ui.internals.panel import InternalsPanel


@dataclass
class _Turn:
    key: object
    conversation_id: int | None
    request_id: int | None = None
    started: bool = False
    tokens: int = 0
    finished: bool = False
    cancel_on_bind: bool = False
    reply_id: int | None = None  # the reply's stored row, known from RequestSubmitted
    text: list[str] = field(default_factory=list)  # streamed so far, to redraw on reopen


class ChatController(QObject):
    """Turns view commands into session/engine/store calls and events into view updates.

    Signals:
        conversation_opened(int): a conversation's messages and plots are shown.
        conversations_listed(): the sidebar list was refreshed.
        turns_reloaded(int): the panel was redrawn from the store's metrics for this conversation.
        reply_finished(object): a TurnFinished was applied to the views.
        reply_stored(object): a ReplyStored was applied to the views.
        model_ready(object): a ModelLoaded was applied (the settings dialog reads n_layers from it).
    """

    conversation_opened = Signal(int)
    conversations_listed = Signal()
    turns_reloaded = Signal(int)
    reply_finished = Signal(object)
    reply_stored = Signal(object)
    model_ready = Signal(object)

    def __init__(
        self,
        *,
        engine: Any,
        session: Any,
        store: Any,
        bridge: EngineBridge,
        tasks: BackgroundTasks,
        chat: ChatView,
        panel: InternalsPanel,
        conversations: ConversationList,
        status: EngineStatusBar,
        banner: CrashBanner,
        settings: GuiSettings,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.engine, self.session, self.store, self.tasks = engine, session, store, tasks
        self.chat, self.panel, self.conversations = chat, panel, conversations
        self.status, self.banner, self.settings = status, banner, settings
        self.conversation_id: int | None = None
        self._search = ""
        self._turns: dict[object, _Turn] = {}
        self._key_by_request: dict[int, object] = {}
        self._early: dict[int, list[ev.EngineEvent]] = defaultdict(list)
        self._crashed_requests: set[int] = set()
        self._loading_path: str | None = None

        bridge.event_received.connect(self._on_bridge_event_received)
        tasks.failed.connect(lambda message: show_error(self.chat.window(), "Glassbox", message))
        chat.send_requested.connect(self.send)
        chat.edit_resend_requested.connect(self.edit_resend)
        chat.stop_requested.connect(self.stop)
        chat.regenerate_requested.connect(self.regenerate)
        chat.message_selected.connect(panel.highlight_message)
        chat.system_prompt_edited.connect(self._on_chat_system_prompt_edited)
        panel.turn_clicked.connect(chat.scroll_to_message)
        conversations.conversation_selected.connect(self.open_conversation)
        conversations.new_requested.connect(self.new_conversation)
        conversations.delete_requested.connect(self.delete_conversation)
        conversations.undo_delete_requested.connect(self.restore_conversation)
        conversations.search_changed.connect(self._on_conversations_search_changed)
        conversations.model.rename_requested.connect(self.rename_conversation)
        banner.restart_requested.connect(self.restart_engine)

    # ---- conversations ----------------------------------------
    def start(self) -> None:
        """Open the most recent conversation, or a new one when there is none."""

        def job() -> tuple[list[Any], int]:
            listing = self.store.list_conversations()
            if not listing:
                listing = [self.store.create_conversation()]
            return listing, listing[0].id

        def done(result: tuple[list[Any], int]) -> None:
            listing, newest = result
            # A message sent before the listing arrived has made its own conversation.
            current = self.conversation_id if self.conversation_id is not None else newest
            self._show_listing(listing, current)
            self.open_conversation(current)

        self.tasks.run(job, on_done=done)

    def refresh_conversations(self) -> None:
        search, current = self._search, self.conversation_id
        self.tasks.run(
            lambda: self.store.list_conversations(search or None),
            on_done=lambda listing: self._show_listing(listing, current),
        )

    def _show_listing(self, listing: list[Any], current: int | None) -> None:
        self.conversations.set_conversations(
            listing, current if current is not None else self.conversation_id
        )
        self.conversations_listed.emit()

    def open_conversation(self, conversation_id: int) -> None:
        self.conversation_id = conversation_id
        self.conversations.select(conversation_id)

        def job() -> tuple[Any, list[Any]]:
            return self.store.get_conversation(conversation_id), self.store.messages(
                conversation_id
            )

        def done(result: tuple[Any, list[Any]]) -> None:
            conversation, messages = result
            if conversation_id != self.conversation_id:
                return  # the user moved on while we read
            self.chat.show_messages(messages, conversation.system_prompt if conversation else "")
            self._rebind_live_turns(conversation_id)
            self.panel.set_turns([(m.id, m.metrics) for m in messages if m.metrics is not None])
            self.chat.set_generating(self._busy())
            self.conversation_opened.emit(conversation_id)

        self.tasks.run(job, on_done=done)

    def _rebind_live_turns(self, conversation_id: int) -> None:
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
            self.chat.bind_reply(turn.key, turn.reply_id, "".join(turn.text), status)

    def new_conversation(self) -> None:
        def done(conversation: Any) -> None:
            self.open_conversation(conversation.id)
            self.refresh_conversations()
            self.chat.input.setFocus()

        self.tasks.run(self.store.create_conversation, on_done=done)

    def rename_conversation(self, conversation_id: int, title: str) -> None:
        self.tasks.run(lambda: self.store.rename_conversation(conversation_id, title))

    def delete_conversation(self, conversation_id: int) -> None:
        row = self.conversations.model.row_of(conversation_id)
        title = (
            self.conversations.model.data(self.conversations.model.index(row))
            if row is not None
            else ""
        )

        def done(_result: object) -> None:
            self.conversations.model.remove_conversation(conversation_id)
            self.conversations.show_undo(conversation_id, title)
            if conversation_id == self.conversation_id:
                next_id = self.conversations.model.conversation_id(0)
                if next_id is None:
                    self.new_conversation()
                else:
                    self.open_conversation(next_id)

        self.tasks.run(lambda: self.store.delete_conversation(conversation_id), on_done=done)

    def restore_conversation(self, conversation_id: int) -> None:
        def done(_result: object) -> None:
            self.open_conversation(conversation_id)
            self.refresh_conversations()

        self.tasks.run(lambda: self.store.restore_conversation(conversation_id), on_done=done)

    def reload_turns(self) -> None:
        conversation_id = self.conversation_id
        if conversation_id is None:
            return

        def done(turns: list[Any]) -> None:
            if conversation_id == self.conversation_id:
                self.panel.set_turns(turns)
                self.turns_reloaded.emit(conversation_id)

        self.tasks.run(lambda: self.store.turn_metrics(conversation_id), on_done=done)

    def _on_conversations_search_changed(self, text: str) -> None:
        self._search = text
        self.refresh_conversations()

    def _on_chat_system_prompt_edited(self, text: str) -> None:
        if self.conversation_id is not None:
            conversation_id = self.conversation_id
            self.tasks.run(lambda: self.store.set_system_prompt(conversation_id, text))

    # ---- chat commands ------------------------------------------------------------------------
    def send(self, text: str) -> None:
        self._submit(
            text, lambda cid, sampling: self.session.send(cid, text, sampling), user_text=text
        )

    def regenerate(self) -> None:
        if self._busy():
            return
        self.chat.drop_last_reply()
        self._submit(
            None, lambda cid, sampling: self.session.regenerate(cid, sampling), user_text=None
        )

    def edit_resend(self, text: str) -> None:
        if self._busy():
            return
        self.chat.drop_last_exchange()
        self._submit(
            text,
            lambda cid, sampling: self.session.edit_last_user(cid, text, sampling),
            user_text=text,
        )

    def _submit(self, _text: str | None, call: Any, user_text: str | None) -> None:
        if self.engine.model_info is None and self.engine.state not in ("loading", "generating"):
            show_error(
                self.chat.window(),
                "No model",
                "No model is loaded. Choose one with File > Models… "
                "or wait for the current load to finish.",
            )
            return
        key = object()
        conversation_id = self.conversation_id
        turn = _Turn(key, conversation_id)
        self._turns[key] = turn
        self.chat.add_request(key, user_text)
        self.chat.set_generating(True)
        sampling: SamplingSettings = self.settings.sampling

        def job() -> tuple[int, int]:
            cid = (
                conversation_id
                if conversation_id is not None
                else self.store.create_conversation().id
            )
            return cid, call(cid, sampling)

        def failed(error: BaseException) -> None:
            self.chat.finish_turn(key, None, True, f"not sent: {describe_error(error)}")
            self._turns.pop(key, None)
            self.chat.set_generating(self._busy())

        self.tasks.run(job, on_done=lambda r: self._bind(key, r[0], r[1]), on_error=failed)

    def _bind(self, key: object, conversation_id: int, request_id: int) -> None:
        turn = self._turns[key]
        turn.conversation_id, turn.request_id = conversation_id, request_id
        self._key_by_request[request_id] = key
        if self.conversation_id is None:
            self.conversation_id = conversation_id
        for event in self._early.pop(request_id, []):
            self._apply_turn_event(turn, event)
        if turn.cancel_on_bind and not turn.finished:
            self.session.cancel(request_id)
        self.refresh_conversations()  # the first message names the conversation

    def stop(self) -> None:
        """Esc / Stop: leave edit mode, or cancel queued requests and the running one."""
        if self.chat.cancel_edit():
            return
        live = [t for t in self._turns.values() if not t.finished]
        for turn in sorted(live, key=lambda t: t.started):  # queued first, so none starts next
            if turn.request_id is None:
                turn.cancel_on_bind = True
            else:
                self.session.cancel(
                    turn.request_id
                )  # sets a flag or drops a queued request: no wait

    def _busy(self) -> bool:
        return any(not t.finished for t in self._turns.values())

    # ---- engine commands ------------------------------------------------------------------------
    def load_model(self, path: str, runtime: RuntimeSettings | None = None) -> None:
        runtime = runtime or self.settings.runtime
        self._loading_path = path
        self.status.set_state("loading")
        self.tasks.run(
            lambda: self.engine.load(path, runtime),
            on_error=lambda e: self._on_load_failed(describe_error(e)),
        )

    def restart_engine(self) -> None:
        self.banner.hide()
        self.status.set_state("loading")
        self.tasks.run(
            self.engine.restart, on_error=lambda e: self._on_load_failed(describe_error(e))
        )

    def apply_settings(self, runtime: RuntimeSettings, sampling: SamplingSettings) -> None:
        reload = runtime != self.settings.runtime
        self.settings.runtime, self.settings.sampling = runtime, sampling
        self.tasks.run(self.settings.save)
        if reload:
            path = self.settings.model_path or (
                self.engine.model_info.model_path if self.engine.model_info else None
            )
            if path:
                self.load_model(path, runtime)

    def _on_load_failed(self, message: str) -> None:
        self.status.set_state(self.engine.state)
        show_error(
            self.chat.window(),
            "Could not load the model",
            message + "\n\nThe previous model stays loaded.",
        )

    # ---- events ----------------------------------------
    def _on_bridge_event_received(self, event: ev.EngineEvent) -> None:
        rid = event.request_id
        if isinstance(event, ev.ModelLoadStarted):
            self.status.set_state("loading")
        elif isinstance(event, ev.ModelLoadProgress):
            self.status.set_load_progress(event.fraction)
        elif isinstance(event, ev.ModelLoaded):
            self.banner.hide()
            self.status.set_model_info(event)
            # Reads the GGUF header: off the GUI thread.
            self.tasks.run(
                lambda: estimate_vs_loaded(event),
                on_done=self.status.set_memory_rows,
                on_error=lambda _e: None,  # the figure is optional; the model is loaded
            )
            self.panel.set_model_info(event)
            if self._loading_path is not None and self.settings.model_path != event.model_path:
                self.settings.model_path = event.model_path
                self.tasks.run(self.settings.save)
            self.model_ready.emit(event)
        elif isinstance(event, ev.EngineCrashed):
            if rid is not None:
                self._crashed_requests.add(rid)
            self.banner.show_crash(event)
        elif isinstance(event, ev.EngineError) and rid is None:
            self._on_load_failed(event.message)
        if rid is not None and not isinstance(event, ev.EngineCrashed):
            key = self._key_by_request.get(rid)
            if key is None:
                self._early[rid].append(event)
            else:
                self._apply_turn_event(self._turns[key], event)
        state = self.engine.state
        self.status.set_state(
            "crashed" if self.banner.isVisible() and state != "loading" else state
        )

    def _apply_turn_event(self, turn: _Turn, event: ev.EngineEvent) -> None:
        key, visible = turn.key, turn.conversation_id == self.conversation_id
        if isinstance(event, RequestSubmitted):
            turn.reply_id = event.assistant_message_id
            self.chat.set_message_ids(
                key, user_id=event.user_message_id, reply_id=event.assistant_message_id
            )
        elif isinstance(event, ev.RequestQueued):
            ahead = event.position
            self.chat.set_turn_status(
                key,
                f"⏳ queued: waiting for {ahead} request{'s' if ahead != 1 else ''} ahead"
                if ahead
                else "waiting for the engine…",
            )
        elif isinstance(event, ev.TurnStarted):
            turn.started = True
            dropped = (
                f"; {event.dropped_messages} oldest messages left out to fit"
                if event.dropped_messages
                else ""
            )
            self.chat.set_turn_status(
                key,
                f"prefill: {event.prompt_tokens} prompt tokens "
                f"({event.prompt_tokens_cached} cached){dropped}…",
            )
            if visible:
                self.panel.begin_live(event)
        elif isinstance(event, ev.Token):
            turn.tokens += 1
            turn.text.append(event.text)
            if turn.tokens == 1:
                self.chat.set_turn_status(key, "generating…")
            self.chat.append_reply_text(key, event.text)
            if visible:
                self.panel.add_token(event.t_ns)
        elif isinstance(event, ev.EngineError):
            self.chat.set_turn_status(key, f"error: {event.message}")
        elif isinstance(event, ev.TurnFinished):
            self._apply_finished(turn, event, visible)
        elif isinstance(event, ReplyStored):
            self.chat.set_message_ids(key, reply_id=event.message_id)
            self._forget(turn)
            if visible:
                self.reload_turns()
            self.reply_stored.emit(event)

    def _apply_finished(self, turn: _Turn, event: ev.TurnFinished, visible: bool) -> None:
        turn.finished = True
        reason = event.metrics.stop_reason
        crashed = turn.request_id in self._crashed_requests
        partial = reason in ("cancelled", "error")
        label = "engine crashed" if crashed else reason
        if partial and not (event.text or turn.tokens):
            label = f"{label} before it started"
        self.chat.finish_turn(turn.key, event.text or None, partial, label)
        if visible and turn.started:
            self.panel.end_live(event.metrics if not partial else None, state=label or "finished")
        if not (event.text or turn.started):
            self._forget(turn)  # the session stores nothing, so no ReplyStored follows
        self.chat.set_generating(self._busy())
        self.reply_finished.emit(event)

    def _forget(self, turn: _Turn) -> None:
        self._turns.pop(turn.key, None)
        if turn.request_id is not None:
            self._key_by_request.pop(turn.request_id, None)
            self._crashed_requests.discard(turn.request_id)
