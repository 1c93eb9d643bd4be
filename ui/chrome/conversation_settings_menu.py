"""Edit > Conversation settings…: the open conversation's sampling overrides and system prompt.

The conversation's row and its overrides are read on the window's background
runner, the dialog opens when they arrive, and Save writes them there too; the
GUI thread never waits on the store. Saved presets go to the GUI settings file
in the background as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import shiboken6
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu

from app.conversation_settings import (
    PromptPreset,
    apply_overrides,
    clean_overrides,
    effective_sampling,
    save_overrides,
)
from app.errors import GlassboxError
from app.settings import SamplingSettings
from app.storage.store import Store
from ui.dialogs.conversation_settings import ConversationSettingsDialog
from ui.infra.error_dialog import show_error

if TYPE_CHECKING:
    from ui.chrome.window_base import ChatWindowBase

STATUS_MS = 5000


@dataclass(frozen=True)
class _Stored:
    title: str
    system_prompt: str
    overrides: dict[str, Any]
    problem: str  # why the stored overrides could not be read ("" when they could)


def _read(store: Store, conversation_id: int) -> _Stored:
    conversation = store.get_conversation(conversation_id)
    if conversation is None:
        raise GlassboxError(f"no conversation with id {conversation_id}")
    raw: object = None
    try:
        raw = store.sampling_overrides(conversation_id) or {}
        effective_sampling(SamplingSettings(), raw, conversation_id)
        overrides, problem = clean_overrides(raw), ""
    except GlassboxError as exc:
        # The dialog says why and keeps the fields that are fine alone; Save replaces the rest.
        overrides, problem = _usable_fields(raw), f"{exc}. Save replaces them."
    return _Stored(conversation.title, conversation.system_prompt, overrides, problem)


def _usable_fields(raw: object) -> dict[str, Any]:
    usable: dict[str, Any] = {}
    if isinstance(raw, dict):
        for name, value in raw.items():
            try:
                apply_overrides(SamplingSettings(), {name: value})
                usable.update(clean_overrides({name: value}))
            except GlassboxError:
                pass
    return usable


class ConversationSettingsAction(QObject):
    """The Edit menu's "Conversation settings…" and the dialog it opens.

    Signals:
        dialog_opened(object): the dialog is shown (a ConversationSettingsDialog).
        settings_saved(int): a conversation's settings were written (its id).
    """

    dialog_opened = Signal(object)
    settings_saved = Signal(int)

    def __init__(self, window: ChatWindowBase) -> None:
        super().__init__(window)
        self.window = window
        self.dialog: ConversationSettingsDialog | None = None
        self.action = QAction("Conversation &settings…", window)
        self.action.setShortcut("Ctrl+Shift+,")
        self.action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        tip = "This conversation's own sampling values and system prompt (presets too)"
        self.action.setToolTip(tip)
        self.action.setStatusTip(tip)
        self.action.triggered.connect(self.open)
        _edit_menu(window).addAction(self.action)

    def open(self) -> None:
        """Read the open conversation's settings in the background, then show the dialog."""
        if self.dialog is not None and shiboken6.isValid(self.dialog):
            self.dialog.raise_()
            return
        conversation_id = self.window.controller.conversation_id
        if conversation_id is None:
            self.window.status.showMessage("No conversation is open yet", STATUS_MS)
            return
        store = self.window.store
        self.window.tasks.run(
            lambda: _read(store, conversation_id),
            on_done=lambda stored: self._show(conversation_id, stored),
            on_error=self._on_error,
        )

    def _show(self, conversation_id: int, stored: _Stored) -> None:
        settings = self.window.settings
        dialog = ConversationSettingsDialog(
            title=stored.title,
            defaults=settings.sampling,
            overrides=stored.overrides,
            system_prompt=stored.system_prompt,
            user_presets=settings.prompt_presets,
            problem=stored.problem,
            parent=self.window,
        )
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.presets_changed.connect(self._on_dialog_presets_changed)
        dialog.accepted.connect(
            lambda: self._save(
                conversation_id, dialog.overrides(), stored.system_prompt, dialog.prompt_text()
            )
        )
        dialog.finished.connect(self._on_dialog_finished)
        self.dialog = dialog
        dialog.open()
        self.dialog_opened.emit(dialog)

    def _save(
        self, conversation_id: int, overrides: dict[str, Any], old_prompt: str, new_prompt: str
    ) -> None:
        store = self.window.store
        prompt_changed = new_prompt != old_prompt

        def job() -> None:
            save_overrides(store, conversation_id, overrides)
            if prompt_changed:
                store.set_system_prompt(conversation_id, new_prompt)

        def done(_result: object) -> None:
            # The chat's system prompt field shows the stored text: read it again.
            if prompt_changed and self.window.controller.conversation_id == conversation_id:
                self.window.controller.open_conversation(conversation_id)
            self.window.status.showMessage("Conversation settings saved", STATUS_MS)
            self.settings_saved.emit(conversation_id)

        self.window.tasks.run(job, on_done=done, on_error=self._on_error)

    def _on_dialog_finished(self, _result: int) -> None:
        # Deleted later (WA_DeleteOnClose): a new open must not find it still "valid".
        self.dialog = None

    def _on_dialog_presets_changed(self, presets: list[PromptPreset]) -> None:
        settings = self.window.settings
        settings.prompt_presets = list(presets)
        self.window.tasks.run(settings.save, on_error=self._on_error)

    def _on_error(self, exc: BaseException) -> None:
        show_error(self.window, "Conversation settings", str(exc))


def _edit_menu(window: ChatWindowBase) -> QMenu:
    for top in window.menuBar().actions():
        menu = top.menu()
        if isinstance(menu, QMenu) and top.text().replace("&", "") == "Edit":
            return menu
    return window.menuBar().addMenu("&Edit")
