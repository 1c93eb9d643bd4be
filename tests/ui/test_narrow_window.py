"""A 900 px window with the internals panel open (issue 10, item 3): it fits, the panel
narrows and stacks, and the chat's bubbles re-wrap inside their column."""

from __future__ import annotations

from PySide6.QtCore import QPoint
from PySide6.QtWidgets import QApplication

TIMEOUT = 60_000


def test_window_goes_down_to_900_px_with_the_panel_open(qtbot, window):
    with qtbot.waitSignal(window.controller.turns_reloaded, timeout=TIMEOUT):
        window.controller.send(
            "Please answer with a long sentence so the reply has to wrap in a narrow column."
        )
    assert window.dock.isVisible()
    assert window.minimumSizeHint().width() <= 900

    def narrowed() -> bool:
        # Asked again until it holds: a layout request still queued from the reply can
        # leave the window's minimum a few pixels above its hint for a pass, and a resize
        # in that pass stops at it (seen as 910 px in one full-suite run).
        window.resize(900, 760)
        return window.width() == 900

    qtbot.waitUntil(narrowed, timeout=5000)
    QApplication.processEvents()

    panel = window.panel
    assert panel.width() < 470  # narrowed: one readout figure a row, live plots stacked
    assert panel._columns == 1
    tokens_at = panel.tokens_plot.mapTo(panel, QPoint(0, 0))
    itl_at = panel.itl_plot.mapTo(panel, QPoint(0, 0))
    assert itl_at.y() > tokens_at.y() and itl_at.x() == tokens_at.x()
    for plot in [*panel.turn_plots(), panel.tokens_plot, panel.itl_plot]:
        right = plot.mapTo(panel, QPoint(plot.width(), 0)).x()
        assert right <= panel.width()  # nothing cut at the panel's right edge
    kv = panel.kv_plot  # its right axis (MiB) is drawn inside the plot, not pushed out
    assert kv.plotItem.getAxis("right").sceneBoundingRect().right() <= kv.viewport().width()

    viewport = window.chat.scroll_area.viewport()
    assert window.chat.width() >= 300
    for bubble in window.chat.message_widgets():
        right = bubble.mapTo(viewport, QPoint(bubble.width(), 0)).x()
        assert right <= viewport.width()  # re-wrapped, not clipped at the right edge
        assert bubble.body.width() <= bubble.width()
