"""The banner shown when the engine process dies: exit status, last log lines, Restart."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.engine.events import EngineCrashed

LOG_LINES_SHOWN = 8


class CrashBanner(QFrame):
    """Hidden until show_crash(); the conversation stays usable behind it.

    Signals:
        restart_requested(): Restart engine pressed.
    """

    restart_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("crash_banner")
        self.setAccessibleName("Engine crash notice")
        self.setStyleSheet(
            "#crash_banner { background: #5c1a10; border: 1px solid #D55E00; }"
            "#crash_banner QLabel { color: #ffffff; }"
        )
        self.title = QLabel()
        self.title.setWordWrap(True)
        self.title.setAccessibleName("Crash status")
        self.title.setToolTip("How the engine process ended")
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumHeight(110)
        self.log.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.log.setAccessibleName("Engine log tail")
        self.log.setToolTip("The last lines llama.cpp wrote before the process died")
        self.restart_button = QPushButton("Restart engine")
        self.restart_button.setAccessibleName("Restart engine")
        self.restart_button.setToolTip("Start a new engine process and reload the last model")
        self.restart_button.clicked.connect(self.restart_requested.emit)
        self.dismiss_button = QPushButton("Dismiss")
        self.dismiss_button.setAccessibleName("Dismiss crash notice")
        self.dismiss_button.setToolTip(
            "Hide this notice (the next message restarts the engine too)"
        )
        self.dismiss_button.clicked.connect(self.hide)
        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.restart_button)
        top.addWidget(self.dismiss_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.log)
        self.hide()

    def show_crash(self, event: EngineCrashed) -> None:
        if event.signal_name:
            status = f"killed by {event.signal_name}"
        elif event.exit_code is not None:
            status = f"exit code {event.exit_code}"
        else:
            status = "unknown exit status"
        self.title.setText(
            f"<b>The engine process died ({status}).</b> Your conversation is kept; "
            "a reply cut short is stored and marked partial."
        )
        tail = event.log_tail[-LOG_LINES_SHOWN:]
        self.log.setPlainText("\n".join(tail) if tail else "(the engine wrote no log lines)")
        self.restart_button.setEnabled(True)
        self.show()
