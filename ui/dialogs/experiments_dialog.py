"""Experiments: the same prompts under two configurations, plots overlaid, ratios in a table.

The run (app.experiments.run_experiment: two engines, prompts alternating
between them) goes on the dialog's own background runner, so the window and its
chat stay responsive; each finished turn redraws the plots from a snapshot.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.experiments import (
    RATIO_FIELDS,
    ExperimentResult,
    SideResult,
    parse_config,
    run_experiment,
)
from app.metrics import TurnMetrics
from app.metrics_columns import COLUMNS
from app.settings import RuntimeSettings, SamplingSettings
from ui.infra import theme
from ui.infra.tasks import BackgroundTasks

DEFAULT_PROMPTS = "Name three fruits.\nWhat colour is the sky?\nCount from one to five."
SIDE_COLORS = (theme.PREFILL_COLOR, theme.DECODE_COLOR)
SIDE_SYMBOLS = ("o", "s")


class ExperimentsDialog(QDialog):
    """A/B runs from the GUI.

    Signals:
        finished_run(object): the ExperimentResult of a run that ended (done or stopped).
        failed_run(str): a run could not start or failed; the message is shown too.
    """

    finished_run = Signal(object)
    failed_run = Signal(str)

    def __init__(
        self,
        model_path: Path,
        base: RuntimeSettings,
        sampling: SamplingSettings,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Experiments: A/B runs")
        self.setAccessibleName("Experiments")
        self.model_path, self.base, self.sampling = model_path, base, sampling
        self.tasks = BackgroundTasks(self, thread_name="glassbox-experiment")
        self._cancel = threading.Event()
        self.running = False

        self.prompts = QPlainTextEdit(DEFAULT_PROMPTS)
        self.prompts.setToolTip("One prompt a line; each runs on both sides, in turn")
        self.config_a = QLineEdit("threads=1")
        self.config_b = QLineEdit("threads=2")
        for edit in (self.config_a, self.config_b):
            edit.setToolTip(
                "KEY=VALUE overrides of the current settings: threads, ctx, batch, kv, fa, "
                "gpu_layers, repack; or model=PATH"
            )
        self.max_tokens = QSpinBox()
        self.max_tokens.setRange(1, 4096)
        self.max_tokens.setValue(64)
        form = QFormLayout()
        form.addRow("Prompts", self.prompts)
        form.addRow("Side A", self.config_a)
        form.addRow("Side B", self.config_b)
        form.addRow("Max tokens", self.max_tokens)

        self.run_button = QPushButton("&Run")
        self.stop_button = QPushButton("&Stop")
        self.stop_button.setEnabled(False)
        self.run_button.clicked.connect(self.start_run)
        self.stop_button.clicked.connect(self.stop_run)
        self.status = QLabel("Both sides load first, then the prompts alternate between them.")
        self.status.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.stop_button)
        buttons.addWidget(self.status, 1)

        self.decode_plot = self._plot("Decode per turn", "tok/s")
        self.ttft_plot = self._plot("Time to first token per turn", "ms")
        plots = QHBoxLayout()
        plots.addWidget(self.decode_plot)
        plots.addWidget(self.ttft_plot)

        self.table = QTableWidget(len(RATIO_FIELDS), 3)
        self.table.setHorizontalHeaderLabels(["A (median)", "B (median)", "B / A"])
        self.table.setVerticalHeaderLabels(
            [f"{COLUMNS[f].label} ({COLUMNS[f].unit})" for f in RATIO_FIELDS]
        )
        self.table.setAccessibleName("Ratio table")

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addLayout(plots, 1)
        layout.addWidget(self.table)
        self.resize(900, 700)

    def _plot(self, title: str, unit: str) -> pg.PlotWidget:
        plot = pg.PlotWidget()
        plot.setMinimumHeight(180)
        plot.setMenuEnabled(False)
        plot.plotItem.setTitle(title, size="9pt")
        plot.plotItem.setLabel("left", unit)
        plot.plotItem.setLabel("bottom", "turn")
        plot.plotItem.addLegend(offset=(-4, 4), labelTextSize="8pt")
        plot.curves = [  # both sides, overlaid
            plot.plotItem.plot(
                [],
                [],
                name=f"side {name}",
                pen=pg.mkPen(color, width=2),
                symbol=symbol,
                symbolSize=7,
                symbolBrush=color,
                symbolPen=None,
            )
            for name, color, symbol in zip("AB", SIDE_COLORS, SIDE_SYMBOLS)
        ]
        return plot

    # ---- commands ---------------------------------------------------------------------
    def start_run(self) -> None:
        if self.running:
            return
        prompts = [line.strip() for line in self.prompts.toPlainText().splitlines()]
        prompts = [p for p in prompts if p and not p.startswith("#")]
        try:
            if not prompts:
                raise ValueError("Write at least one prompt.")
            configs = [
                parse_config(edit.text(), self.base, self.model_path)
                for edit in (self.config_a, self.config_b)
            ]
        except Exception as exc:  # a bad spec is a message, not a crash
            self._fail(str(exc))
            return
        sampling = self.sampling.with_changes(max_tokens=self.max_tokens.value())
        self._cancel = threading.Event()
        cancel = self._cancel
        self.running = True
        self.run_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.status.setText("Loading both sides…")

        def job(report: Callable[[object], None]) -> ExperimentResult:
            seen: dict[int, list[TurnMetrics]] = {}

            def on_turn(side: int, _turn: int, result: SideResult) -> None:
                # A snapshot of every side's turns: progress is coalesced, newest wins.
                seen[side] = list(result.turns)
                report([seen.get(i, []) for i in range(len(configs))])

            return run_experiment(prompts, configs, sampling, on_turn=on_turn, cancel=cancel)

        self.tasks.run_with_progress(
            job, on_done=self._on_done, on_error=self._on_error, on_progress=self._on_progress
        )

    def stop_run(self) -> None:
        self._cancel.set()
        self.status.setText("Stopping after the turn in progress…")

    # ---- results ----------------------------------------------------------------------
    def _on_progress(self, snapshot: list[list[TurnMetrics]]) -> None:
        self._draw(snapshot)
        done = sum(len(turns) for turns in snapshot)
        self.status.setText(f"{done} turns measured…")

    def _on_done(self, result: ExperimentResult) -> None:
        self.running = False
        self.run_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        self._draw([side.turns for side in result.sides])
        ratios = result.median_ratios(1)
        for row, name in enumerate(RATIO_FIELDS):
            column = COLUMNS[name]
            cells = [
                column.format(result.sides[0].median(name), unit=True),
                column.format(result.sides[1].median(name), unit=True),
                "-" if ratios[name] is None else f"{ratios[name]:.2f}x",
            ]
            for col, text in enumerate(cells):
                self.table.setItem(row, col, QTableWidgetItem(text))
        turns = min(len(side.turns) for side in result.sides)
        self.status.setText(
            f"{turns} prompts on each side: A = {result.sides[0].config.label}, "
            f"B = {result.sides[1].config.label}"
        )
        self.finished_run.emit(result)

    def _on_error(self, exc: BaseException) -> None:
        self.running = False
        self.run_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        self._fail(str(exc))

    def _fail(self, message: str) -> None:
        self.status.setText(message)
        self.failed_run.emit(message)

    def _draw(self, snapshot: list[list[TurnMetrics]]) -> None:
        for plot, name in ((self.decode_plot, "decode_tok_s"), (self.ttft_plot, "ttft_ms")):
            for curve, turns in zip(plot.curves, snapshot):
                points = [
                    (float(i), float(v))
                    for i, m in enumerate(turns, start=1)
                    if (v := getattr(m, name)) is not None
                ]
                curve.setData([p[0] for p in points], [p[1] for p in points])

    def done(self, result: int) -> None:  # closing stops a run at its next turn
        self._cancel.set()
        super().done(result)
