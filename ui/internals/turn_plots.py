"""The pyqtgraph plots of the internals panel, one class per question they answer.

Each plot takes plain lists (one value per assistant turn, x = turn number) and
sets its items' data; none of them reads the engine or the store.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QGraphicsItem

from app.metrics import TurnMetrics
from ui.infra import theme

MIB = 1024 * 1024


def cache_axes(plot: pg.PlotWidget) -> None:
    """Keep each axis as a cached pixmap: drawing tick labels (text) is most of a
    plot's repaint, and most repaints leave the axes unchanged. Measured on the
    panel: an end-of-turn update went from about 40 ms to about 27 ms."""
    for name in ("left", "bottom", "right"):
        plot.plotItem.getAxis(name).setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)


def _zero(value: float | int | None) -> float:
    return 0.0 if value is None else float(value)


class MiBAxis(pg.AxisItem):
    """Right-hand axis that labels KV cells in MiB (cells x bytes per cell)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.bytes_per_cell = 0.0

    def tickStrings(  # noqa: N802 - pyqtgraph API
        self, values: list[float], scale: float, spacing: float
    ) -> list[str]:
        if not self.bytes_per_cell:
            return ["" for _ in values]
        return [f"{v * self.bytes_per_cell / MIB:.1f}" for v in values]


def legend_html(entries: Sequence[tuple[str, str]]) -> str:
    """A legend as text for a plot's title: a coloured mark before each series name.
    In the title it can never cover data, whatever the plot's size."""
    return "&nbsp;&nbsp;".join(
        f"<span style='color:{color}'>\u25a0</span>&nbsp;{html.escape(name)}"
        for color, name in entries
    )


class EmptyState:
    """A message in the middle of a plot with no data, in place of axes that mean nothing."""

    def __init__(
        self,
        plot: pg.PlotWidget,
        text: str,
        axes: Sequence[str],
        grid: tuple[bool, bool] = (False, True),
    ) -> None:
        self._plot, self._axes, self._grid = plot, tuple(axes), grid
        self.item = pg.TextItem(text, anchor=(0.5, 0.5))
        self.item.setZValue(20)
        plot.plotItem.addItem(self.item, ignoreBounds=True)
        self.shown = False

    def show(self, x: float, y: float) -> None:
        """Put the message at (x, y) in data coordinates and hide the axes' numbers."""
        self.item.setPos(x, y)
        self.item.show()
        for name in self._axes:
            self._plot.plotItem.getAxis(name).setStyle(showValues=False)
        self._plot.plotItem.showGrid(x=False, y=False)  # grid lines of no data mean nothing
        self.shown = True

    def hide(self) -> None:
        self.item.hide()
        for name in self._axes:
            self._plot.plotItem.getAxis(name).setStyle(showValues=True)
        self._plot.plotItem.showGrid(x=self._grid[0], y=self._grid[1], alpha=0.25)
        self.shown = False

    def apply_palette(self, colors: theme.PlotColors) -> None:
        self.item.setColor(colors.foreground)


class TurnPlot(pg.PlotWidget):
    """Base: a plot with x = turn number, a highlight band, and themed colours.

    The legend is part of the title, never inside the plot area."""

    def __init__(
        self,
        title: str,
        y_label: str,
        legend: Sequence[tuple[str, str]] = (),
        axis_items: dict | None = None,
    ) -> None:
        super().__init__(axisItems=axis_items)
        # Room for the two-line title (name, legend), the axis and some data; a short
        # window scrolls the panel rather than squash the plots.
        self.setMinimumHeight(150)
        self.setMinimumWidth(200)
        self.setMenuEnabled(False)
        self._legend_entries = tuple(legend)
        self._title = title
        self.plotItem.setLabel("left", y_label)
        self.plotItem.setLabel("bottom", "assistant turn")
        self.plotItem.showGrid(x=False, y=True, alpha=0.25)
        self.plotItem.getViewBox().setMouseEnabled(x=False, y=False)
        self.plotItem.hideButtons()
        self.highlight = pg.LinearRegionItem(values=(0, 0), movable=False)
        self.highlight.setZValue(-10)
        self.highlight.hide()
        self.plotItem.addItem(self.highlight, ignoreBounds=True)
        self.empty = EmptyState(self, "No replies yet in this conversation", ("left", "right"))
        self.n_turns = 0
        self.first_turn = 1  # the turn number of the first point (a long history shows its end)
        self.total_turns = 0
        cache_axes(self)
        self.apply_palette()
        self._show_empty(True)

    def title_html(self) -> str:
        legend = legend_html(self._legend_entries)
        return f"{html.escape(self._title)}<br>{legend}" if legend else html.escape(self._title)

    def set_title(self, title: str) -> None:
        self._title = title
        self.plotItem.setTitle(self.title_html(), size="9pt")

    def apply_palette(self) -> None:
        colors = theme.plot_colors()
        self.setBackground(colors.background)
        for name in ("left", "bottom", "right"):
            axis = self.plotItem.getAxis(name)
            axis.setPen(colors.foreground)
            axis.setTextPen(colors.foreground)
            axis.picture = None  # the cached tick labels were drawn in the old colour
            axis.update()
        self.plotItem.titleLabel.setAttr("color", colors.foreground)
        self.set_title(self._title)
        self.highlight.setBrush(pg.mkBrush(colors.highlight))
        for line in self.highlight.lines:
            line.setPen(pg.mkPen(None))
        self.empty.apply_palette(colors)

    def _show_empty(self, empty: bool) -> None:
        if empty:
            self.plotItem.setXRange(0, 1, padding=0)
            self.plotItem.setYRange(0, 1, padding=0)
            self.plotItem.getAxis("bottom").setTicks([[]])
            self.empty.show(0.5, 0.5)
        elif self.empty.shown:
            self.empty.hide()

    def set_highlight(self, turn: int | None) -> None:
        if turn is None:
            self.highlight.hide()
            return
        self.highlight.setRegion((turn - 0.45, turn + 0.45))
        self.highlight.show()

    def _xs(self, n: int, first_turn: int) -> list[int]:
        """x of each point: its turn number (a click or highlight maps back to the turn)."""
        self.first_turn = first_turn
        return list(range(first_turn, first_turn + n))

    def _fit_x(self, n: int) -> None:
        self.n_turns = n
        self._show_empty(n == 0)
        if n == 0:
            return
        first, last = self.first_turn, self.first_turn + n - 1
        self.plotItem.setXRange(first - 0.6, last + 0.6, padding=0)
        self.plotItem.getAxis("bottom").setTicks(
            [[(i, str(i)) for i in range(first, last + 1)]] if n <= 20 else None
        )
        label = "assistant turn"
        if first > 1:
            label += f" (the last {n} of {last})"
        self.plotItem.setLabel("bottom", label)


def _bars(color: str, name: str) -> pg.BarGraphItem:
    return pg.BarGraphItem(
        x=[], height=[], width=0.6, brush=pg.mkBrush(color), pen=pg.mkPen(None), name=name
    )


class TtftPlot(TurnPlot):
    """Time to first token per turn, stacked: queue wait, then prefill and first decode step."""

    def __init__(self) -> None:
        super().__init__(
            "Time to first token",
            "ms",
            legend=((theme.QUEUE_COLOR, "queue"), (theme.PREFILL_COLOR, "prefill + 1st token")),
        )
        self.queue_bars = _bars(theme.QUEUE_COLOR, "queue")
        self.prefill_bars = _bars(theme.PREFILL_COLOR, "prefill + 1st token")
        self.plotItem.addItem(self.queue_bars)
        self.plotItem.addItem(self.prefill_bars)

    def set_turns(self, metrics: Sequence[TurnMetrics], first_turn: int = 1) -> None:
        xs = self._xs(len(metrics), first_turn)
        queue = [_zero(m.queue_ms) for m in metrics]
        rest = [max(0.0, _zero(m.ttft_ms) - q) for m, q in zip(metrics, queue)]
        self.queue_bars.setOpts(x=xs, height=queue, y0=[0.0] * len(xs))
        self.prefill_bars.setOpts(x=xs, height=rest, y0=queue)
        self._fit_x(len(xs))
        if xs:
            top = max([q + r for q, r in zip(queue, rest)] or [1.0])
            self.plotItem.setYRange(0, max(top, 1.0) * 1.1, padding=0)


class RatePlot(TurnPlot):
    """Prefill and decode throughput per turn: the two phases stress the machine differently."""

    def __init__(self) -> None:
        super().__init__(
            "Throughput",
            "tok/s",
            legend=((theme.PREFILL_COLOR, "prefill"), (theme.DECODE_COLOR, "decode")),
        )
        self.prefill = self.plotItem.plot(
            [],
            [],
            name="prefill",
            pen=pg.mkPen(theme.PREFILL_COLOR, width=2),
            symbol="o",
            symbolSize=7,
            symbolBrush=theme.PREFILL_COLOR,
            symbolPen=None,
        )
        self.decode = self.plotItem.plot(
            [],
            [],
            name="decode",
            pen=pg.mkPen(theme.DECODE_COLOR, width=2),
            symbol="s",
            symbolSize=7,
            symbolBrush=theme.DECODE_COLOR,
            symbolPen=None,
        )

    def set_turns(self, metrics: Sequence[TurnMetrics], first_turn: int = 1) -> None:
        xs = self._xs(len(metrics), first_turn)
        # Turns without a figure (cancelled before decode, crashed) get no point: NaN
        # symbol positions can crash Qt's raster painter.
        values: list[float] = []
        for curve, name in ((self.prefill, "prefill_tok_s"), (self.decode, "decode_tok_s")):
            points = [
                (float(x), float(v))
                for x, m in zip(xs, metrics)
                if (v := getattr(m, name)) is not None and math.isfinite(v)
            ]
            curve.setData([p[0] for p in points], [p[1] for p in points])
            values += [p[1] for p in points]
        self._fit_x(len(metrics))
        if metrics:
            # Headroom so the top point's symbol is drawn whole.
            self.plotItem.setYRange(0, (max(values) if values else 1.0) * 1.15, padding=0)


class KvPlot(TurnPlot):
    """KV cache cells after each turn: cached prompt, newly evaluated prompt, output."""

    def __init__(self) -> None:
        self.mib_axis = MiBAxis("right")
        super().__init__(
            "KV cache fill",
            "cells",
            legend=(
                # Short: a title wider than the plot pushes its right axis out of view.
                (theme.CACHED_COLOR, "cached"),
                (theme.EVALUATED_COLOR, "evaluated"),
                (theme.OUTPUT_COLOR, "output"),
            ),
            axis_items={"right": self.mib_axis},
        )
        self.plotItem.showAxis("right")
        self.cached = _bars(theme.CACHED_COLOR, "cached prompt")
        self.evaluated = _bars(theme.EVALUATED_COLOR, "evaluated prompt")
        self.output = _bars(theme.OUTPUT_COLOR, "output")
        for item in (self.cached, self.evaluated, self.output):
            self.plotItem.addItem(item)
        self.total_line = pg.InfiniteLine(
            angle=0, movable=False, pen=pg.mkPen(QColor("#888888"), style=Qt.PenStyle.DashLine)
        )
        self.plotItem.addItem(self.total_line, ignoreBounds=True)
        self.total_line.hide()
        self.cells_total = 0
        self.bytes_total = 0

    def set_capacity(self, cells_total: int, bytes_total: int) -> None:
        self.cells_total, self.bytes_total = cells_total, bytes_total
        self.mib_axis.bytes_per_cell = bytes_total / cells_total if cells_total else 0.0
        self.mib_axis.picture = None
        self.mib_axis.update()
        # The unit stays on the axis whatever the title says.
        self.plotItem.setLabel("right", "MiB" if self.mib_axis.bytes_per_cell else "")
        if cells_total:
            self.total_line.setValue(cells_total)
            self.total_line.show()

    def set_turns(self, metrics: Sequence[TurnMetrics], first_turn: int = 1) -> None:
        for m in reversed(metrics if not self.cells_total else []):  # the loaded model's wins
            if m.kv_cells_total and m.kv_bytes_total:
                self.set_capacity(m.kv_cells_total, m.kv_bytes_total)
                break
        xs = self._xs(len(metrics), first_turn)
        # A turn whose cache use is not known (the engine died during it) gets no bar,
        # as the readout shows "KV -/-" for it.
        known = [m.kv_cells_used is not None for m in metrics]
        cached = [_zero(m.prompt_tokens_cached) if k else 0.0 for m, k in zip(metrics, known)]
        evaluated = [_zero(m.prompt_tokens_evaluated) if k else 0.0 for m, k in zip(metrics, known)]
        output = [kv_output_cells(m) for m in metrics]
        self.cached.setOpts(x=xs, height=cached, y0=[0.0] * len(xs))
        self.evaluated.setOpts(x=xs, height=evaluated, y0=cached)
        self.output.setOpts(x=xs, height=output, y0=[c + e for c, e in zip(cached, evaluated)])
        self._fit_x(len(xs))
        used = max([c + e + o for c, e, o in zip(cached, evaluated, output)] or [1.0])
        # Show the whole cache once the conversation fills a good share of it, else zoom in
        # (the title still says how much of the total is used).
        full = self.cells_total and used > self.cells_total * 0.4
        if metrics:
            top = self.cells_total if full else max(used, 1.0) * 1.3
            self.plotItem.setYRange(0, top * 1.05, padding=0)
        self.set_title(self._kv_title(metrics[-1] if metrics else None))

    def _kv_title(self, last: TurnMetrics | None) -> str:
        if last is None or last.kv_cells_used is None or not self.cells_total:
            return "KV cache fill"
        fill = last.kv_cells_used / self.cells_total * 100
        # Cells only: the MiB are on the right axis and in the readout. A title is as wide
        # as its text and sets the plot's minimum width; with the MiB too (about 370 px) a
        # finished turn's title widened the panel and the window past 900 px.
        return f"KV cache: {last.kv_cells_used}/{self.cells_total} cells ({fill:.1f}%)"


def kv_output_cells(m: TurnMetrics) -> float:
    """Cells holding this turn's output: what llama.cpp reports used minus the prompt."""
    if m.kv_cells_used is None:
        return 0.0  # not known: no bar (see KvPlot.set_turns)
    if m.prompt_tokens is not None:
        return max(0.0, float(m.kv_cells_used - m.prompt_tokens))
    return _zero(m.output_tokens)
