"""The turn timeline: one turn, to scale, from submit to stop (app.turn_timeline).

Painted with QPainter: a bar of segments (model load, queue, template and
tokenize, prefill, decode) with a tick for every token, the numbers beside
each segment, and the first token marked. Repainted only when a turn ends.
"""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFontMetrics, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from app.turn_timeline import DECODE, LOAD, PREFILL, QUEUE, TEMPLATE, Timeline
from ui.infra import theme

COLORS = {
    LOAD: "#999999",
    QUEUE: theme.QUEUE_COLOR,
    TEMPLATE: theme.OUTPUT_COLOR,
    PREFILL: theme.PREFILL_COLOR,
    DECODE: theme.DECODE_COLOR,
}

TOOLTIP = (
    "One turn to scale, from the moment it was sent to its last token. "
    "Grey: waiting for the model to load (worse right after a start). "
    "Orange: waiting behind other requests (worse when several are sent at once). "
    "Pink: building the prompt text and its tokens. "
    "Blue: prefill, evaluating the prompt (worse with longer prompts not in the cache). "
    "Red: decode, one tick per token (worse with longer answers or a larger model)."
)


class TimelineView(QWidget):
    """Draws one Timeline; set_timeline(None) shows a hint instead."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Turn timeline")
        self.setToolTip(TOOLTIP)
        self.setMinimumHeight(150)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.timeline: Timeline | None = None

    def set_timeline(self, timeline: Timeline | None) -> None:
        self.timeline = timeline
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        colors = theme.plot_colors(self.palette())
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), QColor(colors.background))
        fg = QColor(colors.foreground)
        p.setPen(fg)
        tl = self.timeline
        if tl is None or tl.end_ms <= 0:
            p.drawText(
                self.rect(), Qt.AlignmentFlag.AlignCenter, "The last turn's timeline shows here."
            )
            p.end()
            return
        fm = QFontMetrics(self.font())
        line = fm.height()
        left, right = 8.0, float(self.width() - 8)
        scale = (right - left) / tl.end_ms
        bar_top, bar_h = 6.0, 22.0

        def x(ms: float) -> float:
            return left + ms * scale

        for seg in tl.segments:
            width = max(1.0, seg.ms * scale)
            p.fillRect(QRectF(x(seg.start_ms), bar_top, width, bar_h), QColor(COLORS[seg.kind]))
        # Decode ticks: one per token, so a stall between two tokens shows as a gap.
        p.setPen(QPen(fg, 1))
        for t in tl.token_ms:
            p.drawLine(int(x(t)), int(bar_top + bar_h), int(x(t)), int(bar_top + bar_h + 6))
        if tl.first_token_ms is not None:
            fx = x(tl.first_token_ms)
            p.setPen(QPen(fg, 2))
            p.drawLine(int(fx), int(bar_top - 4), int(fx), int(bar_top + bar_h + 8))
        # The numbers, one segment a line, each with its colour swatch.
        y = bar_top + bar_h + 14
        p.setPen(fg)
        rows = [(COLORS[s.kind], s.label) for s in tl.segments]
        if tl.first_token_ms is not None:
            rows.append((colors.foreground, f"first token at {tl.first_token_ms:.0f} ms"))
        rows.append(
            (colors.foreground, f"stop: {tl.stop_reason or '-'} at {tl.end_ms:.0f} ms (total)")
        )
        for color, text in rows:
            p.fillRect(QRectF(left, y + 3, 10, line - 6), QColor(color))
            p.drawText(QRectF(left + 16, y, right - left - 16, line), text)
            y += line
        p.end()
