"""View tests fed with synthetic events and metrics (no engine): plots, chat, list model, dialogs."""

from __future__ import annotations

import sys
import threading

import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication

from app.engine import events as ev
from app.metrics import FIELD_NAMES, TurnMetrics


def metrics(i: int) -> TurnMetrics:
    prompt, cached = 40 + 100 * i, 100 * i
    return TurnMetrics(
        queue_ms=3.0 + i,
        ttft_ms=120.0 + 10 * i,
        prefill_ms=100.0,
        prompt_tokens=prompt,
        prompt_tokens_cached=cached,
        prompt_tokens_evaluated=prompt - cached,
        prefill_tok_s=300.0 - i,
        output_tokens=50,
        decode_ms=400.0,
        decode_tok_s=120.0 + i,
        itl_ms_p50=8.0,
        itl_ms_p95=9.0,
        itl_ms_p99=11.0,
        kv_cells_used=prompt + 50,
        kv_cells_total=4096,
        kv_fill=(prompt + 50) / 4096,
        kv_bytes_used=(prompt + 50) * 1000,
        kv_bytes_total=4096 * 1000,
        stop_reason="eos",
        total_ms=600.0,
    )


@pytest.fixture
def panel(qtbot):
    from ui.internals.panel import InternalsPanel

    widget = InternalsPanel()
    qtbot.addWidget(widget)
    widget.resize(560, 900)
    widget.show()
    return widget


def test_panel_plots_one_point_per_turn_with_queue_and_kv_split(panel):
    turns = [(10 + i, metrics(i)) for i in range(3)]
    panel.set_turns(turns)
    panel.flush()
    ttft = panel.ttft_plot
    assert list(ttft.queue_bars.opts["height"]) == [m.queue_ms for _, m in turns]
    assert list(ttft.prefill_bars.opts["height"]) == [m.ttft_ms - m.queue_ms for _, m in turns]
    xs, ys = panel.rate_plot.decode.getData()
    assert list(xs) == [1, 2, 3] and list(ys) == [m.decode_tok_s for _, m in turns]
    assert list(panel.rate_plot.prefill.getData()[1]) == [m.prefill_tok_s for _, m in turns]
    kv = panel.kv_plot
    assert list(kv.cached.opts["height"]) == [m.prompt_tokens_cached for _, m in turns]
    assert list(kv.evaluated.opts["height"]) == [m.prompt_tokens_evaluated for _, m in turns]
    assert list(kv.output.opts["height"]) == [50.0, 50.0, 50.0]
    assert kv.mib_axis.bytes_per_cell == 1000
    assert "/4096 cells" in kv.plotItem.titleLabel.text
    assert "TTFT" in panel.readout_text() and "eos" in panel.readout_text()


def test_live_strip_is_buffered_and_redrawn_by_the_timer_not_per_token(panel, qtbot):
    panel.begin_live(
        ev.TurnStarted(t_ns=1_000_000, queue_ms=2, prompt_tokens=30, prompt_tokens_cached=0)
    )
    before = panel.redraw_count
    for i in range(300):
        panel.add_token(1_000_000 + (i + 1) * 8_000_000)
    assert panel.redraw_count == before  # nothing drawn until the timer runs
    qtbot.waitUntil(
        lambda: len(panel.tokens_plot.points()[0]) == 300,
        timeout=2000,
    )
    # The begin_live frame, then each live plot once (one a frame while streaming).
    qtbot.waitUntil(
        lambda: len(panel.itl_plot.points()[1]) == 299,
        timeout=2000,
    )
    assert panel.redraw_count - before <= 3
    _xs, ys = panel.itl_plot.points()
    assert len(ys) == 299 and all(abs(y - 8.0) < 1e-9 for y in ys)
    assert "decode" in panel.readout_text()


def test_hover_shows_every_metric_and_click_emits_the_message_id(panel, qtbot):
    panel.set_turns([(10 + i, metrics(i)) for i in range(3)])
    panel.flush()
    plot = panel.rate_plot
    vb = plot.plotItem.getViewBox()
    scene_pos = vb.mapViewToScene(QPointF(2, vb.viewRange()[1][1] / 2))
    plot.scene().sigMouseMoved.emit(scene_pos)
    from app.metrics_columns import COLUMNS

    for name in FIELD_NAMES:  # every field, by the readout's label (not its snake_case name)
        assert f"<td>{COLUMNS[name].label}&nbsp;</td>" in panel.last_hover_text
    assert "Turn 2" in panel.last_hover_text

    class Click:
        def scenePos(self):  # noqa: N802 - pyqtgraph's event API
            return scene_pos

    with qtbot.waitSignal(panel.turn_clicked) as blocker:
        panel._on_plot_mouse_clicked(plot, Click())
    assert blocker.args == [11]
    assert plot.highlight.isVisible() and plot.highlight.getRegion()[0] == pytest.approx(1.55)


def test_selecting_a_message_highlights_its_points(panel):
    panel.set_turns([(10 + i, metrics(i)) for i in range(3)])
    assert panel.highlight_message(12) == 3
    assert all(p.highlight.isVisible() for p in panel.turn_plots())
    assert panel.highlight_message(999) is None
    assert not any(p.highlight.isVisible() for p in panel.turn_plots())


def test_chat_enter_sends_and_shift_enter_adds_a_line(qtbot):
    from ui.chat.chat_view import ChatView

    chat = ChatView()
    qtbot.addWidget(chat)
    chat.show()
    qtbot.keyClicks(chat.input, "hello")
    qtbot.keyClick(chat.input, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClicks(chat.input, "world")
    with qtbot.waitSignal(chat.send_requested) as blocker:
        qtbot.keyClick(chat.input, Qt.Key.Key_Return)
    assert blocker.args == ["hello\nworld"]
    assert chat.input.toPlainText() == ""


def test_chat_streams_marks_partial_copies_and_edits(qtbot):
    from types import SimpleNamespace

    from ui.chat.chat_view import ChatView

    chat = ChatView()
    qtbot.addWidget(chat)
    chat.resize(600, 500)
    chat.show()
    chat.show_messages(
        [SimpleNamespace(id=1, role="user", content="hi", partial=False, stop_reason=None)]
    )
    key = object()
    reply = chat.add_request(key, "tell me")
    chat.set_turn_status(key, "⏳ queued: waiting for 1 request ahead")
    assert "queued" in reply.status()
    for piece in ["Hel", "lo ", "**there**"]:
        chat.append_reply_text(key, piece)
    qtbot.waitUntil(lambda: reply.text() == "Hello **there**", timeout=1000)
    chat.finish_turn(key, None, partial=True, reason="cancelled")
    assert reply.partial and "partial" in reply.status()
    reply._copy_button.click()
    assert QGuiApplication.clipboard().text() == "Hello **there**"
    chat.begin_edit_last()
    assert chat.is_editing() and chat.input.toPlainText() == "tell me"
    with qtbot.waitSignal(chat.edit_resend_requested) as blocker:
        qtbot.keyClick(chat.input, Qt.Key.Key_Return)
    assert blocker.args == ["tell me"] and not chat.is_editing()


def test_code_blocks_are_highlighted(qtbot):
    from ui.chat.markdown_view import MessageBody, code_language

    body = MessageBody()
    qtbot.addWidget(body)
    body.set_markdown("Code:\n\n```python\ndef f(x):\n    return x\n```\n")
    block = body.document().begin()
    coloured = False
    while block.isValid():
        if code_language(block.blockFormat()) == "python":
            coloured |= any(
                r.format.foreground().color().name() != "#000000" for r in block.layout().formats()
            )
        block = block.next()
    assert coloured


def test_conversation_list_model(qtmodeltester, qtbot):
    from types import SimpleNamespace

    from ui.chat.conversation_list import ConversationIdRole, ConversationListModel

    model = ConversationListModel()
    rows = [
        SimpleNamespace(id=i, title=f"chat {i}", updated_at=1_700_000_000.0 + i) for i in range(5)
    ]
    model.set_conversations(rows)
    qtmodeltester.check(model, force_py=True)
    assert model.data(model.index(2), ConversationIdRole) == 2
    with qtbot.waitSignal(model.rename_requested) as blocker:
        assert model.setData(model.index(1), "renamed")
    assert blocker.args == [1, "renamed"]
    model.remove_conversation(3)
    assert model.rowCount() == 4
    qtmodeltester.check(model, force_py=True)


def test_settings_dialog_refuses_invalid_values_with_the_reason(qtbot):
    from app.settings import RuntimeSettings, SamplingSettings
    from ui.dialogs.settings import SettingsDialog

    dialog = SettingsDialog(
        RuntimeSettings(), SamplingSettings(), n_layers=30, gpu_offload_supported=False
    )
    qtbot.addWidget(dialog)
    runtime, sampling = dialog.runtime_form, dialog.sampling_form
    assert dialog.ok_button.isEnabled()
    runtime.n_ctx.setValue(0)
    assert not dialog.ok_button.isEnabled() and "n_ctx must be" in dialog.error_label.text()
    runtime.n_ctx.setValue(2048)
    runtime.kv_type.setCurrentText("q8_0")
    assert "flash attention" in dialog.error_label.text()
    runtime.flash_attn.setChecked(True)
    sampling.seed.setText("abc")
    assert "seed must be a whole number" in dialog.error_label.text()
    sampling.seed.setText("7")
    sampling.top_p.setValue(0)
    assert "top-p" in dialog.error_label.text()
    dialog.accept()
    assert dialog.result() == 0  # still open: refused
    sampling.top_p.setValue(0.9)
    assert dialog.ok_button.isEnabled()
    assert dialog.runtime() == RuntimeSettings(n_ctx=2048, flash_attn=True, kv_cache_type="q8_0")
    assert dialog.sampling().seed == 7


def test_offload_control_disabled_without_gpu_support_and_says_how(qtbot):
    from app.settings import RuntimeSettings, SamplingSettings
    from ui.dialogs.settings import SettingsDialog

    cpu = SettingsDialog(
        RuntimeSettings(), SamplingSettings(), n_layers=30, gpu_offload_supported=False
    )
    qtbot.addWidget(cpu)
    form = cpu.runtime_form
    assert not form.gpu_layers.isEnabled() and not form.gpu_all.isEnabled()
    # End users get a link to the README's GPU section, not a pip/CMake command.
    assert not form.gpu_hint.isHidden() and "How to enable GPU offload" in form.gpu_hint.text()
    assert "CMAKE_ARGS" not in form.gpu_hint.text() and "pip" not in form.gpu_hint.text()
    gpu = SettingsDialog(
        RuntimeSettings(n_gpu_layers=-1),
        SamplingSettings(),
        n_layers=30,
        gpu_offload_supported=True,
    )
    qtbot.addWidget(gpu)
    form = gpu.runtime_form
    assert form.gpu_all.isEnabled() and form.gpu_hint.isHidden() and form.gpu_layers.maximum() == 30
    assert gpu.runtime().n_gpu_layers == -1
    form.gpu_all.setChecked(False)
    form.gpu_layers.setValue(12)
    assert gpu.runtime().n_gpu_layers == 12


def test_weight_repacking_is_a_runtime_setting_with_its_reason(qtbot):
    from app.settings import REPACK_MODES, RuntimeSettings, SamplingSettings
    from ui.dialogs.settings import SettingsDialog

    dialog = SettingsDialog(RuntimeSettings(repack="off"), SamplingSettings())
    qtbot.addWidget(dialog)
    combo = dialog.runtime_form.repack
    assert [combo.itemText(i) for i in range(combo.count())] == list(REPACK_MODES)
    assert combo.currentText() == "off" and dialog.runtime().repack == "off"
    assert "AMX" in combo.toolTip() and "crash" in combo.toolTip()
    combo.setCurrentText("auto")
    assert dialog.runtime() == RuntimeSettings(repack="auto")


def test_settings_dialog_keeps_fields_it_does_not_show(qtbot):
    from dataclasses import fields

    from app.settings import RuntimeSettings, SamplingSettings
    from ui.dialogs.settings import SettingsDialog

    runtime = RuntimeSettings(n_ctx=1024, n_threads=3, n_threads_batch=2, repack="on")
    sampling = SamplingSettings(temperature=0.3, seed=5, stop=("END", "###"))
    dialog = SettingsDialog(runtime, sampling)
    qtbot.addWidget(dialog)
    assert dialog.runtime() == runtime, [f.name for f in fields(runtime)]
    assert dialog.sampling() == sampling


def test_gui_settings_persist(glassbox_home):
    from app.gui_settings import GuiSettings
    from app.settings import RuntimeSettings, SamplingSettings, gui_runtime_defaults

    saved = GuiSettings(
        model_path="/x.gguf",
        runtime=RuntimeSettings(n_ctx=1024, n_threads=1),
        sampling=SamplingSettings(temperature=0.2, seed=3, stop=("END",)),
        theme="dark",
    )
    saved.save()
    assert GuiSettings.load() == saved
    GuiSettings.path().write_text('{"runtime": {"n_ctx": -5}, "theme": "neon"}')
    loaded = GuiSettings.load()
    # A bad saved runtime falls back to the GUI's defaults (one decode thread fewer).
    assert loaded.runtime == gui_runtime_defaults() and loaded.theme == "system"


def test_crash_banner_shows_status_and_log_lines(qtbot):
    from ui.chrome.crash_banner import CrashBanner

    banner = CrashBanner()
    qtbot.addWidget(banner)
    banner.show_crash(
        ev.EngineCrashed(exit_code=-9, signal_name="SIGKILL", log_tail=["a", "llama: boom"])
    )
    assert not banner.isHidden() and "SIGKILL" in banner.title.text()
    assert "llama: boom" in banner.log.toPlainText()
    with qtbot.waitSignal(banner.restart_requested):
        banner.restart_button.click()


@pytest.mark.qt_no_exception_capture
def test_exception_in_a_slot_shows_an_error_dialog(qtbot, capsys):
    from PySide6.QtCore import QTimer

    from ui.infra.error_dialog import install_excepthook, open_error_dialogs

    previous = install_excepthook()
    try:

        def broken_slot() -> None:
            raise ValueError("slot went wrong")

        QTimer.singleShot(0, broken_slot)
        qtbot.waitUntil(lambda: bool(open_error_dialogs()), timeout=2000)
        box = open_error_dialogs()[-1]
        assert "slot went wrong" in box.text() and "Traceback" in box.detailedText()
        box.close()
    finally:
        sys.excepthook = previous
    assert "ValueError" in capsys.readouterr().err


def test_bridge_delivers_events_from_another_thread_in_order(qtbot):
    from ui.infra.bridge import EngineBridge

    bridge = EngineBridge()
    seen: list[tuple[int, bool]] = []
    main = threading.get_ident()
    bridge.tokens_received.connect(
        lambda batch: seen.extend((e.index, threading.get_ident() == main) for e in batch.tokens)
    )
    with qtbot.waitSignal(bridge.turn_finished, timeout=2000):

        def produce() -> None:
            for i in range(200):
                bridge.post(ev.Token(request_id=1, index=i))
            bridge.post(ev.TurnFinished(request_id=1))

        threading.Thread(target=produce).start()
    assert seen == [(i, True) for i in range(200)]


def test_theme_palettes_drive_plot_colours(qtbot):
    from ui.infra import theme

    app = QApplication.instance()
    old = app.palette()
    try:
        theme.apply_theme(app, "dark")
        assert theme.plot_colors().dark
        theme.apply_theme(app, "light")
        assert not theme.plot_colors().dark
    finally:
        app.setPalette(old)


def test_signal_emit_keeps_refcounts():
    """PySide6 6.12.0 drops a reference to True on every Signal.emit() and aborts the
    process after a few thousand emits; this fails on such a build instead of crashing."""
    from PySide6.QtCore import QObject, Signal

    class Emitter(QObject):
        fired = Signal(object)

    emitter = Emitter()
    emitter.fired.connect(lambda _v: None)
    before = sys.getrefcount(True)
    for _ in range(50):
        emitter.fired.emit(None)
    assert sys.getrefcount(True) - before >= -5, "this PySide6 build leaks refcounts on emit"
