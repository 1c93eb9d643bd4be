"""Tail latency: this turn's inter-token latency histogram and the session's percentiles."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from app.latency_stats import Percentiles, SessionLatency, itl_histogram
from ui.infra import theme
from ui.internals.turn_plots import cache_axes

HISTOGRAM_TIP = (
    "How long each token of the last reply waited after the previous one, counted in bins. "
    "A tall bar on the left is a steady stream; bars far to the right are stalls you see as "
    "stutter (other programs using the cores, a busy machine, a long context)."
)
TABLE_TIP = (
    "Across this session: p50 is the typical value, p95 and p99 the slow tail (1 in 20, "
    "1 in 100). TTFT, time to first token, gets worse with long prompts, queues and loads; "
    "inter-token latency gets worse with larger models, longer contexts and a busy machine."
)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def percentile_rows(name: str, p: Percentiles) -> str:
    return (
        f"<tr><td>{name}</td><td align='right'>{_ms(p.p50)}</td>"
        f"<td align='right'>{_ms(p.p95)}</td><td align='right'>{_ms(p.p99)}</td>"
        f"<td align='right'>{p.count}</td></tr>"
    )


class LatencyView(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Tail latency")
        self.plot = pg.PlotWidget()
        self.plot.setAccessibleName("Inter-token latency histogram")
        self.plot.setToolTip(HISTOGRAM_TIP)
        self.plot.setMenuEnabled(False)
        self.plot.setMinimumHeight(120)
        self.plot.plotItem.hideButtons()
        self.plot.plotItem.getViewBox().setMouseEnabled(x=False, y=False)
        self.plot.plotItem.setLabel("bottom", "ms between tokens")
        self.plot.plotItem.setLabel("left", "tokens")
        self.bars = pg.BarGraphItem(
            x=[], height=[], width=1.0, brush=pg.mkBrush(theme.QUEUE_COLOR), pen=pg.mkPen(None)
        )
        self.plot.plotItem.addItem(self.bars)
        cache_axes(self.plot)
        self.table = QLabel()
        self.table.setAccessibleName("Session latency percentiles")
        self.table.setToolTip(TABLE_TIP)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.table)
        self.apply_palette()
        self.set_data([], SessionLatency())

    def apply_palette(self) -> None:
        colors = theme.plot_colors()
        self.plot.setBackground(colors.background)
        for name in ("left", "bottom"):
            axis = self.plot.plotItem.getAxis(name)
            axis.setPen(colors.foreground)
            axis.setTextPen(colors.foreground)
        self.plot.plotItem.setTitle(
            "This turn: inter-token latency histogram", size="9pt", color=colors.foreground
        )

    def set_data(self, itl_ms: list[float], session: SessionLatency) -> None:
        hist = itl_histogram(itl_ms)
        width = hist.edges[1] - hist.edges[0]
        centers = [e + width / 2 for e in hist.edges[:-1]]
        self.bars.setOpts(x=centers, height=hist.counts, width=width * 0.9)
        self.plot.plotItem.setXRange(0, hist.edges[-1], padding=0.02)
        self.plot.plotItem.setYRange(0, max([*hist.counts, 1]), padding=0.05)
        self.table.setText(
            "<b>Session percentiles (ms)</b><table cellspacing='4'>"
            "<tr><td></td><td>p50</td><td>p95</td><td>p99</td><td>n</td></tr>"
            + percentile_rows("TTFT", session.ttft())
            + percentile_rows("inter-token", session.itl())
            + "</table>"
        )
