"""Bandwidth ceiling: the decode rate this machine's memory allows, and the measured share."""

from __future__ import annotations

import html

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from app.bandwidth import CeilingReport

GAUGE_TIP = (
    "The last reply's decode rate as a share of the ceiling: this machine's memory bandwidth "
    "divided by the bytes read per token (the whole model plus the KV cache in use). A larger "
    "model or a longer context lowers the ceiling; other programs using memory lower the share."
)
TEXT_TIP = (
    "Prefill is compute-bound: one read of the weights serves a whole batch of prompt tokens. "
    "Decode is bandwidth-bound: every token reads all the weights again."
)
MEASURE_TIP = "Copy a 256 MiB buffer a few times (under a second) to measure memory bandwidth."


class BandwidthView(QWidget):
    """Signals:
    remeasure_requested(): the user asked for a new bandwidth measurement.
    """

    remeasure_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Bandwidth ceiling")
        self.gauge = QProgressBar()
        self.gauge.setAccessibleName("Decode rate as a share of the ceiling")
        self.gauge.setToolTip(GAUGE_TIP)
        self.gauge.setRange(0, 100)
        self.text = QLabel()
        self.text.setAccessibleName("Bandwidth figures")
        self.text.setToolTip(TEXT_TIP)
        self.text.setWordWrap(True)
        self.measure = QPushButton("Measure bandwidth again")
        self.measure.setToolTip(MEASURE_TIP)
        self.measure.setAccessibleName("Measure bandwidth again")
        self.measure.clicked.connect(self.remeasure_requested)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.gauge)
        layout.addWidget(self.text)
        layout.addWidget(self.measure)
        layout.addStretch(1)
        self.set_report(None)

    def set_measuring(self, measuring: bool) -> None:
        self.measure.setEnabled(not measuring)
        if measuring:
            self.text.setText("<i>Measuring memory bandwidth...</i>")

    def set_report(self, report: CeilingReport | None) -> None:
        if report is None:
            self.gauge.setValue(0)
            self.gauge.setFormat("no figures yet")
            self.text.setText("<i>Shows after a reply, once the bandwidth is measured.</i>")
            return
        share = report.share_of_ceiling
        self.gauge.setValue(min(100, round((share or 0) * 100)))
        self.gauge.setFormat(
            f"decode {report.decode_tok_s or 0:.1f} tok/s = {share:.0%} of the ceiling"
            if share is not None
            else "decode rate unknown"
        )
        ceiling = f"{report.ceiling_tok_s:.1f} tok/s" if report.ceiling_tok_s else "-"
        prefill = f"{report.prefill_tok_s:.1f} tok/s" if report.prefill_tok_s else "-"
        self.text.setText(
            f"Memory bandwidth <b>{report.bandwidth_gb_s:.1f} GB/s</b> (copy benchmark)<br>"
            f"Bytes read per token <b>{report.bytes_per_token / 2**20:.1f} MiB</b> "
            "(weights + KV in use)<br>"
            f"Decode ceiling <b>{ceiling}</b><br>"
            f"Prefill <b>{prefill}</b>: <b>{report.prefill_label}</b>; decode: "
            f"<b>{report.decode_label}</b><br>{html.escape(report.evidence())}"
        )
