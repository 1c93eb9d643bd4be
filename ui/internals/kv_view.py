"""KV cache: a gauge of cells and bytes, the arithmetic from the model's geometry, and
what happened when the context filled (app.kv_geometry)."""

from __future__ import annotations

import html

from PySide6.QtWidgets import QLabel, QProgressBar, QVBoxLayout, QWidget

from app.kv_geometry import STRATEGY, ContextFill, KvGeometry
from app.metrics import TurnMetrics

CELLS_TIP = (
    "KV cache cells in use: one per token of context (prompt, history and reply). "
    "Long conversations and long prompts fill it; when it is full, old messages are left out."
)
BYTES_TIP = (
    "Memory the KV cache holds for those cells, out of what was set aside when the model "
    "loaded. A larger context size sets aside more; a quantized cache type (q8_0) takes less."
)
MATH_TIP = (
    "How the cache size follows from the model: every layer keeps a K and a V row per cell, "
    "each KV heads x head size numbers of the cache type. More layers, heads or context make "
    "it bigger."
)
FILL_TIP = "What Glassbox does when the history no longer fits, and what it did this turn."


class KvView(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("KV cache")
        self.cells = QProgressBar()
        self.cells.setAccessibleName("KV cells gauge")
        self.cells.setToolTip(CELLS_TIP)
        self.bytes = QProgressBar()
        self.bytes.setAccessibleName("KV bytes gauge")
        self.bytes.setToolTip(BYTES_TIP)
        self.math = QLabel()
        self.math.setAccessibleName("KV cache arithmetic")
        self.math.setToolTip(MATH_TIP)
        self.math.setWordWrap(True)
        self.fill = QLabel()
        self.fill.setAccessibleName("What the full context did")
        self.fill.setToolTip(FILL_TIP)
        self.fill.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        for widget in (self.cells, self.bytes, self.math, self.fill):
            layout.addWidget(widget)
        layout.addStretch(1)
        self.set_geometry(None, None)
        self.set_turn(None, None)

    def set_geometry(self, geometry: KvGeometry | None, reported_mib: float | None) -> None:
        if geometry is None:
            self.math.setText("<i>The cache arithmetic shows once a model is loaded.</i>")
            return
        lines = "<br>".join(html.escape(line) for line in geometry.lines())
        check = f"<br>llama.cpp reported {reported_mib:.2f} MiB" if reported_mib is not None else ""
        note = f"<br><i>{html.escape(geometry.note)}</i>" if geometry.note else ""
        self.math.setText(f"<b>Size from the model's geometry</b><br>{lines}{check}{note}")

    def set_turn(self, m: TurnMetrics | None, fill: ContextFill | None) -> None:
        used, total = (m.kv_cells_used, m.kv_cells_total) if m else (None, None)
        self.cells.setRange(0, max(1, total or 1))
        self.cells.setValue(min(used or 0, total or 1))
        self.cells.setFormat(f"cells {used or 0} / {total or '-'} (%p%)")
        b_used, b_total = (m.kv_bytes_used, m.kv_bytes_total) if m else (None, None)
        mib = 2**20
        self.bytes.setRange(0, max(1, (b_total or 0) // 1024))
        self.bytes.setValue(min((b_used or 0) // 1024, (b_total or 0) // 1024))
        self.bytes.setFormat(f"{(b_used or 0) / mib:.1f} / {(b_total or 0) / mib:.1f} MiB (%p%)")
        said = fill.sentence() if fill else "No turn yet."
        self.fill.setText(
            f"<b>When the context fills</b><br>{html.escape(STRATEGY)}<br><b>This turn:</b> "
            f"{html.escape(said)}"
        )
