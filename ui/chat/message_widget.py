"""One chat message: role, status line, actions (copy, edit, regenerate) and a Markdown body."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QGuiApplication, QMouseEvent, QPalette
from PySide6.QtWidgets import (
    QApplication,
    QFrame,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.metrics import TurnMetrics
from ui.chat.markdown_view import MessageBody
from ui.chat.reply_stats import STATS_TIP, stats_line

ROLE_TITLES = {"user": "You", "assistant": "Assistant", "system": "System"}


class MessageWidget(QFrame):
    """A message bubble.

    Signals:
        clicked(): the user clicked the bubble (selects it).
        copy_requested(): Copy pressed (the widget copies itself; the signal is for tests/logging).
        edit_requested(): Edit pressed (a user message).
        regenerate_requested(): Regenerate pressed (a reply).
        continue_requested(): Continue pressed (the last reply, cut at the token limit).
    """

    clicked = Signal()
    copy_requested = Signal()
    edit_requested = Signal()
    regenerate_requested = Signal()
    continue_requested = Signal()

    def __init__(self, role: str, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.role = role
        self.message_id: int | None = None
        self.request_key: object | None = None
        self.partial = False
        self.cut_at_limit = False  # stopped by max_tokens: Continue can extend it
        self._selected = False
        self.setObjectName(f"message_{role}")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAccessibleName(f"{ROLE_TITLES.get(role, role)} message")

        self._role_label = QLabel(f"<b>{ROLE_TITLES.get(role, role)}</b>")
        self._status_label = QLabel("")
        self._status_label.setObjectName("message_status")
        self._status_label.setMinimumWidth(10)
        self._status_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self._status_label.setAccessibleName("Message status")
        self._status_label.setToolTip(
            "Where this reply stands: queued, generating, or why it stopped"
        )
        self._copy_button = self._tool_button("Copy", "Copy this message to the clipboard")
        self._edit_button = self._tool_button(
            "Edit",
            "Edit this message and send it again. An earlier message starts a new branch "
            "(a copy of the conversation up to it); this conversation is kept as it is.",
        )
        self._regen_button = self._tool_button(
            "Regenerate",
            "Generate this reply again. An earlier reply is regenerated in a new branch; "
            "this conversation is kept as it is.",
        )
        self._continue_button = self._tool_button(
            "Continue", "The reply was cut at the token limit: generate more of it, in place"
        )
        self._copy_button.clicked.connect(self._on_copy_button_clicked)
        self._edit_button.clicked.connect(self.edit_requested)
        self._regen_button.clicked.connect(self.regenerate_requested)
        self._continue_button.clicked.connect(self.continue_requested)
        self._edit_button.hide()
        self._regen_button.hide()
        self._continue_button.hide()

        header = QHBoxLayout()
        header.setContentsMargins(0, 0, 0, 0)
        header.addWidget(self._role_label)
        header.addWidget(self._status_label, 1)
        for button in (
            self._continue_button,
            self._edit_button,
            self._regen_button,
            self._copy_button,
        ):
            header.addWidget(button)

        self.body = MessageBody(self)
        self.body.setAccessibleName(f"{ROLE_TITLES.get(role, role)} message text")
        self.body.setToolTip("")
        self.body.setMinimumWidth(60)
        self.body.viewport().installEventFilter(self)  # clicks on the text select the bubble too
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.setSpacing(2)
        self._stats_label = QLabel("")
        self._stats_label.setObjectName("message_stats")
        self._stats_label.setAccessibleName("Reply figures")
        self._stats_label.setToolTip(STATS_TIP)
        self._stats_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self._stats_label.hide()
        layout.addLayout(header)
        layout.addWidget(self.body)
        layout.addWidget(self._stats_label)
        self.set_text(text)
        self._restyle()

    def _tool_button(self, text: str, tip: str) -> QToolButton:
        button = QToolButton(self)
        button.setText(text)
        button.setToolTip(tip)
        button.setAccessibleName(f"{text} message")
        button.setAutoRaise(True)
        return button

    def text(self) -> str:
        return self.body.markdown()

    def set_text(self, text: str) -> None:
        self.body.set_markdown(text)

    def append_text(self, piece: str) -> None:
        """Streamed text: appended, its Markdown rendered block by block."""
        self.body.append_markdown(piece)

    def status(self) -> str:
        return self._status_label.text()

    def set_status(self, text: str) -> None:
        self._status_label.setText(text)
        # The label is cut in a narrow chat: the whole line on hover.
        self._status_label.setToolTip(
            text or "Where this reply stands: queued, generating, or why it stopped"
        )

    def stats(self) -> str:
        return self._stats_label.text()

    def set_stats(self, metrics: TurnMetrics | None) -> None:
        """The reply's figures in one quiet line under it (hidden without figures)."""
        line = stats_line(metrics) if metrics is not None else ""
        self._stats_label.setText(line)
        self._stats_label.setVisible(bool(line))
        self.cut_at_limit = metrics is not None and metrics.stop_reason == "length"
        if self.cut_at_limit and not self.partial:
            self.set_status("✂ cut at the token limit")
        self._restyle()

    def set_partial(self, partial: bool, reason: str | None = None) -> None:
        self.partial = partial
        if partial:
            reason = reason or "interrupted"
            if not self.text():  # stopped or crashed before its first token
                if not reason.endswith("before it started"):
                    reason += " before it started"
                self.set_status(f"⚠ {reason}: no reply")
            else:
                self.set_status(f"⚠ partial reply ({reason})")
        self._restyle()

    def set_editable(self, editable: bool) -> None:
        self._edit_button.setVisible(editable)

    def set_regenerable(self, regenerable: bool) -> None:
        self._regen_button.setVisible(regenerable)

    def set_continuable(self, continuable: bool) -> None:
        self._continue_button.setVisible(continuable)

    def set_selected(self, selected: bool) -> None:
        if selected != self._selected:
            self._selected = selected
            self._restyle()

    def is_selected(self) -> bool:
        return self._selected

    def _restyle(self) -> None:
        pal = QApplication.palette()  # not self.palette(): our own style sheet changes that
        base = pal.color(QPalette.ColorRole.Base)
        if self.role == "user":
            base = pal.color(QPalette.ColorRole.AlternateBase)
        border = pal.color(QPalette.ColorRole.Mid).name()
        if self.partial:
            border = "#E69F00"
        if self._selected:
            border = pal.color(QPalette.ColorRole.Highlight).name()
        width = 2 if (self._selected or self.partial) else 1
        sheet = (
            f"MessageWidget {{ background: {base.name()}; border: {width}px solid {border};"
            " border-radius: 6px; }"
        )
        quiet = pal.color(QPalette.ColorRole.PlaceholderText).name()
        sheet += f" QLabel#message_stats {{ color: {quiet}; font-size: 11px; }}"
        if sheet != self.styleSheet():  # setStyleSheet sends PaletteChange: avoid a loop
            self.setStyleSheet(sheet)

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt override
        super().changeEvent(event)
        if event.type() == event.Type.PaletteChange:
            self._restyle()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        if event.button() == Qt.MouseButton.LeftButton:
            self.clicked.emit()
        super().mousePressEvent(event)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if (
            isinstance(event, QMouseEvent)
            and event.type() == QEvent.Type.MouseButtonPress
            and event.button() == Qt.MouseButton.LeftButton
        ):
            self.clicked.emit()
        return False

    def _on_copy_button_clicked(self) -> None:
        QGuiApplication.clipboard().setText(self.text())
        self.copy_requested.emit()
