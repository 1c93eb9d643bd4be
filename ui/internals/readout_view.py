"""ReadoutView: the panel's figures of the current turn, painted as a grid of label/value.

It was a rich-text QLabel. Each setText parsed the HTML table, laid it out, and
(QLabel calls updateGeometry on every change) made the whole panel lay out again:
about 2 ms an update, and with a reply streaming the figures change five times a
second. Here a change is a repaint of this widget alone: the labels in the normal
font, the figures in bold, column by column.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QFont, QFontMetrics, QPainter, QPaintEvent
from PySide6.QtWidgets import QSizePolicy, QWidget

ROW_GAP = 2
COLUMN_GAP = 12
LABEL_GAP = 6  # between a label and its figure


class ReadoutView(QWidget):
    """Label/figure pairs in one or two columns, or one message sentence (wrapped)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._cells: list[tuple[str, str]] = []
        self._columns = 2
        self._message = ""
        self.paints = 0  # repaints, for tests
        # Its text must not set the panel's minimum width: the panel picks one or two
        # columns for the width it gets.
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self._bold = QFont(self.font())
        self._bold.setBold(True)
        self.message_font = QFont(self.font())
        self.message_font.setItalic(True)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(300, self.height())

    def set_cells(self, cells: Sequence[tuple[str, str]], columns: int) -> None:
        """Show these (label, figure) pairs, `columns` to a row; repainted only if changed."""
        cells = list(cells)
        if (cells, columns, "") == (self._cells, self._columns, self._message):
            return
        self._cells, self._columns, self._message = cells, columns, ""
        self._changed()

    def set_message(self, text: str) -> None:
        """One sentence in place of the figures (before the first turn)."""
        if (text, []) == (self._message, self._cells):
            return
        self._cells, self._message = [], text
        self._changed()

    def text(self) -> str:
        """What it shows, as plain text: "label figure" pairs, one row a line."""
        if self._message:
            return self._message
        rows = []
        for i in range(0, len(self._cells), self._columns):
            rows.append("  ".join(f"{k} {v}" for k, v in self._cells[i : i + self._columns]))
        return "\n".join(rows)

    def message_rect(self) -> QRect:
        """Where the message sentence is drawn, wrapped at the widget's width."""
        return self.rect().adjusted(2, 2, -2, -2)

    def _changed(self) -> None:
        self.setAccessibleDescription(self.text())  # screen readers read the figures
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        self.paints += 1
        p = QPainter(self)
        p.setPen(self.palette().color(self.foregroundRole()))
        if self._message:
            p.setFont(self.message_font)
            p.drawText(
                self.message_rect(),
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop | Qt.TextFlag.TextWordWrap,
                self._message,
            )
            p.end()
            return
        plain, bold = QFontMetrics(self.font()), QFontMetrics(self._bold)
        row_height = max(plain.height(), bold.height()) + ROW_GAP
        columns = self._columns
        column_width = (self.width() - 4) // columns
        for column in range(columns):
            cells = self._cells[column::columns]
            if not cells:
                continue
            label_width = max(plain.horizontalAdvance(k) for k, _v in cells) + LABEL_GAP
            x = 2 + column * column_width
            for row, (label, value) in enumerate(cells):
                y = 2 + row * row_height
                p.setFont(self.font())
                p.drawText(QRect(x, y, label_width, row_height), Qt.AlignmentFlag.AlignLeft, label)
                p.setFont(self._bold)
                p.drawText(
                    QRect(x + label_width, y, column_width - label_width - COLUMN_GAP, row_height),
                    Qt.AlignmentFlag.AlignLeft,
                    value,
                )
        p.end()
