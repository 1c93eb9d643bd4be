"""The status bar says in plain words what happened to weight repacking."""

from __future__ import annotations

from app.engine import events as ev
from app.models.fit_check import MemoryRow
from ui.chrome.status_bar import EngineStatusBar

NOTE = (
    "running without weight repacking: "
    "llama.cpp's AMX kernels crashed on this CPU (SIGSEGV, warming up)"
)


def test_a_fallback_is_announced_and_stays_in_the_backend_tooltip(qtbot):
    bar = EngineStatusBar()
    qtbot.addWidget(bar)
    info = ev.ModelLoaded(
        model_path="/m/x.gguf", n_layers=30, repack="auto", repack_used=False, repack_note=NOTE
    )
    bar.set_model_info(info)
    assert bar.currentMessage() == NOTE
    assert NOTE in bar.backend_label.toolTip() and "off" in bar.backend_label.toolTip()


def test_repacked_buffers_show_next_to_the_backend_and_in_the_memory_table(qtbot):
    bar = EngineStatusBar()
    qtbot.addWidget(bar)
    bar.set_model_info(
        ev.ModelLoaded(model_path="/m/x.gguf", n_layers=30, extra_buffers_mib={"AMX": 95.3})
    )
    assert bar.backend_label.text() == "CPU only · 0 of 30 layers on GPU + AMX"
    assert bar.currentMessage() == ""  # nothing happened worth a notice
    bar.set_memory_rows(
        [
            MemoryRow("weights", 92 << 20, 92 << 20),
            MemoryRow("repacked weights", None, 95 << 20, note="AMX: not known before loading"),
            MemoryRow("total", 92 << 20, 187 << 20, note="the estimate leaves out the copy"),
        ]
    )
    tip = bar.memory_label.toolTip()
    assert "repacked weights" in tip and "not known before loading" in tip
    assert bar.memory_label.text() == "mem 187.0 MiB"
