"""The model dropdown above the chat (issue 10, item 8) and where keyboard focus starts
(item 15), on the real window and engine."""

from __future__ import annotations

import shutil

from PySide6.QtCore import QPoint
from PySide6.QtWidgets import QApplication

TIMEOUT = 60_000


def test_focus_starts_in_the_message_box(qtbot, window):
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is not None, timeout=5000)
    assert window.focusWidget() is window.chat.input
    assert QApplication.focusWidget() is window.chat.input


def test_picker_lists_local_models_with_fit_and_switches_the_loaded_one(
    qtbot, window, model_path, tmp_path
):
    picker = window.model_picker
    # Above the chat, in the window's chrome (not inside the chat view).
    assert not window.chat.isAncestorOf(picker)
    assert picker.mapTo(window, QPoint(0, 0)).y() < window.chat.mapTo(window, QPoint(0, 0)).y()
    qtbot.waitUntil(lambda: model_path in picker.paths(), timeout=TIMEOUT)
    assert picker.combo.currentData() == model_path  # the loaded one is selected
    text = picker.combo.currentText()
    assert "Q4_1" in text and any(v in text for v in ("fits", "tight", "won't"))

    folder = tmp_path / "more-models"
    folder.mkdir()
    copy = folder / "second-model.gguf"
    shutil.copy(model_path, copy)
    dialog = window.open_models_dialog()
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.loaded_row() is not None, timeout=TIMEOUT)
    assert dialog.library_table.item(dialog.loaded_row(), 0).text().endswith("(loaded)")
    with qtbot.waitSignal(picker.models_listed, timeout=TIMEOUT):
        dialog.add_folder(str(folder))  # the dropdown lists what the library gained
    dialog.close()
    assert str(copy) in picker.paths()

    index = picker.paths().index(str(copy))
    assert picker.loaded_path() == model_path
    with qtbot.waitSignal(window.controller.model_ready, timeout=TIMEOUT) as loaded:
        picker.combo.setCurrentIndex(index)
        picker.combo.activated.emit(index)  # what a user's choice in the list sends
    assert loaded.args[0].model_path == str(copy)
    assert picker.combo.currentData() == str(copy) and picker.loaded_path() == str(copy)
    assert window.engine.model_info.model_path == str(copy)


def test_picker_label_names_the_quantization_once(bundled_model):
    from app.models.gguf_file import read_gguf_info
    from app.models.library import ModelEntry
    from ui.chrome.model_picker import picker_label

    entry = ModelEntry(bundled_model, "bundled", info=read_gguf_info(bundled_model))
    label = picker_label(entry, "fits")
    assert label.count("Q4_1") == 1 and label.endswith("fits")
