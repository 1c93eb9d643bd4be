"""The banner shown when the engine process dies: exit status, the log lines that explain
it, the full log one click away, a bug report to copy, and Restart."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.crash_report import bug_report, meaningful_lines, read_log
from app.engine.events import EngineCrashed
from ui.infra.tasks import BackgroundTasks, describe_error

LOG_LINES_SHOWN = 8


class LogDialog(QDialog):
    """The whole engine log, read off the GUI thread."""

    def __init__(self, path: Path | None, tasks: BackgroundTasks, parent: QWidget | None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Engine log{f' - {path.name}' if path else ''}")
        self.setAccessibleName("Engine log")
        self.resize(900, 560)
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.text.setAccessibleName("Full engine log")
        self.text.setPlainText(f"Reading {path}…" if path else "")
        self.path_label = QLabel(str(path) if path else "")
        self.path_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QVBoxLayout(self)
        layout.addWidget(self.path_label)
        layout.addWidget(self.text)
        tasks.run(lambda: read_log(path), self._on_read, self._on_read_failed)

    def _on_read(self, text: str) -> None:
        self.text.setPlainText(text)
        self.text.moveCursor(self.text.textCursor().MoveOperation.End)  # the end explains it

    def _on_read_failed(self, error: BaseException) -> None:
        self.text.setPlainText(describe_error(error))


class CrashBanner(QFrame):
    """Hidden until show_crash(); the conversation stays usable behind it.

    Signals:
        restart_requested(): Restart engine pressed.
        report_copied(str): the bug report is on the clipboard (its text).
    """

    restart_requested = Signal()
    report_copied = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("crash_banner")
        self.setAccessibleName("Engine crash notice")
        self.setStyleSheet(
            "#crash_banner { background: #5c1a10; border: 1px solid #D55E00; }"
            "#crash_banner QLabel { color: #ffffff; }"
        )
        # Its own worker: the bug report loads a model for a few seconds, which must not
        # hold up the window's store writes.
        self.tasks = BackgroundTasks(self, thread_name="glassbox-crash-report")
        self._log_path: Path | None = None
        self._model_path: str | None = None
        self._crash_line = ""
        self.log_dialog: LogDialog | None = None
        self.title = QLabel()
        self.title.setWordWrap(True)
        self.title.setAccessibleName("Crash status")
        self.title.setToolTip("How the engine process ended")
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumHeight(110)
        self.log.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.log.setAccessibleName("Engine log tail")
        self.log.setToolTip(
            "What llama.cpp logged last: its errors and warnings, then its last operations "
            "(the full log is one click away)"
        )
        self.restart_button = self._button(
            "Restart engine", "Start a new engine process and reload the last model"
        )
        self.restart_button.clicked.connect(self.restart_requested.emit)
        self.full_log_button = self._button("Full log…", "Show the engine's whole log")
        self.full_log_button.clicked.connect(self.show_full_log)
        self.report_button = self._button(
            "Copy bug report",
            "Run `glassbox doctor` and copy its output with the log's last lines, "
            "ready to paste into an issue",
        )
        self.report_button.clicked.connect(self.copy_bug_report)
        self.dismiss_button = self._button(
            "Dismiss", "Hide this notice (the next message restarts the engine too)"
        )
        self.dismiss_button.setAccessibleName("Dismiss crash notice")
        self.dismiss_button.clicked.connect(self.hide)
        self.report_status = QLabel()
        self.report_status.setAccessibleName("Bug report status")
        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.restart_button)
        top.addWidget(self.dismiss_button)
        bottom = QHBoxLayout()
        bottom.addWidget(self.report_status, 1)
        bottom.addWidget(self.full_log_button)
        bottom.addWidget(self.report_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.log)
        layout.addLayout(bottom)
        self.hide()

    def _button(self, text: str, tip: str) -> QPushButton:
        button = QPushButton(text)
        button.setAccessibleName(text.rstrip("…"))
        button.setToolTip(tip)
        return button

    def show_crash(
        self, event: EngineCrashed, log_path: Path | None = None, model_path: str | None = None
    ) -> None:
        if event.signal_name:
            status = f"killed by {event.signal_name}"
        elif event.exit_code is not None:
            status = f"exit code {event.exit_code}"
        else:
            status = "unknown exit status"
        self._log_path, self._model_path = log_path, model_path
        self._crash_line = f"The engine process died ({status})."
        self.title.setText(
            f"<b>The engine process died ({status}).</b> Your conversation is kept; "
            "a reply cut short is stored and marked partial."
        )
        tail = meaningful_lines(event.log_tail, LOG_LINES_SHOWN)
        self.log.setPlainText("\n".join(tail) if tail else "(the engine wrote no log lines)")
        self.log.moveCursor(self.log.textCursor().MoveOperation.End)  # the last lines in view
        self.full_log_button.setEnabled(log_path is not None)
        self.report_status.setText("")
        self.restart_button.setEnabled(True)
        self.show()

    def show_full_log(self) -> LogDialog:
        dialog = LogDialog(self._log_path, self.tasks, self.window())
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.log_dialog = dialog
        dialog.show()
        return dialog

    def copy_bug_report(self) -> None:
        """Doctor's output and the log tail to the clipboard; doctor runs off the GUI thread."""
        model, log, line = self._model_path, self._log_path, self._crash_line
        self.report_button.setEnabled(False)
        self.report_status.setText("Running glassbox doctor (a few seconds)…")
        self.tasks.run(lambda: bug_report(model, log, line), self._on_report, self._on_report_error)

    def _on_report(self, text: str) -> None:
        self.report_button.setEnabled(True)
        QGuiApplication.clipboard().setText(text)
        self.report_status.setText("Bug report copied: paste it into an issue.")
        self.report_copied.emit(text)

    def _on_report_error(self, error: BaseException) -> None:
        self.report_button.setEnabled(True)
        self.report_status.setText(f"Could not make the report: {describe_error(error)}")
