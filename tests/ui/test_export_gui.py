"""File menu export and import in the real window, and `glassbox export --format png`."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from PySide6.QtGui import QImage

from app.cli.main import main
from app.export.svg_plots import plot_specs

TIMEOUT = 60_000


def test_file_menu_exports_imports_and_saves_plot_images(qtbot, window, tmp_path):
    file_menu = window.menuBar().actions()[0].menu()
    texts = [a.text() for a in file_menu.actions()]
    for text in ("&Export conversation…", "Export &plots…", "&Import conversation…"):
        assert text in texts
    assert texts[-1] == "&Quit"

    with qtbot.waitSignal(window.controller.turns_reloaded, timeout=TIMEOUT):
        window.controller.send("Say hello.")
    original_id = window.controller.conversation_id
    stored = window.store.turn_metrics(original_id)

    out = tmp_path / "chat.json"
    with qtbot.waitSignal(window.file_actions.exported, timeout=TIMEOUT):
        window.file_actions.export_conversation(out)
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["messages"][1]["metrics"] == stored[0][1].to_dict()

    imported: list[int] = []
    window.file_actions.imported.connect(imported.append)
    with qtbot.waitSignal(window.controller.conversation_opened, timeout=TIMEOUT):
        window.file_actions.import_conversation(out)
    qtbot.waitUntil(lambda: bool(imported), timeout=TIMEOUT)
    new_id = imported[0]
    assert new_id != original_id and window.controller.conversation_id == new_id
    assert [m for _, m in window.store.turn_metrics(new_id)] == [m for _, m in stored]
    assert window.panel.turns() == window.store.turn_metrics(new_id)

    window.panel.flush()
    png = tmp_path / "plots.png"
    with qtbot.waitSignal(window.file_actions.exported, timeout=TIMEOUT):
        window.file_actions.export_plots(png)
    image = QImage(str(png))
    plots = window.panel.turn_plots()
    assert not image.isNull() and image.height() >= sum(p.height() for p in plots) - len(plots)
    svg = tmp_path / "plots.svg"
    with qtbot.waitSignal(window.file_actions.exported, timeout=TIMEOUT):
        window.file_actions.export_plots(svg)
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")
    assert root.get("viewBox").split()[-1] == str(sum(p.height() for p in plots))
    assert any(e.tag.endswith("path") or e.tag.endswith("polyline") for e in root.iter())


def test_cli_png_export_draws_the_plots_offscreen(qapp, tmp_path, monkeypatch, capsys, model_path):
    from recorded_chat import record_conversation

    monkeypatch.setenv("GLASSBOX_HOME", str(tmp_path))
    record_conversation(model_path, tmp_path / "glassbox.sqlite3", prompts=("Hi.", "Bye."))
    out = tmp_path / "plots.png"
    assert main(["export", "latest", "--format", "png", "--out", str(out)]) == 0
    image = QImage(str(out))
    assert not image.isNull()
    assert image.height() == 300 * len(plot_specs([])) and image.width() >= 700
