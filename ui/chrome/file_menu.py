"""File menu actions (export a conversation or the plots, import a JSON export) and the
Tools menu (experiments, replay of the last reply).

Files are read and written on the window's background runner; only drawing the
plot images (Qt painting) happens on the GUI thread, then the bytes go to disk
in the background. Each command takes an optional path so tests skip the dialog.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog, QMenu, QMessageBox

from app.export.csv_format import write_csv
from app.export.document import ExportError, document_from_store
from app.export.html_report import write_html
from app.export.json_format import import_document, read_json, write_json
from app.export.svg_plots import combined_svg
from app.paths import bundled_model_path
from app.replay import ReplayResult, plan_replay, run_replay
from app.storage.store import Conversation
from ui.dialogs.experiments_dialog import ExperimentsDialog
from ui.infra.error_dialog import show_error
from ui.infra.plot_export import plots_png_bytes, plots_svg_text
from ui.infra.tasks import BackgroundTasks

if TYPE_CHECKING:
    from ui.chrome.window_base import ChatWindowBase

CONVERSATION_FILTERS = (
    "JSON, re-importable (*.json);;CSV, a row per turn (*.csv);;"
    "HTML report (*.html);;SVG plots (*.svg)"
)
PLOT_FILTERS = "PNG image (*.png);;SVG image (*.svg)"
STATUS_MS = 6000


class FileMenuActions(QObject):
    """Export and import commands for the File menu.

    Signals:
        exported(str): a file was written (its path).
        imported(int): a JSON export became this conversation.
        replayed(object): a replay ended (its app.replay.ReplayResult).
    """

    exported = Signal(str)
    imported = Signal(int)
    replayed = Signal(object)

    def __init__(self, window: ChatWindowBase) -> None:
        super().__init__(window)
        self.window = window
        self.actions: list[QAction] = []
        # Replays and experiments load a model of their own and run for seconds: not on
        # the window's runner, where they would hold up its storage jobs.
        self.long_tasks = BackgroundTasks(self, thread_name="glassbox-replay")
        self.experiments_dialog: ExperimentsDialog | None = None
        self._replay_cancel = threading.Event()
        self.install(*_file_menu_and_quit(window))
        self._install_tools_menu()
        window.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        # The window is closing: a replay or an experiment stops at its next token or turn
        # instead of running on after the window is gone.
        if watched is self.window and event.type() == QEvent.Type.Close:
            self._replay_cancel.set()
            if self.experiments_dialog is not None:
                self.experiments_dialog.stop_run()
        return False

    def _install_tools_menu(self) -> None:
        tools = self.window.menuBar().addMenu("&Tools")
        for text, slot, tip in (
            (
                "&Experiments…",
                self.open_experiments,
                "Run the same prompts under two configurations and compare them",
            ),
            (
                "&Replay last reply",
                self.replay_last,
                "Run the last reply again with its recorded model, settings, seed and prompt, "
                "and say whether it came out the same",
            ),
        ):
            action = QAction(text, self.window)
            action.setToolTip(tip)
            action.setStatusTip(tip)
            action.triggered.connect(lambda _checked=False, s=slot: s())
            tools.addAction(action)
            self.actions.append(action)

    def install(self, menu: QMenu, before: QAction | None = None) -> None:
        """Add the actions to `menu`, ahead of `before` (the separator above Quit) when given."""
        entries = (
            (
                "&Export conversation…",
                self.export_conversation,
                "Ctrl+Shift+E",
                "Save the open conversation with its per-turn metrics: JSON, CSV, HTML report, SVG",
            ),
            (
                "Export &plots…",
                self.export_plots,
                None,
                "Save the internals plots as shown: PNG or SVG",
            ),
            (
                "&Import conversation…",
                self.import_conversation,
                None,
                "Add a conversation from a Glassbox JSON export, metrics included",
            ),
        )
        for text, slot, shortcut, tip in entries:
            action = QAction(text, self.window)
            if shortcut:
                action.setShortcut(shortcut)
            action.setToolTip(tip)
            action.setStatusTip(tip)
            action.triggered.connect(lambda _checked=False, s=slot: s())
            self.actions.append(action)
        separator = QAction(self.window)
        separator.setSeparator(True)
        for action in [separator, *self.actions]:
            if before is not None:
                menu.insertAction(before, action)
            else:
                menu.addAction(action)

    # ---- commands -------------------------------------------------------------------------
    def export_conversation(self, path: str | Path | None = None) -> None:
        conversation_id = self.window.controller.conversation_id
        if conversation_id is None:
            self._fail("Open a conversation first: there is nothing to export.")
            return
        target = self._ask_save("Export conversation", CONVERSATION_FILTERS, path)
        if target is None:
            return
        writers = {".json": write_json, ".csv": write_csv, ".html": write_html}
        suffix = target.suffix.lower()
        if suffix not in (*writers, ".svg"):
            self._fail(
                f"Unknown export format {suffix or '(no suffix)'}: use .json, .csv, .html or .svg"
            )
            return
        store = self.window.store

        def job() -> str:
            conversation = store.get_conversation(conversation_id)
            if conversation is None:
                raise ExportError(f"conversation {conversation_id} is gone")
            document = document_from_store(store, conversation)
            if suffix == ".svg":
                target.write_text(combined_svg(document.turn_metrics()), encoding="utf-8")
            else:
                writers[suffix](document, target)
            return str(target)

        self.window.tasks.run(job, on_done=self._on_written, on_error=self._on_error)

    def export_plots(self, path: str | Path | None = None) -> None:
        target = self._ask_save("Export plots", PLOT_FILTERS, path)
        if target is None:
            return
        plots = self.window.panel.turn_plots()
        if target.suffix.lower() == ".svg":
            data = plots_svg_text(plots).encode("utf-8")
        elif target.suffix.lower() == ".png":
            data = plots_png_bytes(plots)
        else:
            self._fail("Plots are exported as .png or .svg")
            return

        def job() -> str:
            target.write_bytes(data)
            return str(target)

        self.window.tasks.run(job, on_done=self._on_written, on_error=self._on_error)

    def import_conversation(self, path: str | Path | None = None) -> None:
        if path is None:
            chosen, _ = QFileDialog.getOpenFileName(
                self.window, "Import conversation", "", "Glassbox JSON export (*.json)"
            )
            if not chosen:
                return
            path = chosen
        source, store = Path(path), self.window.store

        def job() -> Conversation:
            return import_document(store, read_json(source))

        def done(conversation: Conversation) -> None:
            self.window.controller.open_conversation(conversation.id)
            self.window.controller.conversations.refresh_conversations()
            self.window.status.showMessage(
                f"Imported {source.name} as “{conversation.title}”", STATUS_MS
            )
            self.imported.emit(conversation.id)

        self.window.tasks.run(job, on_done=done, on_error=self._on_error)

    def open_experiments(self) -> ExperimentsDialog | None:
        if self.experiments_dialog is None:
            info = self.window.engine.model_info
            model = Path(info.model_path) if info else bundled_model_path()
            if model is None:
                self._fail("Load a model first: experiments start from the current one.")
                return None
            self.experiments_dialog = ExperimentsDialog(
                model, self.window.settings.runtime, self.window.settings.sampling, self.window
            )
        self.experiments_dialog.show()
        self.experiments_dialog.raise_()
        return self.experiments_dialog

    def replay_last(self) -> None:
        conversation_id = self.window.controller.conversation_id
        if conversation_id is None:
            self._fail("Open a conversation first: there is no reply to replay.")
            return
        store = self.window.store
        self.window.status.showMessage("Replaying the last reply…", STATUS_MS)

        cancel = self._replay_cancel

        def job() -> ReplayResult:
            return run_replay(plan_replay(store, conversation_id, "last"), cancel)

        def done(result: ReplayResult) -> None:
            box = QMessageBox(
                QMessageBox.Icon.Information,
                "Replay",
                result.summary(),
                QMessageBox.StandardButton.Ok,
                self.window,
            )
            box.setDetailedText(f"Recorded:\n{result.plan.message.content}\n\nNow:\n{result.text}")
            box.setModal(False)
            box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            box.show()
            self.window.status.showMessage(result.summary(), STATUS_MS)
            self.replayed.emit(result)

        self.long_tasks.run(job, on_done=done, on_error=self._on_error)

    # ---- helpers --------------------------------------------------------------------------
    def _ask_save(self, title: str, filters: str, path: str | Path | None) -> Path | None:
        if path is not None:
            return Path(path)
        chosen, _ = QFileDialog.getSaveFileName(self.window, title, "", filters)
        return Path(chosen) if chosen else None

    def _on_written(self, path: str) -> None:
        self.window.status.showMessage(f"Saved {path}", STATUS_MS)
        self.exported.emit(path)

    def _on_error(self, exc: BaseException) -> None:
        if isinstance(exc, OSError):
            self._fail(f"Could not write the file: {exc.strerror or exc}")
        else:
            self._fail(str(exc))

    def _fail(self, message: str) -> None:
        show_error(self.window, "Glassbox", message)


def _file_menu_and_quit(window: ChatWindowBase) -> tuple[QMenu, QAction | None]:
    """The window's File menu and the separator above Quit (its last entries)."""
    for top in window.menuBar().actions():
        menu = top.menu()
        if isinstance(menu, QMenu) and top.text().replace("&", "") == "File":
            separators = [a for a in menu.actions() if a.isSeparator()]
            return menu, separators[-1] if separators else None
    return window.menuBar().addMenu("&File"), None
