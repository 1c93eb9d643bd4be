"""Model library dialog: local GGUF files with a memory-fit verdict, plus the
Hugging Face tab (search, download with progress and Cancel).

The main window opens it with `ModelsDialog(parent, on_model_chosen=callable(path))`.
Library scans, the check before "Use this model" and all Hub work run on the
dialog's BackgroundTasks (ui.infra.tasks, several workers); only the GUI thread
touches widgets, and no header is read on it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QHeaderView,
    QInputDialog,
    QLabel,
    QMessageBox,
    QSpinBox,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.errors import GlassboxError
from app.models.fit import estimate_fit, format_bytes
from app.models.library import ModelEntry, ModelLibrary
from app.models.removal import DeletePlan, delete, plan_delete
from ui.dialogs.forms import button, page, row, status_label, table
from ui.dialogs.hub_tab import HubTab
from ui.infra.tasks import BackgroundTasks, describe_error

LIBRARY_COLUMNS = ("Name", "Quant", "Params", "Context", "Size", "Fit", "Source", "Path")
PATH_COLUMN = LIBRARY_COLUMNS.index("Path")
NAME_COLUMN_MAX = 280  # px; longer names are elided, the tooltip has them whole
DEFAULT_FIT_CTX = 4096
LOADED_MARK = "  (loaded)"


def _ask(parent: QWidget, title: str, text: str) -> bool:
    answer = QMessageBox.question(
        parent,
        title,
        text,
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.No,
    )
    return answer == QMessageBox.StandardButton.Yes


def _fmt_params(n: int | None) -> str:
    if n is None:
        return "?"
    return f"{n / 1e9:.1f}B" if n >= 1e9 else f"{n / 1e6:.0f}M"


def scan_with_verdicts(library: ModelLibrary, n_ctx: int) -> list[tuple[ModelEntry, str]]:
    """Library entries with a fit verdict at n_ctx (runs off the GUI thread)."""
    rows = []
    for entry in library.scan():
        verdict = "-"
        if entry.info is not None:
            try:
                fit = estimate_fit(entry.info, n_ctx)
                verdict = f"{fit.verdict} ({format_bytes(fit.total_bytes)})"
            except GlassboxError:
                verdict = "unknown"
        rows.append((entry, verdict))
    return rows


def _cells(entry: ModelEntry, verdict: str) -> tuple[str, ...]:
    info = entry.info
    if info is None:
        size = format_bytes(entry.to_dict()["size_bytes"])
        return (
            f"{entry.name} (unreadable)",
            "-",
            "-",
            "-",
            size,
            "-",
            entry.source,
            str(entry.path),
        )
    return (
        entry.name,
        info.quantization or "?",
        _fmt_params(info.parameters),
        str(info.context_length or "?"),
        format_bytes(info.size_bytes),
        verdict,
        entry.repo_id or entry.source,
        str(entry.path),
    )


class ModelsDialog(QDialog):
    """Lists, judges and fetches GGUF models.

    Signals:
        library_loaded(int): the library table was filled (number of entries).
        library_changed(): a folder was added or removed, or a file deleted or downloaded.
        model_chosen(str): the user picked a model to load (its path).
        The Hugging Face tab's signals are on `hub_tab` (search_finished, files_listed,
        download_progressed, download_finished, download_failed).
    """

    library_loaded = Signal(int)
    library_changed = Signal()
    model_chosen = Signal(str)

    def __init__(
        self,
        parent: QWidget | None = None,
        on_model_chosen: Callable[[Path], Any] | None = None,
        n_ctx: int = DEFAULT_FIT_CTX,
        library: ModelLibrary | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Model library")
        self.setAccessibleName("Model library")
        self.resize(980, 560)
        self._on_model_chosen = on_model_chosen
        self._library = library or ModelLibrary()
        self._entries: list[ModelEntry] = []
        self._loaded: str | None = None
        # Asked before a file is deleted; tests answer in its place.
        self.confirm: Callable[[str, str], bool] = lambda title, text: _ask(self, title, text)
        self.choose_folder: Callable[[list[Path]], Path | None] = self._choose_folder
        # Several workers: a search or a scan is not held up behind a download.
        self.jobs = BackgroundTasks(self, max_workers=4, thread_name="glassbox-models")

        self.library_table = table(LIBRARY_COLUMNS, "Local models")
        self.library_table.itemDoubleClicked.connect(self._on_library_table_item_double_clicked)
        # Long paths lose their middle, not the file name; the tooltip has them whole.
        self.library_table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.library_table.setWordWrap(False)
        self.library_table.horizontalHeader().setSectionResizeMode(
            PATH_COLUMN, QHeaderView.ResizeMode.Stretch
        )
        self.library_table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.ctx_spin = QSpinBox(minimum=256, maximum=1 << 20, singleStep=1024, value=n_ctx)
        self.ctx_spin.setAccessibleName("Context for the fit estimate")
        self.ctx_spin.setToolTip("n_ctx used for the KV cache part of the memory estimate")
        self.ctx_spin.editingFinished.connect(self.refresh_library)
        self.use_button = button("Use this model", self._on_use_button_clicked)
        self.library_status = status_label("Library status")
        add_button = button("Add folder…", self._on_add_button_clicked)
        self.remove_folder_button = button("Remove folder…", self._on_remove_folder_clicked)
        self.remove_folder_button.setToolTip(
            "Stop listing the models of a folder you added (its files stay on disk)"
        )
        self.delete_button = button("Delete file…", self._on_delete_button_clicked)
        self.delete_button.setToolTip(
            "Delete the selected model file from disk (asks first, and says so when the file "
            "is outside the Glassbox models folder and the Hugging Face cache)"
        )
        refresh_button = button("Refresh", self.refresh_library)
        controls = row(
            QLabel("Fit at n_ctx"),
            self.ctx_spin,
            add_button,
            self.remove_folder_button,
            refresh_button,
            None,
        )
        controls.addWidget(self.delete_button)
        controls.addWidget(self.use_button)

        self.hub_tab = HubTab(self.jobs)
        self.hub_tab.download_finished.connect(self._on_hub_tab_download_finished)
        self.tabs = QTabWidget(self)
        self.tabs.addTab(page(self.library_table, controls, self.library_status), "Library")
        self.tabs.addTab(self.hub_tab, "Hugging Face")
        QVBoxLayout(self).addWidget(self.tabs)
        self.refresh_library()

    # Library -------------------------------------------------------------

    def set_fit_ctx(self, n_ctx: int) -> None:
        """Fit verdicts for this context size; rescans when it changed."""
        if n_ctx != self.ctx_spin.value():
            self.ctx_spin.setValue(n_ctx)
            self.refresh_library()

    def refresh_library(self) -> None:
        n_ctx, library = self.ctx_spin.value(), self._library
        self.library_status.setText("Reading model headers…")
        self.jobs.run(
            lambda: scan_with_verdicts(library, n_ctx), self._on_scanned, self._on_scan_error
        )

    def _on_scanned(self, rows: list[tuple[ModelEntry, str]]) -> None:
        self._entries = [entry for entry, _ in rows]
        self.library_table.setRowCount(len(rows))
        for r, (entry, verdict) in enumerate(rows):
            for c, text in enumerate(_cells(entry, verdict)):
                item = QTableWidgetItem(text)
                item.setToolTip(entry.error or text)
                self.library_table.setItem(r, c, item)
        for column in range(len(LIBRARY_COLUMNS)):
            if column != PATH_COLUMN:  # the path takes the width left (a stretched section)
                self.library_table.resizeColumnToContents(column)
        if self.library_table.columnWidth(0) > NAME_COLUMN_MAX:
            self.library_table.setColumnWidth(0, NAME_COLUMN_MAX)
        self._mark_loaded()
        unreadable = sum(1 for e in self._entries if e.error)
        note = f", {unreadable} unreadable (hover for why)" if unreadable else ""
        n_ctx = self.ctx_spin.value()
        self.library_status.setText(
            f"{len(rows)} model{'' if len(rows) == 1 else 's'}{note}; fit at n_ctx {n_ctx}"
        )
        self.library_loaded.emit(len(rows))

    def _on_scan_error(self, error: BaseException) -> None:
        self.library_status.setText(describe_error(error))

    def set_loaded(self, path: str | Path | None) -> None:
        """Mark the model the engine has loaded (name in bold, "(loaded)")."""
        self._loaded = str(path) if path else None
        self._mark_loaded()

    def loaded_row(self) -> int | None:
        for r, entry in enumerate(self._entries):
            if self._loaded and str(entry.path) == self._loaded:
                return r
        return None

    def _mark_loaded(self) -> None:
        loaded = self.loaded_row()
        for r in range(min(self.library_table.rowCount(), len(self._entries))):
            item = self.library_table.item(r, 0)
            if item is None:
                continue
            name = item.text().removesuffix(LOADED_MARK)
            item.setText(name + LOADED_MARK if r == loaded else name)
            font = item.font()
            font.setBold(r == loaded)
            item.setFont(font)
            if r == loaded:
                item.setToolTip(f"{name}: the model loaded now")

    def entries(self) -> list[ModelEntry]:
        return list(self._entries)

    def select_path(self, path: str | Path) -> bool:
        for r, entry in enumerate(self._entries):
            if entry.path == Path(path):
                self.library_table.selectRow(r)
                return True
        return False

    def _on_library_table_item_double_clicked(self, _item: QTableWidgetItem) -> None:
        self._on_use_button_clicked()

    def _on_use_button_clicked(self) -> None:
        r = self.library_table.currentRow()
        if not 0 <= r < len(self._entries):
            self.library_status.setText("Select a model first.")
            return
        entry, library = self._entries[r], self._library
        self.use_button.setEnabled(False)
        # It may have moved since the list was made; re-reading it is file I/O,
        # which stays off the GUI thread.
        self.jobs.run(
            lambda: library.check(entry),
            lambda _info: self._on_use_checked(entry),
            self._on_use_check_failed,
        )

    def _on_use_check_failed(self, error: BaseException) -> None:
        self.use_button.setEnabled(True)
        self.library_status.setText(describe_error(error))
        self.refresh_library()

    def _on_use_checked(self, entry: ModelEntry) -> None:
        self.use_button.setEnabled(True)
        if self._on_model_chosen is not None:
            self._on_model_chosen(entry.path)
        self.model_chosen.emit(str(entry.path))
        self.accept()

    def _on_add_button_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder of GGUF models")
        if folder:
            self.add_folder(folder)

    def add_folder(self, folder: str | Path) -> None:
        library = self._library
        self.jobs.run(
            lambda: library.add_folder(folder),
            lambda added: self._on_library_changed(f"Added {added}."),
            self._on_scan_error,
        )

    def _on_remove_folder_clicked(self) -> None:
        library = self._library
        self.jobs.run(library.folders, self._on_folders_listed, self._on_scan_error)

    def _on_folders_listed(self, folders: list[Path]) -> None:
        if not folders:
            self.library_status.setText(
                "No added folders to remove (the models folder and the Hugging Face cache "
                "are always listed)."
            )
            return
        folder = self.choose_folder(folders)
        if folder is not None:
            self.remove_folder(folder)

    def _choose_folder(self, folders: list[Path]) -> Path | None:
        names = [str(f) for f in folders]
        choice, ok = QInputDialog.getItem(
            self, "Remove folder", "Stop listing models from:", names, 0, False
        )
        return Path(choice) if ok and choice else None

    def remove_folder(self, folder: str | Path) -> None:
        """Stop listing a folder's models; its files are left alone."""
        library = self._library
        self.jobs.run(
            lambda: library.remove_folder(folder),
            lambda _none: self._on_library_changed(f"Removed {folder} from the library."),
            self._on_scan_error,
        )

    def _on_delete_button_clicked(self) -> None:
        r = self.library_table.currentRow()
        if not 0 <= r < len(self._entries):
            self.library_status.setText("Select a model first.")
            return
        entry = self._entries[r]
        if self._loaded and str(entry.path) == self._loaded:
            self.library_status.setText(
                "That model is loaded now: load another one before deleting it."
            )
            return
        # Where the file really is takes reading links: off the GUI thread.
        self.jobs.run(lambda: plan_delete(entry), self._on_delete_planned, self._on_scan_error)

    def _on_delete_planned(self, plan: DeletePlan) -> None:
        title = "Delete model file" if plan.owned else "Delete your own file?"
        if not self.confirm(title, plan.question()):
            self.library_status.setText("Nothing deleted.")
            return
        self.jobs.run(
            lambda: delete(plan),
            lambda removed: self._on_library_changed(
                f"Deleted {plan.entry_path.name}"
                + ("" if removed else " (it was already gone)")
                + "."
            ),
            self._on_scan_error,
        )

    def _on_library_changed(self, message: str) -> None:
        self.library_loaded.connect(
            lambda _n: self.library_status.setText(message),
            Qt.ConnectionType.SingleShotConnection,
        )
        self.refresh_library()
        self.library_changed.emit()

    def _on_hub_tab_download_finished(self, path: str) -> None:
        # Show the new model in the library, selected, ready for "Use this model".
        self.library_loaded.connect(
            lambda _n: self.select_path(path), Qt.ConnectionType.SingleShotConnection
        )
        self.refresh_library()
        self.library_changed.emit()
        self.tabs.setCurrentIndex(0)

    def done(self, result: int) -> None:
        self.hub_tab.cancel_download()  # a running download stops and leaves nothing
        super().done(result)
