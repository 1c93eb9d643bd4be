"""Conversation settings: this conversation's own sampling values and its system prompt.

Each sampling field has a checkbox: unchecked, the conversation follows the
global default (shown beside it, from File > Settings…); checked, the value
beside it is stored with the conversation and overrides the default. The
system prompt can be typed or filled from a preset; the current text can be
saved as a new preset. The dialog only edits values: reading and writing the
store and the settings file is the opener's job (ConversationSettingsAction).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QGridLayout,
    QGroupBox,
    QInputDialog,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.conversation_settings import (
    PromptPreset,
    all_presets,
    apply_overrides,
    with_user_preset,
)
from app.errors import SettingsError
from app.settings import SamplingSettings
from ui.dialogs.forms import double_spin_box, row, spin_box, status_label, with_tip
from ui.dialogs.sampling_form import STOP_SEPARATOR

# (field, label, tooltip) in the order shown.
_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("temperature", "Temperature", "0: always the most likely token; higher: more random"),
    ("top_k", "Top-k", "Keep only the k most likely tokens (0: off)"),
    ("top_p", "Top-p", "Keep the smallest set of tokens whose probabilities sum to p"),
    ("min_p", "Min-p", "Drop tokens less likely than min-p times the top token"),
    ("repeat_penalty", "Repeat penalty", "Above 1 discourages repeating recent tokens"),
    ("seed", "Seed", "Random seed for sampling; empty: a new seed every time"),
    ("max_tokens", "Max tokens", "Stop the reply after this many tokens"),
    ("stop", "Stop strings", f"Strings that end the reply, separated by {STOP_SEPARATOR}"),
)

PRESET_PROMPT = "Fill from a preset…"


def _shown(name: str, value: Any) -> str:
    """A value as the dialog writes it."""
    if name == "seed":
        return "random" if value is None else str(value)
    if name == "stop":
        return STOP_SEPARATOR.join(value) if value else "none"
    return f"{value:g}" if isinstance(value, float) else str(value)


class ConversationSettingsDialog(QDialog):
    """Edits one conversation's sampling overrides and system prompt.

    Signals:
        presets_changed(object): the user saved a preset; carries the user's presets
            (list[PromptPreset]) to store in the GUI settings.
    """

    presets_changed = Signal(object)

    def __init__(
        self,
        *,
        title: str,
        defaults: SamplingSettings,
        overrides: Mapping[str, Any],
        system_prompt: str,
        user_presets: Sequence[PromptPreset],
        problem: str = "",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Conversation settings")
        self.setAccessibleName("Conversation settings")
        self.setMinimumWidth(560)
        self.defaults = defaults
        self.user_presets = list(user_presets)
        self.checks: dict[str, QCheckBox] = {}
        self.editors: dict[str, QWidget] = {}
        self.default_labels: dict[str, QLabel] = {}

        intro = QLabel(
            f"Settings for “{title}”. Checked values are kept with this conversation; "
            "unchecked ones follow the global defaults (File > Settings…)."
        )
        intro.setWordWrap(True)

        sampling_box = QGroupBox("Sampling")
        grid = QGridLayout(sampling_box)
        grid.addWidget(QLabel("<b>Override</b>"), 0, 0)
        grid.addWidget(QLabel("<b>This conversation</b>"), 0, 1)
        grid.addWidget(QLabel("<b>Global default</b>"), 0, 2)
        for line, (name, label, tip) in enumerate(_FIELDS, start=1):
            check = with_tip(
                QCheckBox(label), f"Override {label}", f"{tip}. Unchecked: the default"
            )
            editor = with_tip(self._editor(name, defaults), label, tip)
            default = QLabel(_shown(name, getattr(defaults, name)))
            default.setAccessibleName(f"Default {label}")
            default.setEnabled(False)  # greyed: it is the value in use only when unchecked
            check.toggled.connect(editor.setEnabled)
            editor.setEnabled(False)
            if name in overrides:
                self._set_editor(name, editor, overrides[name])
                check.setChecked(True)
            self.checks[name], self.editors[name], self.default_labels[name] = (
                check,
                editor,
                default,
            )
            grid.addWidget(check, line, 0)
            grid.addWidget(editor, line, 1)
            grid.addWidget(default, line, 2)
        grid.setColumnStretch(1, 1)
        self.reset_button = QPushButton("Use all defaults")
        self.reset_button.setAccessibleName("Use all defaults")
        self.reset_button.setToolTip(
            "Uncheck every override: the conversation follows the defaults"
        )
        self.reset_button.clicked.connect(self.use_all_defaults)
        grid.addLayout(row(None, self.reset_button), len(_FIELDS) + 1, 0, 1, 3)

        prompt_box = QGroupBox("System prompt")
        self.presets = QComboBox()
        self.presets.setAccessibleName("System prompt preset")
        self.presets.setToolTip("Put a preset's text in the system prompt below")
        self._fill_presets()
        self.presets.activated.connect(self._on_presets_activated)
        self.system_prompt = QPlainTextEdit(system_prompt)
        self.system_prompt.setAccessibleName("System prompt")
        self.system_prompt.setPlaceholderText("No system prompt: the model's own default")
        self.system_prompt.setToolTip("Sent before the conversation with every turn")
        self.system_prompt.setFixedHeight(90)
        self.save_preset_button = QPushButton("Save current as preset…")
        self.save_preset_button.setAccessibleName("Save current as preset")
        self.save_preset_button.setToolTip("Keep this system prompt under a name of your choice")
        self.save_preset_button.clicked.connect(self._on_save_preset_clicked)
        prompt_layout = QVBoxLayout(prompt_box)
        prompt_layout.addLayout(row((self.presets, 1), self.save_preset_button))
        prompt_layout.addWidget(self.system_prompt)

        self.error = status_label("Conversation settings problem")
        self.error.setStyleSheet("color: #c0392b")
        self.error.setText(problem)
        self.error.setVisible(bool(problem))
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        for which, tip in (
            (QDialogButtonBox.StandardButton.Save, "Keep these settings with this conversation"),
            (QDialogButtonBox.StandardButton.Cancel, "Close without changing anything"),
        ):
            box_button = self.buttons.button(which)
            with_tip(box_button, box_button.text().replace("&", ""), tip)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(sampling_box)
        layout.addWidget(prompt_box)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)

    # ---- editors --------------------------------------------------------------------------
    @staticmethod
    def _editor(name: str, defaults: SamplingSettings) -> QWidget:
        value = getattr(defaults, name)
        if name == "temperature":
            return double_spin_box(0, 10, value, 2, 0.05)
        if name in ("top_p", "min_p"):
            return double_spin_box(0, 1, value, 3, 0.01)
        if name == "repeat_penalty":
            return double_spin_box(0, 10, value, 2, 0.05)
        if name == "top_k":
            return spin_box(0, 100000, value)
        if name == "max_tokens":
            return spin_box(1, 1_000_000, value)
        if name == "seed":
            edit = QLineEdit("" if value is None else str(value))
        else:
            edit = QLineEdit(STOP_SEPARATOR.join(value))
        edit.setPlaceholderText("random" if name == "seed" else "none")
        return edit

    @staticmethod
    def _set_editor(name: str, editor: QWidget, value: Any) -> None:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if isinstance(editor, QDoubleSpinBox):
            if number:
                editor.setValue(float(value))
        elif isinstance(editor, QSpinBox):
            if number:
                editor.setValue(int(value))
        elif isinstance(editor, QLineEdit):
            if name == "stop" and isinstance(value, list | tuple):
                editor.setText(STOP_SEPARATOR.join(str(s) for s in value))
            else:
                editor.setText("" if value is None else str(value))

    def _value(self, name: str) -> Any:
        editor = self.editors[name]
        if isinstance(editor, QDoubleSpinBox):
            return round(editor.value(), 4)
        if isinstance(editor, QSpinBox):
            return editor.value()
        assert isinstance(editor, QLineEdit)
        text = editor.text().strip()
        if name == "seed":
            try:
                return int(text) if text else None
            except ValueError:
                raise SettingsError(f"seed must be a whole number or empty, got {text!r}") from None
        return [s.strip() for s in editor.text().split(STOP_SEPARATOR)] if text else []

    # ---- values ---------------------------------------------------------------------------
    def set_override(self, name: str, value: Any) -> None:
        """Check the field and put `value` in its editor (what a user's typing does)."""
        self._set_editor(name, self.editors[name], value)
        self.checks[name].setChecked(True)

    def use_all_defaults(self) -> None:
        for check in self.checks.values():
            check.setChecked(False)

    def overrides(self) -> dict[str, Any]:
        """The checked fields' values (not validated; SettingsError for an unreadable seed)."""
        return {name: self._value(name) for name, check in self.checks.items() if check.isChecked()}

    def prompt_text(self) -> str:
        return self.system_prompt.toPlainText()

    def accept(self) -> None:
        try:
            apply_overrides(self.defaults, self.overrides())
        except SettingsError as exc:
            self.error.setText(str(exc))
            self.error.setVisible(True)
            return
        super().accept()

    # ---- presets --------------------------------------------------------------------------
    def _fill_presets(self) -> None:
        self.presets.clear()
        self.presets.addItem(PRESET_PROMPT, None)
        for preset in all_presets(self.user_presets):
            label = preset.name if preset.builtin else f"{preset.name} (saved)"
            self.presets.addItem(label, preset)
            self.presets.setItemData(
                self.presets.count() - 1, preset.text, Qt.ItemDataRole.ToolTipRole
            )

    def preset_names(self) -> list[str]:
        return [p.name for p in all_presets(self.user_presets)]

    def apply_preset(self, name: str) -> None:
        """Put the named preset's text in the system prompt."""
        for preset in all_presets(self.user_presets):
            if preset.name == name:
                self.system_prompt.setPlainText(preset.text)
                return
        raise KeyError(name)

    def _on_presets_activated(self, index: int) -> None:
        preset = self.presets.itemData(index)
        if isinstance(preset, PromptPreset):
            self.system_prompt.setPlainText(preset.text)
        self.presets.setCurrentIndex(0)

    def save_preset(self, name: str) -> bool:
        """Save the current system prompt as preset `name`; False (and the reason shown)
        when it cannot be."""
        try:
            self.user_presets = with_user_preset(self.user_presets, name, self.prompt_text())
        except SettingsError as exc:
            self.error.setText(str(exc))
            self.error.setVisible(True)
            return False
        self.error.setVisible(False)
        self._fill_presets()
        self.presets_changed.emit(list(self.user_presets))
        return True

    def _on_save_preset_clicked(self) -> None:
        name, ok = QInputDialog.getText(self, "Save preset", "Name for this system prompt:")
        if ok:
            self.save_preset(name)
