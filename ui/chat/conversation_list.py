"""The conversation list: a Qt list model over stored conversations, and its sidebar widget.

The model holds plain Conversation records handed to it by the controller; it
never queries the store itself (the controller does that off the GUI thread).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.storage.store import Conversation

ConversationIdRole = Qt.ItemDataRole.UserRole + 1
SEARCH_DEBOUNCE_MS = 200
Index = QModelIndex | QPersistentModelIndex


class ConversationListModel(QAbstractListModel):
    """Rows are conversations (objects with id, title, updated_at), newest first.

    Signals:
        rename_requested(int, str): the user edited a title in place.
    """

    rename_requested = Signal(int, str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[Conversation] = []

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802 - Qt API
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        row = self._rows[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            return row.title
        if role == Qt.ItemDataRole.ToolTipRole:
            when = datetime.fromtimestamp(row.updated_at).strftime("%Y-%m-%d %H:%M")
            return f"{row.title}\nlast active {when}\nDouble-click or F2 to rename"
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return f"Conversation: {row.title}"
        if role == ConversationIdRole:
            return row.id
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEditable

    def setData(self, index: Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:  # noqa: N802
        if role != Qt.ItemDataRole.EditRole or not index.isValid():
            return False
        title = str(value).strip()
        row = self._rows[index.row()]
        if not title or title == row.title:
            return False
        row.title = title
        self.dataChanged.emit(index, index, [Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole])
        self.rename_requested.emit(row.id, title)
        return True

    def set_conversations(self, conversations: Sequence[Conversation]) -> None:
        self.beginResetModel()
        self._rows = list(conversations)
        self.endResetModel()

    def conversation_id(self, row: int) -> int | None:
        return self._rows[row].id if 0 <= row < len(self._rows) else None

    def row_of(self, conversation_id: int | None) -> int | None:
        for i, row in enumerate(self._rows):
            if row.id == conversation_id:
                return i
        return None

    def remove_conversation(self, conversation_id: int) -> None:
        row = self.row_of(conversation_id)
        if row is not None:
            self.beginRemoveRows(QModelIndex(), row, row)
            del self._rows[row]
            self.endRemoveRows()


class ConversationList(QWidget):
    """Search box, list of conversations, New / Rename / Delete, and an undo bar.

    Signals:
        conversation_selected(int): the user picked a conversation.
        new_requested(): New pressed (Ctrl+N).
        delete_requested(int): Delete pressed on the selected conversation.
        undo_delete_requested(int): Undo pressed after a delete.
        search_changed(str): the search text settled (debounced).
    """

    conversation_selected = Signal(int)
    new_requested = Signal()
    delete_requested = Signal(int)
    undo_delete_requested = Signal(int)
    search_changed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = ConversationListModel(self)
        self._selecting = False
        self._deleted_id: int | None = None

        self.search = QLineEdit()
        self.search.setPlaceholderText("Search conversations")
        self.search.setClearButtonEnabled(True)
        self.search.setAccessibleName("Search conversations")
        self.search.setToolTip("Show only conversations whose title or messages contain this text")
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(SEARCH_DEBOUNCE_MS)
        self._search_timer.timeout.connect(
            lambda: self.search_changed.emit(self.search.text().strip())
        )
        self.search.textChanged.connect(lambda _t: self._search_timer.start())

        self.view = QListView()
        self.view.setModel(self.model)
        self.view.setAccessibleName("Conversations")
        self.view.setToolTip("Your conversations, most recent first")
        self.view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.view.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.view.setUniformItemSizes(True)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked
            | QAbstractItemView.EditTrigger.EditKeyPressed
        )
        self.view.selectionModel().currentChanged.connect(self._on_view_current_changed)

        self.new_button = self._button("New", "New conversation (Ctrl+N)", self.new_requested.emit)
        self.rename_button = self._button(
            "Rename", "Rename the selected conversation (F2)", self.start_rename
        )
        self.delete_button = self._button(
            "Delete",
            "Delete the selected conversation (Undo brings it back)",
            self._on_delete_button_clicked,
        )
        buttons = QHBoxLayout()
        for button in (self.new_button, self.rename_button, self.delete_button):
            buttons.addWidget(button)

        self.undo_label = QLabel()
        self.undo_label.setAccessibleName("Deleted conversation notice")
        self.undo_button = self._button(
            "Undo",
            "Bring back the conversation you just deleted (Ctrl+Z)",
            self._on_undo_button_clicked,
        )
        self.undo_bar = QWidget()
        undo_layout = QHBoxLayout(self.undo_bar)
        undo_layout.setContentsMargins(0, 0, 0, 0)
        undo_layout.addWidget(self.undo_label, 1)
        undo_layout.addWidget(self.undo_button)
        self.undo_bar.hide()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.search)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.undo_bar)
        layout.addLayout(buttons)

    def _button(self, text: str, tip: str, slot: Callable[[], object]) -> QPushButton:
        button = QPushButton(text)
        button.setToolTip(tip)
        button.setAccessibleName(f"{text} conversation")
        button.clicked.connect(slot)
        return button

    def set_conversations(
        self, conversations: Sequence[Conversation], current_id: int | None
    ) -> None:
        self._selecting = True
        try:
            self.model.set_conversations(conversations)
            self.select(current_id)
        finally:
            self._selecting = False

    def select(self, conversation_id: int | None) -> None:
        row = self.model.row_of(conversation_id)
        was, self._selecting = self._selecting, True
        try:
            if row is None:
                self.view.clearSelection()
            else:
                self.view.setCurrentIndex(self.model.index(row))
        finally:
            self._selecting = was

    def selected_id(self) -> int | None:
        index = self.view.currentIndex()
        return self.model.conversation_id(index.row()) if index.isValid() else None

    def start_rename(self) -> None:
        index = self.view.currentIndex()
        if index.isValid():
            self.view.edit(index)

    def show_undo(self, conversation_id: int, title: str) -> None:
        self._deleted_id = conversation_id
        self.undo_label.setText(f"Deleted “{title}”")
        self.undo_bar.show()

    def hide_undo(self) -> None:
        self._deleted_id = None
        self.undo_bar.hide()

    def undo_delete(self) -> bool:
        if self._deleted_id is None:
            return False
        self._on_undo_button_clicked()
        return True

    def _on_view_current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if self._selecting or not current.isValid():
            return
        conversation_id = self.model.conversation_id(current.row())
        if conversation_id is not None:
            self.conversation_selected.emit(conversation_id)

    def _on_delete_button_clicked(self) -> None:
        conversation_id = self.selected_id()
        if conversation_id is not None:
            self.delete_requested.emit(conversation_id)

    def _on_undo_button_clicked(self) -> None:
        if self._deleted_id is not None:
            conversation_id, self._deleted_id = self._deleted_id, None
            self.undo_bar.hide()
            self.undo_delete_requested.emit(conversation_id)
