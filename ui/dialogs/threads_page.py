"""Settings > Threads: the measured table, the chosen counts and "Measure threads now"."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QLabel, QTableWidgetItem, QVBoxLayout, QWidget

from app.engine import events as ev
from app.engine.thread_tuning import TunedThreads, load_tuned, usable_cores
from ui.dialogs.forms import button, status_label, table

COLUMNS = ("threads", "prefill tok/s", "decode tok/s")


class ThreadsPage(QWidget):
    """Shows the stored measurement for the loaded model; measures again on demand."""

    def __init__(self, tuner: Any, tasks: Any, model_path: str | None) -> None:
        super().__init__()
        self.tuner, self.tasks, self.model_path = tuner, tasks, model_path
        intro = QLabel(
            "Decode waits on every thread for each token, so more threads are not always "
            "faster, and the window's own CPU use changes the best count. Glassbox measures "
            "prefill and decode for each count with the window streaming and uses the fastest "
            "while the thread settings say auto. A number in Runtime always wins."
        )
        intro.setWordWrap(True)
        self.table = table(COLUMNS, "Measured thread counts")
        self.chosen = status_label("Chosen thread counts")
        self.measure_button = button("Measure threads now", self._on_measure_button_clicked)
        self.measure_button.setAccessibleName("Measure threads now")
        self.measure_button.setToolTip(
            "Measure prefill and decode speed for each thread count (a few seconds); "
            "sending a message stops it"
        )
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.chosen)
        layout.addWidget(self.measure_button)
        tuner.tuning_started.connect(self._on_tuner_tuning_started)
        tuner.tuning_finished.connect(self._on_tuner_tuning_finished)
        self.measure_button.setEnabled(model_path is not None and not tuner.running)
        self._refresh()

    def _refresh(self) -> None:
        path = self.model_path
        if path is None:
            self.chosen.setText("No model is loaded.")
            return
        self.tasks.run(lambda: (load_tuned(path, "window"), usable_cores()), on_done=self._show)

    def _show(self, result: tuple[TunedThreads | None, int]) -> None:
        stored, cores = result
        if stored is None:
            self.table.setRowCount(0)
            self.chosen.setText(f"Not measured yet on this machine ({cores} usable cores).")
            return
        self.table.setRowCount(len(stored.rows))
        for index, row in enumerate(stored.rows):
            values = (str(row.n_threads), f"{row.prefill_tok_s:.1f}", f"{row.decode_tok_s:.1f}")
            for column, text in enumerate(values):
                self.table.setItem(index, column, QTableWidgetItem(text))
        where = "with the window" if stored.context == "window" else "without a window"
        self.chosen.setText(
            f"Chosen: {stored.n_threads} decode / {stored.n_threads_batch} prefill threads "
            f"(measured {where}; {cores} usable cores)"
        )

    def _on_measure_button_clicked(self) -> None:
        self.measure_button.setEnabled(False)
        if not self.tuner.measure_now():
            self.chosen.setText("Waiting for the engine to be idle…")

    def _on_tuner_tuning_started(self) -> None:
        self.measure_button.setEnabled(False)
        self.chosen.setText("Measuring… (the text streams in the chat)")

    def _on_tuner_tuning_finished(self, event: ev.TuneFinished) -> None:
        self.measure_button.setEnabled(self.model_path is not None)
        self._refresh()
