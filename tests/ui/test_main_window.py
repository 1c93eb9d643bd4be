"""The real window on the real engine and bundled model: send, queue, stop, crash, reopen, settings."""

from __future__ import annotations

import os
import signal

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractSlider,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QLineEdit,
    QPlainTextEdit,
    QScrollBar,
    QTabBar,
)

from app.settings import SamplingSettings

TIMEOUT = 60_000


def send_and_wait(qtbot, win, text: str):
    with qtbot.waitSignal(win.controller.turns_reloaded, timeout=TIMEOUT):
        win.controller.send(text)
    return win.store.turn_metrics(win.controller.conversation_id)


def test_send_shows_reply_and_plots_match_stored_metrics(qtbot, window):
    stored = send_and_wait(qtbot, window, "Say hello.")
    stored = send_and_wait(qtbot, window, "Say it again.")
    assert len(stored) == 2
    replies = [w for w in window.chat.message_widgets() if w.role == "assistant"]
    assert [w.message_id for w in replies] == [mid for mid, _m in stored]
    assert all(w.text() and not w.partial for w in replies)
    assert window.panel.turns() == stored
    window.panel.flush()
    _xs, ys = window.panel.rate_plot.decode.getData()
    assert list(ys) == [m.decode_tok_s for _mid, m in stored]
    assert list(window.panel.kv_plot.cached.opts["height"]) == [
        m.prompt_tokens_cached for _mid, m in stored
    ]
    assert stored[1][1].prompt_tokens_cached > 0
    assert window.status.state() == "ready"
    assert "n_ctx" in window.status.ctx_label.text()


def test_two_quick_sends_queue_and_show_that_they_wait(qtbot, window):
    window.settings.sampling = SamplingSettings(temperature=0.0, seed=1, max_tokens=48)
    window.controller.send("Count from one to twenty.")
    with qtbot.waitSignal(window.bridge.turn_started, timeout=TIMEOUT):
        pass
    window.controller.send("And back down.")
    qtbot.waitUntil(lambda: "queued" in window.chat.message_widgets()[-1].status(), timeout=10_000)
    qtbot.waitUntil(
        lambda: len(window.panel.turns()) == 2 and not window.controller.busy(), timeout=TIMEOUT
    )
    turns = window.store.turn_metrics(window.controller.conversation_id)
    assert len(turns) == 2 and turns[1][1].queue_ms > 1.0


def test_stop_mid_stream_keeps_a_partial_reply(qtbot, window):
    window.settings.sampling = SamplingSettings(temperature=0.7, seed=1, max_tokens=400)
    window.controller.send("Write a long story about a lighthouse keeper.")
    qtbot.waitUntil(lambda: window.panel.live_token_count() >= 5, timeout=TIMEOUT)
    with qtbot.waitSignal(window.controller.reply_finished, timeout=5000) as blocker:
        qtbot.keyClick(window, Qt.Key.Key_Escape)
    metrics = blocker.args[0].metrics
    assert metrics.stop_reason == "cancelled" and metrics.output_tokens < 400
    reply = window.chat.message_widgets()[-1]
    assert reply.partial and "cancelled" in reply.status()
    qtbot.waitUntil(
        lambda: window.store.messages(window.controller.conversation_id)[-1].partial, timeout=5000
    )


def test_worker_sigkill_shows_banner_keeps_partial_and_restart_works(qtbot, window):
    window.settings.sampling = SamplingSettings(temperature=0.7, seed=1, max_tokens=400)
    window.controller.send("Write a long story about a dragon.")
    qtbot.waitUntil(lambda: window.panel.live_token_count() >= 5, timeout=TIMEOUT)
    with qtbot.waitSignal(window.bridge.engine_crashed, timeout=5000):
        os.kill(window.engine.worker_pid, signal.SIGKILL)
    qtbot.waitUntil(lambda: not window.controller.busy(), timeout=5000)
    assert window.isVisible() and window.banner.isVisible()
    assert "SIGKILL" in window.banner.title.text()
    assert window.status.state() == "crashed"
    reply = window.chat.message_widgets()[-1]
    assert reply.partial and "engine crashed" in reply.status()
    qtbot.waitUntil(
        lambda: window.store.messages(window.controller.conversation_id)[-1].partial, timeout=5000
    )
    with qtbot.waitSignal(window.controller.model_ready, timeout=TIMEOUT):
        window.banner.restart_button.click()
    assert not window.banner.isVisible()
    window.settings.sampling = SamplingSettings(temperature=0.0, seed=1, max_tokens=16)
    send_and_wait(qtbot, window, "Are you back?")


def test_reopening_a_conversation_redraws_its_plots(qtbot, window):
    first = window.controller.conversation_id
    send_and_wait(qtbot, window, "Hi there.")
    send_and_wait(qtbot, window, "What is 2+2?")
    with qtbot.waitSignal(window.controller.conversation_opened, timeout=10_000):
        window.controller.new_conversation()
    assert window.panel.turns() == [] and window.chat.message_widgets() == []
    qtbot.waitUntil(lambda: window.conversations.model.rowCount() == 2, timeout=5000)
    with qtbot.waitSignal(window.controller.conversation_opened, timeout=10_000):
        window.conversations.view.setCurrentIndex(
            window.conversations.model.index(window.conversations.model.row_of(first))
        )
    assert (
        window.panel.turns() == window.store.turn_metrics(first) and len(window.panel.turns()) == 2
    )
    # The bubbles are built newest first in time slices (ui/chat/chat_view.py).
    qtbot.waitUntil(lambda: len(window.chat.message_widgets()) == 4, timeout=5000)
    reply_id = window.panel.turns()[0][0]
    window.panel.turn_clicked.emit(reply_id)  # as a click on a point does
    assert [w.is_selected() for w in window.chat.message_widgets()] == [False, True, False, False]


def test_conversations_new_rename_delete_undo_search(qtbot, window, qtmodeltester):
    send_and_wait(qtbot, window, "Tell me about penguins.")
    with qtbot.waitSignal(window.controller.conversation_opened, timeout=10_000):
        qtbot.keyClick(window, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    model = window.conversations.model
    qtbot.waitUntil(lambda: model.rowCount() == 2, timeout=5000)
    qtmodeltester.check(model, force_py=True)
    new_id = window.controller.conversation_id
    model.setData(model.index(model.row_of(new_id)), "Empty one")
    qtbot.waitUntil(
        lambda: window.store.get_conversation(new_id).title == "Empty one", timeout=5000
    )
    window.conversations.search.setText("penguin")
    qtbot.waitUntil(lambda: model.rowCount() == 1, timeout=5000)
    window.conversations.search.setText("")
    qtbot.waitUntil(lambda: model.rowCount() == 2, timeout=5000)
    window.conversations.select(new_id)
    window.conversations.delete_button.click()
    qtbot.waitUntil(
        lambda: window.conversations.undo_bar.isVisible() and model.rowCount() == 1, timeout=5000
    )
    assert window.store.get_conversation(new_id).deleted_at is not None
    window.conversations.undo_button.click()
    qtbot.waitUntil(lambda: model.rowCount() == 2, timeout=5000)
    assert window.store.get_conversation(new_id).deleted_at is None


def test_no_event_loop_stall_while_streaming_and_loading(qtbot, window, heartbeat):
    window.settings.sampling = SamplingSettings(temperature=0.7, seed=2, max_tokens=200)
    with heartbeat:
        with qtbot.waitSignal(window.controller.turns_reloaded, timeout=TIMEOUT):
            window.controller.send("Write a long poem about the sea.")
        qtbot.wait(400)  # the end-of-turn redraw of every plot belongs to streaming too
    streamed = window.store.turn_metrics(window.controller.conversation_id)[-1][1]
    assert streamed.output_tokens >= 20
    assert heartbeat.max_gap_ms < 50, (
        f"event loop stalled {heartbeat.max_gap_ms:.0f} ms while streaming"
    )
    with heartbeat, qtbot.waitSignal(window.controller.model_ready, timeout=TIMEOUT) as blocker:
        window.controller.apply_settings(
            window.settings.runtime.with_changes(n_ctx=2048), window.settings.sampling
        )
    assert blocker.args[0].n_ctx == 2048
    assert heartbeat.max_gap_ms < 50, (
        f"event loop stalled {heartbeat.max_gap_ms:.0f} ms while loading"
    )


def test_settings_reload_the_model_and_persist(qtbot, window):
    from app.gui_settings import GuiSettings

    dialog = window.open_settings()
    supported = window.engine.model_info.gpu_offload_supported
    assert dialog.runtime_form.gpu_layers.isEnabled() == supported
    dialog.runtime_form.n_ctx.setValue(1024)
    dialog.sampling_form.temperature.setValue(0.3)
    with qtbot.waitSignal(window.controller.model_ready, timeout=TIMEOUT) as blocker:
        dialog.ok_button.click()
    assert blocker.args[0].n_ctx == 1024 and "1024" in window.status.ctx_label.text()
    qtbot.waitUntil(lambda: GuiSettings.load().runtime.n_ctx == 1024, timeout=5000)
    assert GuiSettings.load().sampling.temperature == 0.3


def test_bad_model_file_shows_the_error_and_keeps_the_previous_model(qtbot, window, tmp_path):
    from ui.infra.error_dialog import open_error_dialogs

    before = window.engine.model_info
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 20)
    with qtbot.waitSignal(window.bridge.engine_error, timeout=TIMEOUT):
        window.controller.load_model(str(bad))
    qtbot.waitUntil(lambda: bool(open_error_dialogs()), timeout=5000)
    assert "previous model" in open_error_dialogs()[-1].text()
    assert window.engine.model_info is before
    for box in open_error_dialogs():
        box.close()
    send_and_wait(qtbot, window, "Still there?")


def test_keyboard_shortcuts_and_accessible_names(qtbot, window):
    window.activateWindow()
    window.chat.system_prompt.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: QApplication.focusWidget() is window.chat.input, timeout=2000)
    dialog = window.open_settings()
    kinds = (
        QAbstractButton,
        QLineEdit,
        QPlainTextEdit,
        QAbstractSlider,
        QAbstractSpinBox,
        QComboBox,
    )
    missing = []
    for root in (window, dialog):
        for widget in (w for kind in kinds for w in root.findChildren(kind)):
            if widget.window() is not root or widget.parent() is None:
                continue
            if type(widget).__module__.startswith("pyqtgraph") or widget.objectName().startswith(
                "qt_"
            ):
                continue
            if isinstance(widget, QScrollBar) or isinstance(
                widget.parent(), QAbstractSpinBox | QComboBox | QLineEdit | QTabBar
            ):
                continue  # Qt's own parts (scroll bars, clear and tab-scroll buttons), named by their owner
            if not widget.accessibleName() or not widget.toolTip():
                missing.append(
                    f"{type(widget).__name__} {widget.objectName()!r} in {type(widget.parent()).__name__}"
                )
    dialog.reject()
    assert not missing, missing


def test_models_dialog_loads_the_chosen_model(qtbot, window, model_path, tmp_path):
    # A second copy in a user folder, so choosing it really switches models.
    import shutil

    folder = tmp_path / "more-models"
    folder.mkdir()
    copy = folder / "copy-of-smollm2.gguf"
    shutil.copy(model_path, copy)
    window.settings.runtime = window.settings.runtime.with_changes(n_ctx=1024)
    dialog = window.open_models_dialog()
    qtbot.addWidget(dialog)
    with qtbot.waitSignal(dialog.library_loaded, timeout=TIMEOUT):
        dialog.add_folder(str(folder))
    assert dialog.ctx_spin.value() == 1024  # verdicts are for the user's context size
    assert dialog.select_path(copy)
    window.grab().save(str(tmp_path / "models.png"))
    with qtbot.waitSignal(window.controller.model_ready, timeout=TIMEOUT) as loaded:
        dialog.use_button.click()
    assert loaded.args[0].model_path == str(copy)
    assert window.engine.model_info.model_path == str(copy)
    assert send_and_wait(qtbot, window, "Hello?")[-1][1].output_tokens > 0


def test_leaving_and_reopening_a_conversation_while_it_streams(qtbot, window):
    window.settings.sampling = SamplingSettings(temperature=0.0, seed=1, max_tokens=300)
    first = window.controller.conversation_id
    with qtbot.waitSignal(window.bridge.tokens_received, timeout=TIMEOUT):
        window.controller.send("Write a long story about a dragon.")
    with qtbot.waitSignal(window.controller.conversation_opened, timeout=10_000):
        window.controller.new_conversation()
    with qtbot.waitSignal(window.controller.conversation_opened, timeout=10_000):
        window.controller.open_conversation(first)
    reply = [w for w in window.chat.message_widgets() if w.role == "assistant"][-1]
    seen_while_streaming = reply.text()
    # Wait on the stored row, not on a signal: on a slow machine the reply may end
    # before the reopen, and then no reload follows it.
    qtbot.waitUntil(lambda: not window.store.messages(first)[-1].partial, timeout=TIMEOUT)
    stored = window.store.messages(first)[-1]
    assert stored.role == "assistant" and not stored.partial
    # The bubble kept streaming after the reopen and ends with the stored reply: the
    # text read from the session and the tokens still on their way, none twice.
    qtbot.waitUntil(lambda: reply.text() == stored.content, timeout=10_000)
    assert len(stored.content) > len(seen_while_streaming)
    assert not reply.partial


def test_status_bar_shows_memory_estimate_next_to_llama_cpp(qtbot, window):
    label = window.status.memory_label
    qtbot.waitUntil(lambda: label.text().startswith("mem "), timeout=10_000)
    tip = label.toolTip()
    assert "estimated" in tip and "llama.cpp" in tip and "KV cache" in tip
