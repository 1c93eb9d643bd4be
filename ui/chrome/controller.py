"""ChatController: the glue between the views and the core (session, engine, store).

It wires three parts and is what the window, the demo and the tests talk to:
ConversationsController (the sidebar and which conversation is shown),
TurnsController (sending and the replies' events) and EngineController
(loading, restarting, the engine's state). Commands run on BackgroundTasks (the
store and engine calls touch the disk); events arrive through EngineBridge's
typed signals in the GUI thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject

from app.gui_settings import GuiSettings
from app.session import ChatSession
from app.settings import RuntimeSettings, SamplingSettings
from app.storage.store import Store
from ui.chat.chat_view import ChatView
from ui.chat.conversation_list import ConversationList
from ui.chrome.conversations import ConversationsController
from ui.chrome.crash_banner import CrashBanner
from ui.chrome.engine_control import EngineController
from ui.chrome.status_bar import EngineStatusBar
from ui.chrome.turns import TurnsController
from ui.infra.bridge import EngineBridge
from ui.infra.error_dialog import show_error
from ui.infra.tasks import BackgroundTasks
from ui.internals.panel import InternalsPanel

if TYPE_CHECKING:
    from app.engine.base import Engine


class ChatController(QObject):
    """Holds the conversations, turns and engine controllers and passes on their commands.

    Signals (those of its parts, passed through as attributes):
        conversation_opened(int), conversations_listed(), turns_reloaded(int): conversations.
        reply_finished(object), reply_stored(object): turns.
        model_ready(object): engine.
    """

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
        conversations: ConversationList,
        status: EngineStatusBar,
        banner: CrashBanner,
        settings: GuiSettings,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.conversations = ConversationsController(
            store=store, tasks=tasks, chat=chat, panel=panel, sidebar=conversations, parent=self
        )
        self.turns = TurnsController(
            engine=engine,
            session=session,
            store=store,
            bridge=bridge,
            tasks=tasks,
            chat=chat,
            panel=panel,
            conversations=self.conversations,
            settings=settings,
            parent=self,
        )
        self.engine_control = EngineController(
            engine=engine,
            bridge=bridge,
            tasks=tasks,
            status=status,
            banner=banner,
            panel=panel,
            settings=settings,
            dialog_parent=chat,
            parent=self,
        )
        self.conversation_opened = self.conversations.conversation_opened
        self.conversations_listed = self.conversations.conversations_listed
        self.turns_reloaded = self.conversations.turns_reloaded
        self.reply_finished = self.turns.reply_finished
        self.reply_stored = self.turns.reply_stored
        self.model_ready = self.engine_control.model_ready

        # View to view: a message and its plot points point at each other.
        chat.message_selected.connect(panel.highlight_message)
        panel.turn_clicked.connect(chat.scroll_to_message)
        tasks.failed.connect(lambda message: show_error(chat.window(), "Glassbox", message))

    @property
    def conversation_id(self) -> int | None:
        return self.conversations.conversation_id

    # Conversations
    def start(self) -> None:
        self.conversations.start()

    def open_conversation(self, conversation_id: int) -> None:
        self.conversations.open_conversation(conversation_id)

    def new_conversation(self) -> None:
        self.conversations.new_conversation()

    def delete_conversation(self, conversation_id: int) -> None:
        self.conversations.delete_conversation(conversation_id)

    # Turns
    def send(self, text: str) -> None:
        self.turns.send(text)

    def regenerate(self) -> None:
        self.turns.regenerate()

    def stop(self) -> None:
        self.turns.stop()

    def busy(self) -> bool:
        return self.turns.busy()

    # Engine
    def load_model(self, path: str, runtime: RuntimeSettings | None = None) -> None:
        self.engine_control.load_model(path, runtime)

    def restart_engine(self) -> None:
        self.engine_control.restart_engine()

    def apply_settings(self, runtime: RuntimeSettings, sampling: SamplingSettings) -> None:
        self.engine_control.apply_settings(runtime, sampling)
