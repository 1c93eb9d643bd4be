"""Why was this turn slow? The diagnosis of the last turn (app.diagnosis), with its split."""

from __future__ import annotations

import html

from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from app.diagnosis import Diagnosis

TIP = (
    "The part of the last turn that took the most time, and what to do about it. A turn is "
    "slow when its first token comes after about a second, the reply takes more than a few "
    "seconds, or tokens come slower than people read."
)
SPLIT_TIP = (
    "Where the time went: model load, queue, prefill (to the first token) and decode "
    "(the rest of the reply)."
)


class DiagnosisView(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Diagnosis")
        self.verdict = QLabel()
        self.verdict.setAccessibleName("Why was this turn slow")
        self.verdict.setToolTip(TIP)
        self.verdict.setWordWrap(True)
        self.split = QLabel()
        self.split.setAccessibleName("Time split")
        self.split.setToolTip(SPLIT_TIP)
        # Wrapped: one unbroken line of figures set the panel's minimum width (367 px),
        # which kept a 900 px window from fitting with the panel open.
        self.split.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.verdict)
        layout.addWidget(self.split)
        layout.addStretch(1)
        self.set_diagnosis(None)

    def set_diagnosis(self, d: Diagnosis | None) -> None:
        if d is None:
            self.verdict.setText("<i>The diagnosis of the last turn shows here.</i>")
            self.split.setText("")
            return
        self.verdict.setText(
            f"<p><b>Why was this turn slow? {html.escape(d.label)}</b></p>"
            f"<p>{html.escape(d.sentence)}</p>"
            f"<p><b>What to do:</b> {html.escape(d.advice)}</p>"
        )
        self.split.setText(" | ".join(f"{name} {ms:.0f} ms" for name, ms in d.parts_ms.items()))
