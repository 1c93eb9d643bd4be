"""StripPlot: the live strip's line plots, painted with QPainter instead of pyqtgraph.

The live strip is the only part of the panel that redraws while a reply streams,
and on 2 cores every millisecond the GUI takes is taken from a decode thread.
A pyqtgraph PlotWidget repaints its whole scene per update (view box, both axes,
title, curve: 1.5-2 ms, plus setData), so the live strip was about a third of
the panel's cost per token. Here the frame (background, title, axes, ticks, grid)
is painted once into a pixmap and kept until the size, the range or the palette
changes. The line is drawn into a copy of it (the canvas) as points come, only the
new segments each time, and a repaint copies the changed rectangle of the canvas
to the screen. Ranges grow in steps, so the whole line is redrawn a few times a turn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from PySide6.QtCore import QPointF, QRect, QRectF, QSize, Qt
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetrics,
    QPainter,
    QPaintEvent,
    QPen,
    QPixmap,
    QPolygonF,
    QResizeEvent,
    QTransform,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

from ui.infra import theme

EMPTY_TEXT = "Appears while a reply is generated"
TICK_TARGET = 5  # at most about this many steps an axis (4-6 labelled ticks)
TICK_PX = 4
PAD = 4


def nice_step(span: float, target: int = TICK_TARGET) -> float:
    """A tick spacing of 1, 2 or 5 times a power of ten giving about `target` ticks."""
    if span <= 0:
        return 1.0
    raw = span / target
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


def ticks(top: float, target: int = TICK_TARGET) -> list[float]:
    """Tick values from 0 to top (inclusive where it falls on a step)."""
    step = nice_step(top, target)
    count = int(top / step + 1e-9)
    return [i * step for i in range(count + 1)]


def tick_label(value: float, step: float) -> str:
    if step >= 1:
        return f"{value:.0f}"
    decimals = max(0, -math.floor(math.log10(step)))
    return f"{value:.{decimals}f}"


class StripPlot(QWidget):
    """One series of the turn in progress, x and y from 0 to tops that grow in steps."""

    # The data fills at least half of the plot while it streams, and a growing axis means
    # the frame and the whole line are drawn again (about 1.2 ms): at 1.5 that was 25-30
    # times in a 600-token turn, at 2 it is about half as often. fit_to_data() ends the
    # axes at the data when the turn ends.
    GROWTH = 2.0

    def __init__(
        self,
        title: str,
        x_label: str,
        y_label: str,
        color: str,
        start_tops: tuple[float, float] = (10.0, 10.0),
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.title, self.x_label, self.y_label = title, x_label, y_label
        self.color = QColor(color)
        self._start_x_top, self._start_y_top = start_tops
        self._x_top, self._y_top = start_tops
        # The points, as a polygon in data coordinates grown by appending: the paint maps it
        # with a transform instead of rebuilding it point by point.
        self._line = QPolygonF()
        self._x_max = self._y_max = 0.0  # of the points so far (the axes grow to them)
        self._area: QRectF | None = None  # plot_rect() for the current frame
        self._had_data = False
        self._frame: QPixmap | None = None  # background, title, axes: repainted on change
        self._canvas: QPixmap | None = None  # the frame with the line drawn so far
        self._drawn = 0  # points of the line already on the canvas
        self.frame_paints = 0  # how often the frame was painted (tests)
        self.colors = theme.plot_colors()
        # It paints every pixel itself: Qt need not paint the parent behind it first.
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.setMinimumSize(120, 120)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        font = QFont(self.font())
        font.setPointSizeF(max(6.0, font.pointSizeF() * 0.85))
        self._small = font

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(240, 160)

    # ---- data -----------------------------------------------------------------------------
    @property
    def empty_shown(self) -> bool:
        """The 'appears while a reply is generated' message: before the first reply only."""
        return self._line.isEmpty() and not self._had_data

    def points(self) -> tuple[list[float], list[float]]:
        points = self._line.toList()
        return [p.x() for p in points], [p.y() for p in points]

    def tops(self) -> tuple[float, float]:
        """The axes' current ends (x, y); both start at 0."""
        return self._x_top, self._y_top

    def count(self) -> int:
        return self._line.size()

    def set_points(self, xs: Sequence[float], ys: Sequence[float]) -> None:
        """Replace the series (a new turn; an empty one clears the line)."""
        self._x_max = self._y_max = 0.0
        self._line = QPolygonF()
        self._canvas = None
        self.extend(xs, ys)
        if self._line.isEmpty():
            self._set_tops(self._start_x_top, self._start_y_top)
            self.update()

    def extend(self, xs: Sequence[float], ys: Sequence[float]) -> None:
        """Add points at the end: only they are drawn (and their rectangle repainted)."""
        if not xs:
            return
        line = self._line
        for x, y in zip(xs, ys):
            line.append(QPointF(x, y))
        self._x_max, self._y_max = max(self._x_max, *xs), max(self._y_max, *ys)
        self._had_data = True
        self._set_tops(
            self._grown(self._x_top, self._x_max, self._start_x_top),
            self._grown(self._y_top, self._y_max, self._start_y_top),
        )
        self._update_new_part()

    def fit_to_data(self) -> None:
        """The turn has ended: the x-axis ends at the last point, not at the step it grew to."""
        if self._line.isEmpty():
            return
        x_top = self._x_max
        self._set_tops(x_top if x_top > 0 else 1.0, max(self._y_max * 1.1, 1.0))
        self.update()

    def _grown(self, top: float, value: float, start: float) -> float:
        """The axis top for `value`: unchanged while it fits and is not far too big."""
        if value > top or (value < top / (self.GROWTH * 2) and top > start):
            return max(start, value * self.GROWTH)
        return top

    def _set_tops(self, x_top: float, y_top: float) -> None:
        if (x_top, y_top) != (self._x_top, self._y_top):
            self._x_top, self._y_top = x_top, y_top
            self._frame = self._canvas = self._area = None

    def apply_palette(self) -> None:
        self.colors = theme.plot_colors()
        self._frame = self._canvas = self._area = None
        self.update()

    # ---- painting -------------------------------------------------------------------------
    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._frame = self._canvas = self._area = None

    def plot_rect(self) -> QRectF:
        """Where the data is drawn, in widget coordinates."""
        fm = QFontMetrics(self._small)
        label_h = fm.height()
        y_step = nice_step(self._y_top)
        widest = max(fm.horizontalAdvance(tick_label(v, y_step)) for v in ticks(self._y_top))
        left = PAD + label_h + PAD + widest + TICK_PX + 2
        top = PAD + QFontMetrics(self.font()).height() + PAD
        bottom = self.height() - (PAD + label_h + label_h + TICK_PX)
        right = self.width() - PAD - fm.horizontalAdvance("0000") // 2
        return QRectF(left, top, max(1.0, right - left), max(1.0, bottom - top))

    def _paint_frame(self) -> QPixmap:
        ratio = self.devicePixelRatioF()
        pixmap = QPixmap(self.size() * ratio)
        pixmap.setDevicePixelRatio(ratio)
        colors = self.colors
        background, foreground = QColor(colors.background), QColor(colors.foreground)
        pixmap.fill(background)
        p = QPainter(pixmap)
        p.setPen(foreground)
        p.drawText(
            QRect(0, PAD, self.width(), QFontMetrics(self.font()).height()),
            Qt.AlignmentFlag.AlignHCenter,
            self.title,
        )
        p.setFont(self._small)
        fm = QFontMetrics(self._small)
        area = self.plot_rect()
        if self.empty_shown:
            # Axes of no data mean nothing: the message only, where the data will be.
            p.drawText(area, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, EMPTY_TEXT)
            p.end()
            self.frame_paints += 1
            return pixmap
        grid = QColor(foreground)
        grid.setAlphaF(colors.grid_alpha)
        x_step, y_step = nice_step(self._x_top), nice_step(self._y_top)
        for value in ticks(self._x_top):
            x = area.left() + value / self._x_top * area.width()
            p.setPen(grid)
            p.drawLine(QPointF(x, area.top()), QPointF(x, area.bottom()))
            p.setPen(foreground)
            p.drawLine(QPointF(x, area.bottom()), QPointF(x, area.bottom() + TICK_PX))
            label = tick_label(value, x_step)
            width = fm.horizontalAdvance(label)
            p.drawText(QPointF(x - width / 2, area.bottom() + TICK_PX + fm.ascent()), label)
        for value in ticks(self._y_top):
            y = area.bottom() - value / self._y_top * area.height()
            p.setPen(grid)
            p.drawLine(QPointF(area.left(), y), QPointF(area.right(), y))
            p.setPen(foreground)
            p.drawLine(QPointF(area.left() - TICK_PX, y), QPointF(area.left(), y))
            label = tick_label(value, y_step)
            width = fm.horizontalAdvance(label)
            p.drawText(QPointF(area.left() - TICK_PX - 2 - width, y + fm.ascent() / 2 - 1), label)
        p.setPen(foreground)
        p.drawLine(area.bottomLeft(), area.bottomRight())
        p.drawLine(area.bottomLeft(), area.topLeft())
        x_label_top = area.bottom() + TICK_PX + fm.height()
        p.drawText(
            QRectF(area.left(), x_label_top, area.width(), fm.height()),
            Qt.AlignmentFlag.AlignHCenter,
            self.x_label,
        )
        p.save()
        p.translate(PAD, area.center().y())
        p.rotate(-90)
        p.drawText(
            QRectF(-area.height() / 2, 0, area.height(), fm.height()),
            Qt.AlignmentFlag.AlignHCenter,
            self.y_label,
        )
        p.restore()
        p.end()
        self.frame_paints += 1
        return pixmap

    def _transform(self) -> QTransform:
        """Data coordinates to widget pixels."""
        if self._area is None:
            self._area = self.plot_rect()
        area = self._area
        return QTransform(
            area.width() / self._x_top,
            0,
            0,
            -area.height() / self._y_top,
            area.left(),
            area.bottom(),
        )

    def _update_new_part(self) -> None:
        """Ask for a repaint of what the points not yet drawn cover (all when the canvas
        is to be made again)."""
        if self._canvas is None or self._drawn == 0:
            self.update()
            return
        if self._drawn >= self._line.size():
            return
        tail = QPolygonF(self._line.mid(self._drawn - 1))
        rect = self._transform().map(tail).boundingRect().toAlignedRect()
        self.update(rect.adjusted(-3, -3, 3, 3))

    def _draw_line(self, canvas: QPixmap, start: int) -> None:
        """Draw the points from `start` on, joined to the one before, onto the canvas."""
        p = QPainter(canvas)
        if self._area is None:
            self._area = self.plot_rect()
        p.setClipRect(self._area.adjusted(-1, -1, 1, 1))
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        pen = QPen(self.color, 2)
        pen.setCosmetic(True)  # 2 px wide whatever the transform's scale
        p.setPen(pen)
        p.setTransform(self._transform())
        p.drawPolyline(self._line if start <= 1 else QPolygonF(self._line.mid(start - 1)))
        p.end()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        size = self.size() * self.devicePixelRatioF()
        if self._frame is None or self._frame.size() != size:
            self._frame = self._paint_frame()
            self._canvas = None
        if self._canvas is None:
            self._canvas = QPixmap(self._frame)  # a copy: the line goes on it, not the frame
            self._drawn = 0
        if self._drawn < self._line.size():
            self._draw_line(self._canvas, self._drawn)
            self._drawn = self._line.size()
        p = QPainter(self)
        rect = event.rect()
        ratio = self.devicePixelRatioF()
        source = QRectF(
            rect.x() * ratio, rect.y() * ratio, rect.width() * ratio, rect.height() * ratio
        )
        p.drawPixmap(QRectF(rect), self._canvas, source)
        p.end()
