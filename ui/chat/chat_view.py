"""The chat column: system prompt, message bubbles, and the input row.

The view knows nothing about the engine. The controller tells it what happened
("a turn for key K started", "text arrived") and listens to its *_requested
signals. Streamed text is buffered and appended to its bubble at most once per
frame (ui/infra/frame_clock.py); the bubble renders its Markdown only when a
block is finished (ui/chat/markdown_view.py).

A stored conversation can hold thousands of messages, and a bubble costs a few
milliseconds to build. The view builds the newest ones first, a time slice per
event-loop pass (ui/infra/time_slices.py), up to a window of INITIAL_WINDOW; older
ones are built a page at a time when the user scrolls near the top (or asks for a
message that is not built yet). Leaving a long conversation deletes its bubbles in
slices as well.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import shiboken6
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from app.metrics import TurnMetrics
from app.storage.store import Message
from ui.chat.message_widget import MessageWidget
from ui.infra.frame_clock import FrameGate
from ui.infra.time_slices import TimeSlicer

INITIAL_WINDOW = 12  # newest messages built on opening: a screenful of bubbles and then some
PAGE = 10  # older messages built per scroll to the top
NEAR_TOP_PX = 200  # scrolled this close to the top: build the next page


class InputBox(QPlainTextEdit):
    """Enter submits, Shift+Enter inserts a newline.

    Signals:
        submitted(str): Enter pressed with non-blank text.
    """

    submitted = Signal(str)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt override
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not (
            event.modifiers() & Qt.KeyboardModifier.ShiftModifier
        ):
            text = self.toPlainText().strip()
            if text:
                self.submitted.emit(text)
            return
        super().keyPressEvent(event)


class ChatView(QWidget):
    """Messages of one conversation plus the input row.

    Signals:
        send_requested(str): the user sent a new message.
        edit_resend_requested(str): the user edited the last message and sent it again.
        branch_edit_requested(int, str): an earlier user message (its id) edited and sent:
            a new branch up to it, then the new text there.
        branch_regenerate_requested(int): regenerate an earlier reply (its id) in a new branch.
        continue_requested(int): extend the last reply (its id), cut at the token limit.
        stop_requested(): Stop pressed (or Esc).
        regenerate_requested(): regenerate the last reply.
        message_selected(int): a stored message was clicked (its message id).
        system_prompt_edited(str): the system prompt field was changed and left.
    """

    send_requested = Signal(str)
    edit_resend_requested = Signal(str)
    branch_edit_requested = Signal(int, str)
    branch_regenerate_requested = Signal(int)
    continue_requested = Signal(int)
    stop_requested = Signal()
    regenerate_requested = Signal()
    message_selected = Signal(int)
    system_prompt_edited = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._widgets: list[MessageWidget] = []
        self._pending_text: dict[object, list[str]] = {}  # streamed, not yet shown
        self._editing = False
        self._editing_widget: MessageWidget | None = None
        self._generating = False
        self._older: list[Message] = []  # stored, oldest first, not built yet
        self._to_build = 0  # how many of _older the builder still adds now
        self._scroll_target: int | None = None  # a message id to show once built
        self._keep_from_bottom: int | None = None  # scroll anchor while prepending
        self._doomed: list[QWidget] = []  # a left conversation's bubbles, deleted in slices

        self.system_prompt = QLineEdit()
        self.system_prompt.setPlaceholderText("System prompt for this conversation (optional)")
        self.system_prompt.setAccessibleName("System prompt")
        self.system_prompt.setToolTip(
            "Instructions the model sees before every turn of this conversation"
        )
        self.system_prompt.editingFinished.connect(self._on_system_prompt_editing_finished)
        self._stored_system_prompt = ""

        self.scroll_area = QScrollArea()
        self.scroll_area.setWidgetResizable(True)
        self.scroll_area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll_area.setAccessibleName("Conversation messages")
        self.scroll_area.setToolTip("")
        bar = self.scroll_area.verticalScrollBar()
        bar.rangeChanged.connect(self._on_scrollbar_range_changed)
        bar.valueChanged.connect(self._on_scrollbar_value_changed)
        self._follow_tail = True
        self._new_column()
        self._builder = TimeSlicer(self._build_step, parent=self)
        self._reaper = TimeSlicer(self._reap_step, parent=self)

        self.edit_banner = QLabel("Editing your last message: Enter sends it again, Esc cancels")
        self.edit_banner.setAccessibleName("Editing notice")
        self.edit_banner.hide()
        self.input = InputBox()
        self.input.setPlaceholderText("Message (Enter sends, Shift+Enter adds a line)")
        self.input.setAccessibleName("Message input")
        self.input.setToolTip(
            "Type a message; Enter sends, Shift+Enter adds a line, Ctrl+L focuses here"
        )
        self.input.setFixedHeight(72)
        self.input.submitted.connect(self._on_input_submitted)
        self.send_button = self._button(
            "Send", "Send the message (Enter)", self._on_send_button_clicked
        )
        self.stop_button = self._button("Stop", "Stop generating (Esc)", self.stop_requested.emit)
        self.regen_button = self._button(
            "Regenerate", "Generate the last reply again", self.regenerate_requested.emit
        )
        self.stop_button.setEnabled(False)
        self.regen_button.setEnabled(False)

        buttons = QVBoxLayout()
        for button in (self.send_button, self.stop_button, self.regen_button):
            buttons.addWidget(button)
        input_row = QHBoxLayout()
        input_row.addWidget(self.input, 1)
        input_row.addLayout(buttons)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.system_prompt)
        layout.addWidget(self.scroll_area, 1)
        layout.addWidget(self.edit_banner)
        layout.addLayout(input_row)

        self._frame = FrameGate(self._show_pending_text, parent=self)

    def _button(self, text: str, tip: str, slot: Callable[[], object]) -> QPushButton:
        button = QPushButton(text)
        button.setToolTip(tip)
        button.setAccessibleName(text)
        button.clicked.connect(slot)
        return button

    def _new_column(self) -> None:
        """A fresh message column; the old one (if any) is the caller's to dispose of."""
        self._column = QWidget()
        self._column_layout = QVBoxLayout(self._column)
        self._column_layout.setContentsMargins(8, 8, 8, 8)
        self._column_layout.setSpacing(8)
        self.earlier_button = QPushButton()
        self.earlier_button.setFlat(True)
        self.earlier_button.setAccessibleName("Show earlier messages")
        self.earlier_button.setToolTip("Older messages are added as you scroll up")
        self.earlier_button.clicked.connect(lambda: self._build_older(PAGE))
        self.earlier_button.hide()
        self._column_layout.addWidget(self.earlier_button)
        self._column_layout.addStretch(1)
        self.scroll_area.setWidget(self._column)

    # ---- whole conversation -------------------------------------------------------------
    def show_messages(self, messages: Iterable[Message], system_prompt: str = "") -> None:
        """Replace the view with stored messages (id, role, content, partial, stop_reason).

        The newest are built at once as far as a time slice allows, the rest of the first
        window in the following event-loop passes, older ones on scrolling up.
        """
        self.clear()
        self._stored_system_prompt = system_prompt or ""
        self.system_prompt.setText(self._stored_system_prompt)
        self._older = [m for m in messages if m.role != "system"]
        self._to_build = min(INITIAL_WINDOW, len(self._older))
        self._follow_tail = True
        # The last exchange is always there at once: Regenerate and Edit act on it.
        for _ in range(min(2, self._to_build)):
            self._build_step()
        self._builder.start()  # the rest from the next event-loop pass on
        self._refresh_actions()

    def clear(self) -> None:
        self._builder.stop()
        self._older.clear()
        self._to_build = 0
        self._scroll_target = None
        self._keep_from_bottom = None
        if self._widgets:
            # Hand the whole column to the reaper: hidden at once, deleted in slices.
            old = self.scroll_area.takeWidget()
            old.hide()
            self._doomed.append(old)  # popped last: its bubbles go one by one first
            self._doomed.extend(self._widgets)
            self._widgets.clear()
            self._new_column()
            self._reaper.start()
        self._pending_text.clear()
        self._cancel_edit()

    def message_widgets(self) -> list[MessageWidget]:
        """The bubbles built so far (the newest messages), oldest first."""
        return list(self._widgets)

    def unbuilt_messages(self) -> int:
        """Stored messages of this conversation not built into bubbles yet (older ones)."""
        return len(self._older)

    # ---- turns in flight (keyed by the controller) ---------------------------------------
    def add_request(self, key: object, user_text: str | None) -> MessageWidget:
        """Show a sent message (None: regenerate, no new user bubble) and a waiting reply."""
        if user_text is not None:
            self._append("user", user_text).request_key = key
        reply = self._append("assistant", "")
        reply.request_key = key
        reply.set_status("sending…")
        self._follow_tail = True
        self._refresh_actions()
        return reply

    def bind_reply(self, key: object, message_id: int, text: str, status: str) -> None:
        """Make the shown message `message_id` the live reply of turn `key` again."""
        for widget in self._widgets:
            if widget.message_id == message_id and widget.role == "assistant":
                widget.request_key = key
                widget.set_partial(False)
                widget.set_stats(None)
                widget.set_text(text)
                widget.set_status(status)
                return

    def reply_widget(self, key: object) -> MessageWidget | None:
        for widget in reversed(self._widgets):
            if widget.request_key == key and widget.role == "assistant":
                return widget
        return None

    def user_widget(self, key: object) -> MessageWidget | None:
        for widget in reversed(self._widgets):
            if widget.request_key == key and widget.role == "user":
                return widget
        return None

    def remove_reply(self, key: object) -> None:
        """Take away turn `key`'s reply bubble (a thread measurement's, when it ends)."""
        widget = self.reply_widget(key)
        if widget is not None:
            self._remove(widget)
            self._refresh_actions()

    def set_turn_status(self, key: object, text: str) -> None:
        widget = self.reply_widget(key)
        if widget is not None:
            widget.set_status(text)

    def append_reply_text(self, key: object, piece: str) -> None:
        """Streamed text for turn `key`; shown with the next frame."""
        if not piece:
            return
        self._pending_text.setdefault(key, []).append(piece)
        self._frame.request()

    def chat_updates(self) -> int:
        """How many times streamed text was put on screen (tests: one per frame at most)."""
        return self._frame.runs

    def finish_turn(
        self,
        key: object,
        text: str | None,
        partial: bool,
        reason: str | None,
        metrics: TurnMetrics | None = None,
    ) -> None:
        widget = self.reply_widget(key)
        if widget is None:
            return
        pending = "".join(self._pending_text.pop(key, []))
        widget.set_text(text if text is not None else widget.text() + pending)
        if partial:
            widget.set_partial(True, reason)
        else:
            widget.set_status("")
        if metrics is not None:  # None: the figures it has stay (a continuation undone)
            widget.set_stats(metrics)
        elif widget.cut_at_limit:
            widget.set_status("✂ cut at the token limit")
        self._refresh_actions()

    def set_message_ids(
        self, key: object, user_id: int | None = None, reply_id: int | None = None
    ) -> None:
        if user_id is not None and (widget := self.user_widget(key)) is not None:
            widget.message_id = user_id
        if reply_id is not None and (widget := self.reply_widget(key)) is not None:
            widget.message_id = reply_id
        self._refresh_actions()  # stored messages can be edited, regenerated, continued

    def drop_last_reply(self) -> None:
        """Remove the last assistant bubble (before regenerating it)."""
        if self._widgets and self._widgets[-1].role == "assistant":
            self._remove(self._widgets[-1])

    def drop_last_exchange(self) -> None:
        """Remove the last user message and every reply after it (before resending an edit)."""
        while self._widgets and self._widgets[-1].role != "user":
            self._remove(self._widgets[-1])
        if self._widgets:
            self._remove(self._widgets[-1])

    def set_generating(self, generating: bool) -> None:
        self._generating = generating
        self.stop_button.setEnabled(generating)
        self._refresh_actions()

    # ---- selection and scrolling -------------------------------------------------------------
    def select_message(self, message_id: int | None) -> MessageWidget | None:
        found = None
        for widget in self._widgets:
            hit = message_id is not None and widget.message_id == message_id
            widget.set_selected(hit)
            if hit:
                found = widget
        return found

    def scroll_to_message(self, message_id: int) -> bool:
        """Select and show a message; an older one not built yet is built first (in slices)."""
        widget = self.select_message(message_id)
        if widget is None:
            if not any(m.id == message_id for m in self._older):
                return False
            self._scroll_target = message_id
            self._build_older(len(self._older))  # stops early once the target is built
            return True
        self._follow_tail = False
        self.scroll_area.ensureWidgetVisible(widget, 0, 40)
        return True

    # ---- editing ----------------------------------------------------------------------------
    def begin_edit_last(self) -> None:
        last_user = self._last_user()
        if last_user is not None:
            self.begin_edit(last_user)

    def begin_edit(self, widget: MessageWidget) -> None:
        """Put a user message in the input box; Enter sends it again (Esc cancels)."""
        self._editing = True
        self._editing_widget = widget
        if widget is self._last_user():
            self.edit_banner.setText("Editing your last message: Enter sends it again, Esc cancels")
        else:
            self.edit_banner.setText(
                "Editing an earlier message: Enter sends it in a new branch (this conversation "
                "is kept), Esc cancels"
            )
        self.edit_banner.show()
        self.input.setPlainText(widget.text())
        self.input.setFocus()

    def is_editing(self) -> bool:
        return self._editing

    def cancel_edit(self) -> bool:
        """Leave edit mode; True when there was an edit to cancel."""
        was = self._editing
        self._cancel_edit()
        if was:
            self.input.clear()
        return was

    def _cancel_edit(self) -> None:
        self._editing = False
        self._editing_widget = None
        self.edit_banner.hide()

    def _last_user(self) -> MessageWidget | None:
        return next((w for w in reversed(self._widgets) if w.role == "user"), None)

    # ---- internals -----------------------------------------------------------------------------
    def _make_widget(self, role: str, text: str) -> MessageWidget:
        widget = MessageWidget(role, text)
        widget.clicked.connect(lambda w=widget: self._on_message_clicked(w))
        widget.edit_requested.connect(lambda w=widget: self.begin_edit(w))
        widget.regenerate_requested.connect(lambda w=widget: self._on_regenerate_clicked(w))
        widget.continue_requested.connect(lambda w=widget: self._on_continue_clicked(w))
        return widget

    def _append(self, role: str, text: str) -> MessageWidget:
        widget = self._make_widget(role, text)
        self._column_layout.insertWidget(self._column_layout.count() - 1, widget)
        self._widgets.append(widget)
        return widget

    def _build_older(self, count: int) -> None:
        """Build up to `count` more of the older messages, in slices, keeping the view still."""
        if not self._older:
            return
        bar = self.scroll_area.verticalScrollBar()
        if self._keep_from_bottom is None and not self._follow_tail:
            self._keep_from_bottom = bar.maximum() - bar.value()
        self._to_build = max(self._to_build, min(count, len(self._older)))
        self._builder.start()

    def _build_step(self) -> bool:
        """Build the newest unbuilt message as a bubble above the others; True while more is due."""
        if self._to_build <= 0 or not self._older:
            self._to_build = 0
            self._update_earlier_button()
            return False
        message = self._older.pop()
        self._to_build -= 1
        widget = self._make_widget(message.role, message.content)
        widget.message_id = message.id
        if message.partial:
            widget.set_partial(True, message.stop_reason)
        if message.role == "assistant":
            widget.set_stats(getattr(message, "metrics", None))
        self._column_layout.insertWidget(1, widget)  # below the "earlier" button
        self._widgets.insert(0, widget)
        if self._scroll_target is not None and message.id == self._scroll_target:
            self._scroll_target = None
            self._to_build = 0
            self._keep_from_bottom = None
            self._update_earlier_button()
            self._refresh_actions()
            self.scroll_to_message(message.id)
            return False
        if self._to_build == 0 or not self._older:
            self._update_earlier_button()
            self._refresh_actions()
        return self._to_build > 0

    def _update_earlier_button(self) -> None:
        left = len(self._older)
        self.earlier_button.setVisible(left > 0)
        if left:
            plural = "s" if left != 1 else ""
            self.earlier_button.setText(f"↑ {left} earlier message{plural}")

    def _reap_step(self) -> bool:
        """Delete one bubble of a conversation the user left; True while more are due."""
        if not self._doomed:
            return False
        widget = self._doomed.pop()
        if shiboken6.isValid(widget):
            shiboken6.delete(widget)  # now, not deleteLater: that would free them all at once
        return bool(self._doomed)

    def _remove(self, widget: MessageWidget) -> None:
        self._widgets.remove(widget)
        self._pending_text.pop(widget.request_key, None)
        widget.setParent(None)
        widget.deleteLater()

    def _refresh_actions(self) -> None:
        last_user = self._last_user()
        last_reply = self._last_reply()
        idle = not self._generating
        for widget in self._widgets:
            # The last exchange is changed in place; an earlier stored message in a branch.
            stored_or_last = widget.message_id is not None or widget in (last_user, last_reply)
            widget.set_editable(idle and widget.role == "user" and stored_or_last)
            widget.set_regenerable(idle and widget.role == "assistant" and stored_or_last)
            widget.set_continuable(
                idle
                and widget is last_reply
                and widget.cut_at_limit
                and widget.message_id is not None
            )
        self.regen_button.setEnabled(last_reply is not None and idle)

    def _last_reply(self) -> MessageWidget | None:
        if self._widgets and self._widgets[-1].role == "assistant":
            return self._widgets[-1]
        return None

    def _on_regenerate_clicked(self, widget: MessageWidget) -> None:
        if widget is self._last_reply():
            self.regenerate_requested.emit()
        elif widget.message_id is not None:
            self.branch_regenerate_requested.emit(widget.message_id)

    def _on_continue_clicked(self, widget: MessageWidget) -> None:
        if widget is self._last_reply() and widget.message_id is not None:
            self.continue_requested.emit(widget.message_id)

    def _on_message_clicked(self, widget: MessageWidget) -> None:
        self.select_message(widget.message_id)
        widget.set_selected(True)
        if widget.message_id is not None:
            self.message_selected.emit(widget.message_id)

    def _on_input_submitted(self, text: str) -> None:
        self.input.clear()
        if self._editing:
            widget = self._editing_widget
            self._cancel_edit()
            if widget is None or widget is self._last_user() or widget.message_id is None:
                self.edit_resend_requested.emit(text)
            else:
                self.branch_edit_requested.emit(widget.message_id, text)
        else:
            self.send_requested.emit(text)

    def _on_send_button_clicked(self) -> None:
        text = self.input.toPlainText().strip()
        if text:
            self._on_input_submitted(text)

    def _show_pending_text(self) -> None:
        pending, self._pending_text = self._pending_text, {}
        for key, pieces in pending.items():
            widget = self.reply_widget(key)
            if widget is not None:
                widget.append_text("".join(pieces))

    def _on_scrollbar_range_changed(self, _low: int, high: int) -> None:
        bar = self.scroll_area.verticalScrollBar()
        if self._follow_tail:
            bar.setValue(high)
        elif self._keep_from_bottom is not None:
            # Older bubbles went in above: keep what the user was reading in place.
            bar.setValue(high - self._keep_from_bottom)
            if not self._builder.running():
                self._keep_from_bottom = None

    def _on_scrollbar_value_changed(self, value: int) -> None:
        bar = self.scroll_area.verticalScrollBar()
        # Scrolled up: stop following the newest text; back at the bottom: follow again.
        self._follow_tail = value >= bar.maximum() - 4
        if value <= NEAR_TOP_PX and self._older and not self._follow_tail:
            self._build_older(PAGE)

    def _on_system_prompt_editing_finished(self) -> None:
        text = self.system_prompt.text()
        if text != self._stored_system_prompt:
            self._stored_system_prompt = text
            self.system_prompt_edited.emit(text)
