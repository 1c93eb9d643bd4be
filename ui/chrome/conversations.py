"""ConversationsController: the sidebar list and which conversation the chat shows."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from app.metrics import TurnMetrics
from app.storage.store import Conversation, Message, Store
from ui.chat.chat_view import ChatView
from ui.chat.conversation_list import ConversationList
from ui.infra.tasks import BackgroundTasks
from ui.internals.panel import InternalsPanel


class ConversationsController(QObject):
    """Lists, opens, creates, renames, deletes and restores stored conversations.

    Store reads and writes run on BackgroundTasks; results come back in the GUI thread.

    Signals:
        messages_shown(int): the chat shows this conversation's stored messages (the turns
            controller puts live replies back over them).
        conversation_opened(int): its messages and plots are shown.
        conversations_listed(): the sidebar list was refreshed.
        turns_reloaded(int): the panel was redrawn from the store's metrics for this conversation.
    """

    messages_shown = Signal(int)
    conversation_opened = Signal(int)
    conversations_listed = Signal()
    turns_reloaded = Signal(int)

    def __init__(
        self,
        *,
        store: Store,
        tasks: BackgroundTasks,
        chat: ChatView,
        panel: InternalsPanel,
        sidebar: ConversationList,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.store, self.tasks = store, tasks
        self.chat, self.panel, self.sidebar = chat, panel, sidebar
        self.conversation_id: int | None = None
        self._search = ""
        sidebar.conversation_selected.connect(self.open_conversation)
        sidebar.new_requested.connect(self.new_conversation)
        sidebar.delete_requested.connect(self.delete_conversation)
        sidebar.undo_delete_requested.connect(self.restore_conversation)
        sidebar.search_changed.connect(self._on_sidebar_search_changed)
        sidebar.model.rename_requested.connect(self.rename_conversation)
        chat.system_prompt_edited.connect(self._on_chat_system_prompt_edited)

    def start(self) -> None:
        """Open the most recent conversation, or a new one when there is none."""

        def job() -> tuple[list[Conversation], int]:
            listing = self.store.list_conversations()
            if not listing:
                listing = [self.store.create_conversation()]
            return listing, listing[0].id

        def done(result: tuple[list[Conversation], int]) -> None:
            listing, newest = result
            # A message sent before the listing arrived has made its own conversation.
            current = self.conversation_id if self.conversation_id is not None else newest
            self._show_listing(listing, current)
            self.open_conversation(current)

        self.tasks.run(job, on_done=done)

    def adopt(self, conversation_id: int) -> None:
        """A message sent with no conversation open made this one: it is the current one now."""
        if self.conversation_id is None:
            self.conversation_id = conversation_id

    def refresh_conversations(self) -> None:
        search, current = self._search, self.conversation_id
        self.tasks.run(
            lambda: self.store.list_conversations(search or None),
            on_done=lambda listing: self._show_listing(listing, current),
        )

    def _show_listing(self, listing: list[Conversation], current: int | None) -> None:
        self.sidebar.set_conversations(
            listing, current if current is not None else self.conversation_id
        )
        self.conversations_listed.emit()

    def open_conversation(self, conversation_id: int) -> None:
        self.conversation_id = conversation_id
        self.sidebar.select(conversation_id)

        def job() -> tuple[Conversation | None, list[Message]]:
            return self.store.get_conversation(conversation_id), self.store.messages(
                conversation_id
            )

        def done(result: tuple[Conversation | None, list[Message]]) -> None:
            conversation, messages = result
            if conversation_id != self.conversation_id:
                return  # the user moved on while we read
            self.chat.show_messages(messages, conversation.system_prompt if conversation else "")
            self.messages_shown.emit(conversation_id)
            self.panel.set_turns([(m.id, m.metrics) for m in messages if m.metrics is not None])
            self.conversation_opened.emit(conversation_id)

        self.tasks.run(job, on_done=done)

    def new_conversation(self) -> None:
        def done(conversation: Conversation) -> None:
            self.open_conversation(conversation.id)
            self.refresh_conversations()
            self.chat.input.setFocus()

        self.tasks.run(self.store.create_conversation, on_done=done)

    def rename_conversation(self, conversation_id: int, title: str) -> None:
        self.tasks.run(lambda: self.store.rename_conversation(conversation_id, title))

    def delete_conversation(self, conversation_id: int) -> None:
        model = self.sidebar.model
        row = model.row_of(conversation_id)
        title = model.data(model.index(row)) if row is not None else ""

        def done(_result: object) -> None:
            model.remove_conversation(conversation_id)
            self.sidebar.show_undo(conversation_id, title)
            if conversation_id == self.conversation_id:
                next_id = model.conversation_id(0)
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
        """Redraw the panel from the store's metrics for the conversation shown."""
        conversation_id = self.conversation_id
        if conversation_id is None:
            return

        def done(turns: list[tuple[int, TurnMetrics]]) -> None:
            if conversation_id == self.conversation_id:
                self.panel.set_turns(turns)
                self.turns_reloaded.emit(conversation_id)

        self.tasks.run(lambda: self.store.turn_metrics(conversation_id), on_done=done)

    def _on_sidebar_search_changed(self, text: str) -> None:
        self._search = text
        self.refresh_conversations()

    def _on_chat_system_prompt_edited(self, text: str) -> None:
        if self.conversation_id is not None:
            conversation_id = self.conversation_id
            self.tasks.run(lambda: self.store.set_system_prompt(conversation_id, text))
