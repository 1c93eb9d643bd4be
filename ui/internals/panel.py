"""The internals panel: per-turn plots across the conversation, a live strip, and a readout.

Data arrives as calls (set_turns, begin_live, add_tokens, ...) that only append
to buffers, mark what changed and ask for a frame (ui/infra/frame_clock.py);
the frame pushes the buffers into the plots. A model streaming 150 tok/s
therefore costs at most 20 redraws a second, none while nothing changed,
and none while the panel is hidden (the dock closed, or a tab behind another):
what changed meanwhile is drawn when it is shown again.
"""

from __future__ import annotations

import html
import time
from collections.abc import Sequence

from PySide6.QtCore import QEvent, QPointF, Signal
from PySide6.QtGui import QCursor, QResizeEvent, QShowEvent
from PySide6.QtWidgets import (
    QGridLayout,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from app.engine.events import ModelLoaded
from app.metrics import TurnMetrics
from app.metrics_columns import COLUMNS, fmt, metrics_rows
from ui.infra import theme
from ui.infra.frame_clock import FRAME_MS, FrameGate
from ui.internals.inside_tabs import InsideTabs
from ui.internals.readout_view import ReadoutView
from ui.internals.strip_plot import StripPlot
from ui.internals.turn_plots import KvPlot, RatePlot, TtftPlot, TurnPlot

# The readout's numbers while decoding change with every token; rich text costs a
# parse and a layout per change, and nobody reads a figure that changes 30 times a
# second. Measured with a 150 tok/s stream: redrawn every frame it was about a fifth
# of the GUI's CPU time. State changes (prefill, decode, finished) show at once.
READOUT_INTERVAL_MS = 200
# The live strip is redrawn at most once a frame while a reply streams, and only when
# tokens came: the eye follows it as motion. Its plots are QPainter widgets that draw
# only the new segments (ui/internals/strip_plot.py), about 0.1 ms a redraw against
# 0.6 ms for the pyqtgraph plots they replaced. The panel's frames are the chat's and
# the bridge's (FRAME_MS, one shared ticker: ui/infra/frame_clock.py), so a streaming
# frame is one repaint pass of the window.
PLOT_FRAME_MS = FRAME_MS
# A per-turn plot's redraw is the panel's heaviest (pyqtgraph, a bar or symbol per turn:
# 15-30 ms with 100 turns on 2 cores); they have a gate of their own, at most one every
# 50 ms, so the passes between are left to the chat's 5 ms slices and the rest of the
# event loop. Opening a 1,000-turn
# conversation stalled 80-90 ms in 4 of 10 opens with one every 33 ms (a frame).
STALE_PLOT_GAP_MS = 50
# The per-turn plots draw a long conversation's newest turns only: a bar or symbol per
# turn costs paint time (1,000 turns took 15-60 ms a plot per repaint, a stall each), and
# a 300 px plot cannot show more bars than this apart. The axis says so. 100, not 200:
# the 1,000-turn open still stalled 50-56 ms now and then with 200 (fresh-clone runs).
PLOT_TURNS = 100
# Below this width the readout shows one figure a row and the live plots stack.
NARROW_WIDTH = 470
READOUT_HEIGHTS = {2: 112, 1: 196}  # by columns: fixed, see the readout's comment


def metrics_tooltip(turn: int, m: TurnMetrics) -> str:
    """Every field of one turn, for the hover tooltip, with the readout's labels and units."""
    rows = []
    for name, text in metrics_rows(m):
        if name in ("kv_cells_used", "kv_cells_total") and text != "-":
            text += " cells"
        label = COLUMNS[name].label
        rows.append(
            f"<tr><td>{html.escape(label)}&nbsp;</td>"
            f"<td align='right'>{html.escape(text)}</td></tr>"
        )
    return f"<b>Turn {turn}</b><table>{''.join(rows)}</table>"


def _num(field: str, value: object) -> str:
    """A figure without its unit, for readout cells that name the unit once."""
    return COLUMNS[field].format(value)


class InternalsPanel(QWidget):
    """Live inference internals for the open conversation.

    Signals:
        turn_clicked(int): a point of turn N was clicked; carries that turn's message id.
    """

    turn_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Inference internals")
        self._turns: list[tuple[int, TurnMetrics]] = []
        self._highlight_id: int | None = None
        self._live_times_ms: list[float] = []
        self._live_itl_ms: list[float] = []
        self._live_restart = False  # the live plots still show the turn before
        self._live_t0_ns: int | None = None
        self._live_last_ns: int | None = None
        self._live_started: object | None = None  # TurnStarted of the turn in progress
        self._live_state = "idle"
        self._final: TurnMetrics | None = None
        # Turn plots waiting for new data. One is redrawn per frame: redrawing
        # all three at once (axes, text) stalled the event loop 40-60 ms at each
        # turn's end on a 2-core machine; spread out, no frame costs more than one plot.
        self._stale_plots: list[TurnPlot] = []
        self._dirty_live = False
        self.redraw_count = 0
        self.last_hover_text = ""

        self.readout = ReadoutView()
        self.readout.setAccessibleName("Current turn readout")
        self.readout.setToolTip("The numbers of the turn in progress, or of the last finished turn")
        # A fixed height: a readout that grew or shrank with its text would relayout and
        # repaint every plot below it on each tick.
        self.readout.setFixedHeight(READOUT_HEIGHTS[2])

        self.ttft_plot = TtftPlot()
        self.rate_plot = RatePlot()
        self.kv_plot = KvPlot()
        self.tokens_plot = StripPlot(
            "This turn: tokens over time",
            "ms since start",
            "tokens",
            theme.DECODE_COLOR,
            start_tops=(250.0, 10.0),
        )
        self.itl_plot = StripPlot(
            "This turn: inter-token latency",
            "token",
            "ms",
            theme.QUEUE_COLOR,
            start_tops=(10.0, 20.0),
        )
        tips: dict[QWidget, tuple[str, str]] = {
            self.ttft_plot: (
                "TTFT plot",
                "Time to first token per assistant turn: queue wait (orange) and prefill; "
                "hover for all metrics, click to jump to the reply",
            ),
            self.rate_plot: (
                "Throughput plot",
                "Prefill and decode tokens per second per turn; "
                "hover for all metrics, click to jump to the reply",
            ),
            self.kv_plot: (
                "KV cache plot",
                "KV cache cells used after each turn: cached prompt, evaluated prompt, output; "
                "dashed line: capacity; right axis: MiB",
            ),
            self.tokens_plot: (
                "Live tokens plot",
                "Tokens generated so far in the current turn, over time",
            ),
            self.itl_plot: (
                "Live inter-token latency plot",
                "Time between consecutive tokens of the current turn",
            ),
        }
        for widget, (name, tip) in tips.items():
            widget.setAccessibleName(name)
            widget.setToolTip(tip)
        for plot in self.turn_plots():
            plot.scene().sigMouseMoved.connect(
                lambda pos, p=plot: self._on_plot_mouse_moved(p, pos)
            )
            plot.scene().sigMouseClicked.connect(
                lambda ev, p=plot: self._on_plot_mouse_clicked(p, ev)
            )

        self._live_grid = live = QGridLayout()
        live.setContentsMargins(0, 0, 0, 0)
        self._columns = 2
        self._place_live_plots(stacked=False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.readout)
        for plot in self.turn_plots():
            layout.addWidget(plot, 1)
        layout.addLayout(live, 1)
        self.inside = InsideTabs()  # diagnosis, timeline, tail latency, KV, bandwidth
        layout.addWidget(self.inside, 2)

        self._frame = FrameGate(self._on_frame, PLOT_FRAME_MS, self)
        self._plots_frame = FrameGate(self._on_plots_frame, STALE_PLOT_GAP_MS, self)
        self._readout_ns = 0  # when the readout's figures were last drawn (monotonic ns)
        self._readout_state = ""
        self._render_readout()

    def _place_live_plots(self, stacked: bool) -> None:
        for plot in (self.tokens_plot, self.itl_plot):
            self._live_grid.removeWidget(plot)  # re-added below, not added twice
        self._live_grid.addWidget(self.tokens_plot, 0, 0)
        self._live_grid.addWidget(self.itl_plot, 1 if stacked else 0, 0 if stacked else 1)

    def _fit_to_width(self, width: int) -> None:
        """Narrow: one readout figure a row and the live plots stacked, so nothing is cut."""
        columns = 1 if width < NARROW_WIDTH else 2
        if columns != self._columns:
            self._columns = columns
            self.readout.setFixedHeight(READOUT_HEIGHTS[columns])
            self._place_live_plots(stacked=columns == 1)
            self._render_readout()

    def turn_plots(self) -> list[TurnPlot]:
        return [self.ttft_plot, self.rate_plot, self.kv_plot]

    # ---- per-turn data --------------------------------------------------------------------
    def set_model_info(self, info: ModelLoaded) -> None:
        self.inside.set_model_info(info)
        if (info.kv_cells_total, info.kv_bytes_total) != (
            self.kv_plot.cells_total,
            self.kv_plot.bytes_total,
        ):
            self.kv_plot.set_capacity(info.kv_cells_total, info.kv_bytes_total)
            self._mark_stale([self.kv_plot])  # only the KV plot changes

    def set_turns(self, turns: Sequence[tuple[int, TurnMetrics]]) -> None:
        """Replace every point: one (message_id, metrics) per assistant turn, in order."""
        self._turns = list(turns)
        self._final = self._turns[-1][1] if self._turns else None
        self._mark_stale(self.turn_plots())

    def turns(self) -> list[tuple[int, TurnMetrics]]:
        return list(self._turns)

    def highlight_message(self, message_id: int | None) -> int | None:
        """Highlight the points of the turn whose reply is message_id; returns that turn number."""
        self._highlight_id = message_id
        turn = self._turn_of(message_id)
        for plot in self.turn_plots():
            plot.set_highlight(turn)
        return turn

    def _turn_of(self, message_id: int | None) -> int | None:
        for index, (mid, _m) in enumerate(self._turns, start=1):
            if mid == message_id:
                return index
        return None

    # ---- the turn in progress ----------------------------------------
    def begin_live(self, started: object) -> None:
        """A TurnStarted arrived: reset the live strip."""
        self.inside.begin_live(started)
        self._live_started = started
        self._live_t0_ns = getattr(started, "t_ns", None) or None
        self._live_last_ns = None
        self._live_times_ms, self._live_itl_ms = [], []
        self._live_restart = True
        self._live_state = "prefill"
        self._final = None
        self._mark_live()

    def add_token(self, t_ns: int) -> None:
        self.add_tokens([t_ns])

    def add_tokens(self, t_ns: Sequence[int]) -> None:
        """Engine timestamps of the tokens that arrived since the last call, in order."""
        if not t_ns:
            return
        self.inside.add_tokens(t_ns)
        if self._live_t0_ns is None:
            self._live_t0_ns = t_ns[0]
        t0, last = self._live_t0_ns, self._live_last_ns
        for t in t_ns:
            self._live_times_ms.append((t - t0) / 1e6)
            if last is not None:
                self._live_itl_ms.append((t - last) / 1e6)
            last = t
        self._live_last_ns = last
        self._live_state = "decode"
        self._mark_live()

    def end_live(self, metrics: TurnMetrics | None, state: str = "finished") -> None:
        self.inside.end_live(metrics)
        self._live_state = state
        if metrics is not None:
            self._final = metrics
        self._mark_live()

    def live_token_count(self) -> int:
        return len(self._live_times_ms)

    # ---- drawing ----------------------------------------
    def _mark_stale(self, plots: list[TurnPlot]) -> None:
        self._stale_plots += [plot for plot in plots if plot not in self._stale_plots]
        self._plots_frame.request()

    def _mark_live(self) -> None:
        self._dirty_live = True
        self._frame.request()

    def drawable(self) -> bool:
        """Whether a redraw would reach the screen (shown, and not covered entirely)."""
        return self.isVisible() and not self.visibleRegion().isEmpty()

    def _on_frame(self) -> None:
        if self._dirty_live and self.drawable():  # else kept marked: drawn when shown again
            self._redraw()

    def _on_plots_frame(self) -> None:
        if not (self._stale_plots and self.drawable()):
            return  # kept marked: drawn when shown again (showEvent)
        self._draw_stale_plot()
        if self._stale_plots:
            self._plots_frame.request()  # the next one, a gap later

    def _draw_stale_plot(self) -> None:
        plot = self._stale_plots.pop(0)
        shown = self._turns[-PLOT_TURNS:]
        plot.set_turns([m for _mid, m in shown], first_turn=len(self._turns) - len(shown) + 1)
        plot.set_highlight(self._turn_of(self._highlight_id))
        self.redraw_count += 1

    def _redraw(self) -> None:
        """The live strip's new points, and the readout when its figures are due."""
        if self._dirty_live:
            # Only the points since the last frame: the plots draw just those.
            times, itl = self._live_times_ms, self._live_itl_ms
            if self._live_restart:  # a new turn began: the plots start again
                self._live_restart = False
                self.tokens_plot.set_points([], [])
                self.itl_plot.set_points([], [])
            drawn = self.tokens_plot.count()
            self.tokens_plot.extend(times[drawn:], range(drawn + 1, len(times) + 1))
            drawn = self.itl_plot.count()
            self.itl_plot.extend(range(drawn + 2, len(itl) + 2), itl[drawn:])
            if self._live_state not in ("prefill", "decode"):  # no more points coming
                self.tokens_plot.fit_to_data()
                self.itl_plot.fit_to_data()
        # The figures a few times a second, in a frame the plots take anyway (a frame of
        # its own would be a repaint pass of its own); a new state shows at once.
        now = time.monotonic_ns()
        streaming = self._live_state == "decode" and self._readout_state == "decode"
        if not streaming or now - self._readout_ns >= READOUT_INTERVAL_MS * 1_000_000:
            self._readout_ns = now
            self._render_readout()
        self._dirty_live = False
        self.redraw_count += 1

    def flush(self) -> None:
        """Redraw everything now (tests and screenshots)."""
        self._stale_plots = self.turn_plots()
        while self._stale_plots:
            self._draw_stale_plot()
        self._plots_frame.cancel()
        self._dirty_live = True
        self._redraw()
        self._frame.cancel()
        self._render_readout()

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        self._request_marked()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)  # from zero size (a collapsed dock) back to drawable
        self._fit_to_width(event.size().width())
        self._request_marked()

    def _request_marked(self) -> None:
        """Ask for the frames of what changed while nothing could be drawn."""
        if self._stale_plots:
            self._plots_frame.request()
        if self._dirty_live:
            self._frame.request()

    def _render_readout(self) -> None:
        self._readout_state = self._live_state if self._final is None else "final"
        m = self._final
        started = self._live_started
        n = len(self._live_times_ms)
        if m is None and started is None:
            self.readout.set_message(
                "No turn yet. Send a message to see queue time, TTFT, prefill and decode "
                "rates, and KV cache fill."
            )
            return
        if m is None:  # in progress: what we know so far
            queue = getattr(started, "queue_ms", None)
            prompt = getattr(started, "prompt_tokens", None)
            cached = getattr(started, "prompt_tokens_cached", None)
            span = self._live_times_ms[-1] - self._live_times_ms[0] if n > 1 else 0.0
            decode = (n - 1) / span * 1000 if span > 0 else None
            last_itl = self._live_itl_ms[-1] if self._live_itl_ms else None
            cells = [
                ("state", self._live_state),
                ("queue", fmt("queue_ms", queue)),
                (
                    "prompt",
                    f"{fmt('prompt_tokens', prompt)} ({_num('prompt_tokens_cached', cached)} "
                    "cached)",
                ),
                ("output", fmt("output_tokens", n)),
                ("decode", fmt("decode_tok_s", decode)),
                ("last ITL", fmt("itl_ms_p50", last_itl)),
            ]
        else:
            cells = [
                ("queue", fmt("queue_ms", m.queue_ms)),
                ("TTFT", fmt("ttft_ms", m.ttft_ms)),
                (
                    "prompt",
                    f"{fmt('prompt_tokens', m.prompt_tokens)} "
                    f"({_num('prompt_tokens_cached', m.prompt_tokens_cached)} cached)",
                ),
                ("prefill", fmt("prefill_tok_s", m.prefill_tok_s)),
                ("output", fmt("output_tokens", m.output_tokens)),
                ("decode", fmt("decode_tok_s", m.decode_tok_s)),
                (
                    "ITL p50/p95",
                    f"{_num('itl_ms_p50', m.itl_ms_p50)} / {fmt('itl_ms_p95', m.itl_ms_p95)}",
                ),
                (
                    "KV",
                    # Not known when the engine died during the turn; the KV plot then
                    # draws no bar for it either.
                    "not known"
                    if m.kv_cells_used is None
                    else f"{_num('kv_cells_used', m.kv_cells_used)}/"
                    f"{_num('kv_cells_total', m.kv_cells_total)} cells "
                    f"({fmt('kv_fill', m.kv_fill)})",
                ),
                (
                    "KV bytes",
                    f"{_num('kv_bytes_used', m.kv_bytes_used)} / "
                    f"{fmt('kv_bytes_total', m.kv_bytes_total)}",
                ),
                ("stop", fmt("stop_reason", m.stop_reason)),
                ("total", fmt("total_ms", m.total_ms)),
            ]
        self.readout.set_cells(cells, self._columns)

    def readout_text(self) -> str:
        return self.readout.text()

    # ---- hover and click ----------------------------------------
    def turn_at(self, plot: TurnPlot, scene_pos: QPointF) -> int | None:
        vb = plot.plotItem.getViewBox()
        if not vb.sceneBoundingRect().contains(scene_pos):
            return None
        x = vb.mapSceneToView(scene_pos).x()
        turn = round(x)
        if 1 <= turn <= len(self._turns) and abs(x - turn) <= 0.45:
            return turn
        return None

    def _on_plot_mouse_moved(self, plot: TurnPlot, pos: QPointF) -> None:
        turn = self.turn_at(plot, pos)
        if turn is None:
            self.last_hover_text = ""
            QToolTip.hideText()
            return
        self.last_hover_text = metrics_tooltip(turn, self._turns[turn - 1][1])
        QToolTip.showText(QCursor.pos(), self.last_hover_text, plot)

    def _on_plot_mouse_clicked(self, plot: TurnPlot, event: object) -> None:
        turn = self.turn_at(plot, event.scenePos())  # type: ignore[attr-defined]
        if turn is not None:
            message_id = self._turns[turn - 1][0]
            self.highlight_message(message_id)
            self.turn_clicked.emit(message_id)

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt override
        super().changeEvent(event)
        if event.type() == event.Type.PaletteChange:
            plots: list[TurnPlot | StripPlot] = [*self.turn_plots(), self.tokens_plot]
            for plot in [*plots, self.itl_plot]:
                plot.apply_palette()
