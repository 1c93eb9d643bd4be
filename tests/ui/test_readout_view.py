"""ReadoutView: the panel's figures, painted (ui/internals/readout_view.py)."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import QApplication, QVBoxLayout, QWidget

from ui.internals.readout_view import ReadoutView

CELLS = [("state", "decode"), ("queue", "2 ms"), ("output", "41 tok"), ("decode", "88.0 tok/s")]


class LayoutRequests(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def eventFilter(self, _obj, event):  # noqa: N802 - Qt override
        if event.type() == QEvent.Type.LayoutRequest:
            self.count += 1
        return False


@pytest.fixture
def readout(qtbot):
    holder = QWidget()
    qtbot.addWidget(holder)
    layout = QVBoxLayout(holder)
    view = ReadoutView()
    view.setFixedHeight(112)
    layout.addWidget(view)
    layout.addWidget(QWidget(), 1)
    holder.resize(500, 300)
    holder.show()
    qtbot.waitExposed(holder)
    return holder, view


def test_figures_read_as_label_and_value_pairs_by_rows(readout):
    _holder, view = readout
    view.set_cells(CELLS, 2)
    assert view.text().splitlines() == [
        "state decode  queue 2 ms",
        "output 41 tok  decode 88.0 tok/s",
    ]
    view.set_cells(CELLS, 1)
    assert len(view.text().splitlines()) == 4
    assert view.accessibleDescription() == view.text()


def test_a_changed_figure_repaints_the_readout_and_lays_out_nothing(readout, qtbot):
    holder, view = readout
    view.set_cells(CELLS, 2)
    qtbot.wait(50)
    requests = LayoutRequests()
    holder.installEventFilter(requests)
    painted = view.paints
    for i in range(20):
        view.set_cells([*CELLS[:3], ("decode", f"{80 + i}.0 tok/s")], 2)
        view.repaint()
        QApplication.processEvents()
    assert view.paints >= painted + 20
    assert requests.count == 0  # a rich-text QLabel asked its parent for a layout each time
    before = view.paints
    view.set_cells([*CELLS[:3], ("decode", "99.0 tok/s")], 2)  # the same as shown
    QApplication.processEvents()
    assert view.paints == before


def test_the_message_wraps_inside_a_narrow_readout(readout, qtbot):
    holder, view = readout
    text = "No turn yet. Send a message to see queue time, TTFT, prefill and decode rates."
    view.set_message(text)
    holder.resize(220, 300)
    qtbot.waitUntil(lambda: view.width() <= 220)
    assert view.text() == text
    rect = view.message_rect()
    needed = QFontMetrics(view.message_font).boundingRect(
        rect, int(Qt.AlignmentFlag.AlignLeft | Qt.TextFlag.TextWordWrap), text
    )
    assert needed.width() <= rect.width() and needed.height() <= view.height()
