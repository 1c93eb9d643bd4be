"""Load experiment: N requests at once, per N: what each user waits vs what the machine makes.

Runs app.load_experiment on an engine of its own (app.load_source: a second
worker on the same model, or the same server), on the dialog's background
runner; the GUI thread only draws what has come back. Two plots against N:
aggregate output tokens per second (the machine's throughput), and the medians
of queue time, TTFT and inter-token latency (what one user waits).
"""

from __future__ import annotations

import threading
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QFormLayout,
    QLabel,
    QLineEdit,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.endpoints import Endpoint
from app.errors import GlassboxError
from app.load_experiment import LoadRun, LoadSettings, parse_concurrency
from app.load_source import LoadSource, run_modes
from app.settings import RuntimeSettings
from ui.dialogs.forms import button, row, spin_box, status_label, table, with_tip
from ui.infra import theme
from ui.infra.tasks import BackgroundTasks, ProgressReporter

COLUMNS = ("mode", "N", "agg tok/s", "queue ms", "TTFT ms", "TTFT p95", "ITL p50", "ITL p95")
# Batched curves dashed, so the two local modes read apart in one colour scheme.
MODE_LINES = {"batched": Qt.PenStyle.DashLine}
LATENCY_CURVES = (
    ("queue_ms_median", "queue (median)", theme.QUEUE_COLOR),
    ("ttft_ms_median", "TTFT (median)", theme.PREFILL_COLOR),
    ("itl_ms_p50_median", "inter-token p50 (median)", theme.DECODE_COLOR),
)


def _cell(value: float | int | str | None, fmt: str = ".1f") -> QTableWidgetItem:
    text = "unknown" if value is None else value if isinstance(value, str) else f"{value:{fmt}}"
    return QTableWidgetItem(text)


class LoadDialog(QDialog):
    """The experiment's settings, Start/Stop, two plots and a table. No signals."""

    def __init__(self, source: LoadSource, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Load experiment")
        self.setAccessibleName("Load experiment")
        self.source = source
        self.tasks = BackgroundTasks(self, thread_name="glassbox-load-experiment")
        self._stop = threading.Event()
        self.runs: list[LoadRun] = []
        where = source.endpoint.label if source.endpoint else (source.model_path or "no model")
        intro = QLabel(
            f"Sends N requests at the same moment to {where} and waits for all of them. "
            "Served one at a time (sequential), the others queue: throughput stays flat while "
            "each user's wait grows. Decoded together (batched, dashed), one step makes a "
            "token for every request: throughput rises, and so does each user's time between "
            "tokens. A local model runs both ways, one after the other; a server decides for "
            "itself. The experiment runs on engines of its own (for a local model, another "
            "copy in memory while it runs)."
        )
        intro.setWordWrap(True)
        self.concurrency = with_tip(
            QLineEdit("1,2,4,8"), "Concurrency levels", "Requests at once, one round per number"
        )
        self.max_tokens = with_tip(spin_box(1, 2048, 48), "Tokens per request", "max_tokens")
        self.start_button = with_tip(
            button("Start", self._on_start_button_clicked), "Start experiment", "Run every round"
        )
        self.stop_button = with_tip(
            button("Stop", self._on_stop_button_clicked),
            "Stop experiment",
            "Cancel the running round's requests and stop",
        )
        self.stop_button.setEnabled(False)
        self.status = status_label("Experiment status")
        form = QFormLayout()
        form.addRow("Requests at once (N)", self.concurrency)
        form.addRow("Tokens per request", self.max_tokens)
        self.throughput_plot = self._plot("tok/s", "Output tokens per second, all requests")
        self.latency_plot = self._plot("ms", "What one request waits")
        self.throughput_curves: dict[str, pg.PlotDataItem] = {}
        self.latency_curves: dict[tuple[str, str], pg.PlotDataItem] = {}
        for mode in source.modes:
            style = MODE_LINES.get(mode, Qt.PenStyle.SolidLine)
            self.throughput_curves[mode] = self.throughput_plot.plot(
                [],
                [],
                pen=pg.mkPen(theme.OUTPUT_COLOR, width=2, style=style),
                symbol="o",
                name=mode,
            )
            for key, label, color in LATENCY_CURVES:
                self.latency_curves[(mode, key)] = self.latency_plot.plot(
                    [],
                    [],
                    pen=pg.mkPen(color, width=2, style=style),
                    symbol="o",
                    symbolBrush=color,
                    name=f"{mode}: {label}",
                )
        self.table = table(COLUMNS, "Experiment rounds")
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addLayout(row(self.start_button, self.stop_button, None))
        layout.addLayout(row((self.throughput_plot, 1), (self.latency_plot, 1)))
        layout.addWidget(self.table)
        layout.addWidget(self.status)
        self.resize(900, 640)

    def _plot(self, unit: str, title: str) -> pg.PlotWidget:
        plot = pg.PlotWidget(title=title)
        plot.setLabel("bottom", "requests at once (N)")
        plot.setLabel("left", unit)
        plot.showGrid(x=True, y=True, alpha=0.3)
        plot.addLegend(offset=(10, 10))
        plot.setMinimumHeight(200)
        return plot

    # -- running -------------------------------------------------------------------

    def settings(self) -> LoadSettings:
        return LoadSettings(
            concurrency=parse_concurrency(self.concurrency.text()),
            max_tokens=self.max_tokens.value(),
        ).validate()

    def running(self) -> bool:
        return self.tasks.pending() > 0

    def _on_start_button_clicked(self) -> None:
        try:
            settings = self.settings()
        except GlassboxError as exc:
            self.status.setText(str(exc))
            return
        self._stop.clear()
        self.runs = []
        self._show([])
        self.start_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.status.setText("Loading the experiment's own engine…")
        source, stop = self.source, self._stop

        def job(report: ProgressReporter) -> list[LoadRun]:
            done: list[LoadRun] = []

            def on_run(run: LoadRun) -> None:
                done.append(run)
                report(list(done))  # the whole list each time: progress is coalesced

            def on_loaded(_mode: str, _event: object) -> None:
                report(list(done))

            run_modes(source, settings, None, on_run, stop.is_set, on_loaded)
            return done

        self.tasks.run_with_progress(
            job, on_done=self._on_finished, on_error=self._on_failed, on_progress=self._show
        )

    def _on_stop_button_clicked(self) -> None:
        self._stop.set()
        self.stop_button.setEnabled(False)
        self.status.setText("Stopping: cancelling the round's requests…")

    def _show(self, runs: list[LoadRun]) -> None:
        self.runs = runs
        if runs:
            self.status.setText(f"Round {len(runs)} done (N = {runs[-1].concurrency}).")
        elif self.running():
            self.status.setText("Running the first round…")  # an engine is ready
        summaries = [r.summary() for r in runs]
        for mode, curve in self.throughput_curves.items():
            known = [(r.concurrency, r.aggregate_tok_s) for r in runs if r.mode == mode]
            points = [(float(n), v) for n, v in known if v is not None]
            curve.setData([n for n, _ in points], [v for _, v in points])
        for (mode, key), curve in self.latency_curves.items():
            mine = [(r.concurrency, s[key]) for r, s in zip(runs, summaries) if r.mode == mode]
            points = [(float(n), v) for n, v in mine if v is not None]
            curve.setData([n for n, _ in points], [v for _, v in points])
        self.table.setRowCount(len(runs))
        for index, (run, summary) in enumerate(zip(runs, summaries)):
            cells = (
                _cell(run.mode),
                _cell(run.concurrency, "d"),
                _cell(run.aggregate_tok_s),
                _cell(summary["queue_ms_median"], ".0f"),
                _cell(summary["ttft_ms_median"], ".0f"),
                _cell(summary["ttft_ms_p95"], ".0f"),
                _cell(summary["itl_ms_p50_median"]),
                _cell(summary["itl_ms_p95_median"]),
            )
            for column, item in enumerate(cells):
                self.table.setItem(index, column, item)

    def _on_finished(self, runs: list[LoadRun]) -> None:
        self._show(runs)
        self.start_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        errors = sorted({m for r in runs for m in r.errors})
        stopped = " (stopped)" if self._stop.is_set() else ""
        self.status.setText(
            f"Done{stopped}: {len(runs)} round(s)." + (f" Errors: {errors[0]}" if errors else "")
        )

    def _on_failed(self, exc: BaseException) -> None:
        self.start_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        message = str(exc) if isinstance(exc, GlassboxError) else f"{type(exc).__name__}: {exc}"
        self.status.setText(f"The experiment could not run: {message}")

    def done(self, result: int) -> None:
        # Closing stops the experiment; its engine closes on the runner's thread.
        self._stop.set()
        super().done(result)


def source_for(engine: object, model_path: str | None, runtime: RuntimeSettings) -> LoadSource:
    """What the window's engine runs on: its server, else its model file."""
    endpoint = getattr(engine, "endpoint", None)
    if isinstance(endpoint, Endpoint):
        return LoadSource(endpoint=endpoint)
    return LoadSource(model_path=model_path, runtime=runtime)


def open_load_dialog(window: Any) -> LoadDialog:
    """The menu's entry point: a dialog on what the window is using now, deleted on close."""
    info = window.engine.model_info
    path = info.model_path if info is not None else window.settings.model_path
    dialog = LoadDialog(source_for(window.engine, path, window.settings.runtime), window)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.open()
    return dialog
