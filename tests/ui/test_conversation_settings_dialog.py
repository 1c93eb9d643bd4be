"""Edit > Conversation settings…: an override set in the dialog is stored with the
conversation and used by its next turn (FakeEngine, real store); another
conversation keeps the global defaults; presets fill the system prompt and saved
ones reach the GUI settings file."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PySide6.QtWidgets import QDialogButtonBox, QPlainTextEdit

from app.conversation_settings import BUILTIN_PRESETS, PromptPreset
from app.engine.fake import FakeEngine
from app.gui_settings import GuiSettings
from app.settings import SamplingSettings
from tests.ui.conftest import open_window
from ui.dialogs.conversation_settings import ConversationSettingsDialog

TIMEOUT = 10_000
DEFAULTS = SamplingSettings(temperature=0.0, max_tokens=1000)


@pytest.fixture
def fake_window(qtbot, glassbox_home) -> Iterator:
    engine = FakeEngine(token_interval_s=0.002)
    win = open_window(qtbot, "fake.gguf", DEFAULTS, engine, n_threads=1, timeout_ms=TIMEOUT)
    yield win
    win.close()


def _open_dialog(qtbot, win) -> ConversationSettingsDialog:
    with qtbot.waitSignal(win.conversation_settings.dialog_opened, timeout=TIMEOUT) as opened:
        win.conversation_settings.action.trigger()  # the Edit menu's entry
    dialog = opened.args[0]
    assert isinstance(dialog, ConversationSettingsDialog) and dialog.isVisible()
    return dialog


def _save(qtbot, win, dialog: ConversationSettingsDialog) -> None:
    with qtbot.waitSignal(win.conversation_settings.settings_saved, timeout=TIMEOUT):
        dialog.buttons.button(QDialogButtonBox.StandardButton.Save).click()


def _send_and_wait(qtbot, win, text: str):
    cid = win.controller.conversation_id
    with qtbot.waitSignal(win.controller.reply_stored, timeout=TIMEOUT):
        win.controller.send(text)
    qtbot.waitUntil(lambda: not win.controller.busy(), timeout=TIMEOUT)
    return win.store.messages(cid)[-1]


def test_an_override_set_in_the_dialog_is_used_by_that_conversation_only(qtbot, fake_window):
    win = fake_window
    tuned = win.controller.conversation_id
    dialog = _open_dialog(qtbot, win)
    # Nothing overridden yet: every field unchecked, its default shown beside it.
    assert not any(check.isChecked() for check in dialog.checks.values())
    assert dialog.default_labels["max_tokens"].text() == "1000"
    assert dialog.default_labels["seed"].text() == "random"
    assert [p.name for p in BUILTIN_PRESETS] == dialog.preset_names()

    dialog.set_override("temperature", 0.9)
    dialog.set_override("max_tokens", 3)
    dialog.apply_preset("Concise")
    _save(qtbot, win, dialog)
    concise = next(p.text for p in BUILTIN_PRESETS if p.name == "Concise")
    assert win.store.sampling_overrides(tuned) == {"temperature": 0.9, "max_tokens": 3}
    assert win.store.get_conversation(tuned).system_prompt == concise
    qtbot.waitUntil(lambda: win.chat.system_prompt.text() == concise, timeout=TIMEOUT)

    reply = _send_and_wait(qtbot, win, "hello there from a tuned chat")
    assert reply.role == "assistant"
    assert reply.sampling_settings["temperature"] == 0.9
    assert reply.sampling_settings["max_tokens"] == 3
    assert reply.stop_reason == "length" and reply.metrics.output_tokens == 3
    assert reply.sampling_settings["top_k"] == DEFAULTS.top_k  # not overridden

    # Another conversation still uses the global defaults.
    with qtbot.waitSignal(win.controller.conversation_opened, timeout=TIMEOUT):
        win.controller.new_conversation()
    plain = win.controller.conversation_id
    assert plain != tuned
    reply = _send_and_wait(qtbot, win, "hello there")
    assert reply.sampling_settings["temperature"] == 0.0
    assert reply.sampling_settings["max_tokens"] == 1000
    assert reply.stop_reason == "eos"

    # Back in the tuned one, the dialog shows its overrides checked; "Use all defaults" clears them.
    with qtbot.waitSignal(win.controller.conversation_opened, timeout=TIMEOUT):
        win.controller.open_conversation(tuned)
    dialog = _open_dialog(qtbot, win)
    assert {n for n, c in dialog.checks.items() if c.isChecked()} == {"temperature", "max_tokens"}
    assert dialog.editors["max_tokens"].value() == 3 and dialog.editors["max_tokens"].isEnabled()
    dialog.use_all_defaults()
    assert not dialog.editors["max_tokens"].isEnabled()
    _save(qtbot, win, dialog)
    assert win.store.sampling_overrides(tuned) is None
    assert _send_and_wait(qtbot, win, "again").sampling_settings["max_tokens"] == 1000


def test_an_invalid_value_keeps_the_dialog_open_with_the_reason(qtbot, fake_window):
    win = fake_window
    dialog = _open_dialog(qtbot, win)
    dialog.set_override("seed", "lucky")
    dialog.buttons.button(QDialogButtonBox.StandardButton.Save).click()
    assert dialog.isVisible() and "seed must be a whole number" in dialog.error.text()
    dialog.set_override("stop", ["###", ""])
    dialog.set_override("seed", 7)
    dialog.buttons.button(QDialogButtonBox.StandardButton.Save).click()
    assert dialog.isVisible() and "stop strings must not be empty" in dialog.error.text()
    dialog.reject()
    assert win.store.sampling_overrides(win.controller.conversation_id) is None


def test_invalid_stored_overrides_fail_the_send_with_a_reason(qtbot, fake_window):
    win = fake_window
    cid = win.controller.conversation_id
    # As a hand edit of the file would: one bad value, one good.
    win.store.set_sampling_overrides(cid, {"top_p": 3.5, "top_k": 5})
    win.controller.send("hello")
    qtbot.waitUntil(lambda: not win.controller.busy(), timeout=TIMEOUT)
    replies = [w for w in win.chat.message_widgets() if w.role == "assistant"]
    assert "not sent" in replies[-1].status() and "top-p must be in (0, 1]" in replies[-1].status()
    assert win.store.messages(cid) == []
    # The dialog opens on it, says what was wrong, and saving replaces it.
    dialog = _open_dialog(qtbot, win)
    assert not dialog.error.isHidden() and "Save replaces them" in dialog.error.text()
    assert "top-p must be in (0, 1]" in dialog.error.text()
    assert {n for n, c in dialog.checks.items() if c.isChecked()} == {"top_k"}
    _save(qtbot, win, dialog)
    assert win.store.sampling_overrides(cid) == {"top_k": 5}


def test_a_saved_preset_is_offered_again_and_kept_in_the_settings_file(qtbot, fake_window):
    win = fake_window
    dialog = _open_dialog(qtbot, win)
    dialog.system_prompt.setPlainText("Answer like a ship's captain.")
    assert not dialog.save_preset("Concise")  # a built-in's name
    assert "built-in" in dialog.error.text()
    assert dialog.save_preset("Captain")
    assert dialog.preset_names()[-1] == "Captain"
    assert dialog.presets.itemText(dialog.presets.count() - 1) == "Captain (saved)"
    qtbot.waitUntil(
        lambda: (
            GuiSettings.load().prompt_presets
            == [PromptPreset("Captain", "Answer like a ship's captain.")]
        ),
        timeout=TIMEOUT,
    )
    dialog.reject()
    # A new dialog offers it; choosing it fills the system prompt.
    dialog = _open_dialog(qtbot, win)
    dialog.system_prompt.setPlainText("")
    dialog.presets.activated.emit(dialog.presets.count() - 1)
    assert dialog.prompt_text() == "Answer like a ship's captain."
    assert dialog.presets.currentIndex() == 0  # back to "Fill from a preset…"
    dialog.reject()


def test_every_control_has_a_name_and_a_tooltip(qtbot, fake_window):
    from PySide6.QtWidgets import QAbstractButton, QAbstractSpinBox, QComboBox, QLineEdit

    dialog = _open_dialog(qtbot, fake_window)
    kinds = (QAbstractButton, QLineEdit, QPlainTextEdit, QAbstractSpinBox, QComboBox)
    controls = [
        w
        for kind in kinds
        for w in dialog.findChildren(kind)
        if not isinstance(w.parent(), QAbstractSpinBox | QComboBox)  # Qt's own parts
    ]
    assert len(controls) > 20
    missing = [type(w).__name__ for w in controls if not (w.accessibleName() and w.toolTip())]
    dialog.reject()
    assert not missing, missing
