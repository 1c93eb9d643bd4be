"""The Hugging Face tab of the model library dialog.

Hub search, file listing and downloads run on the dialog's BackgroundTasks
(ui.infra.tasks), so only the GUI thread touches Qt objects.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.models import hub
from app.models.fit import format_bytes, rough_verdict_for_size
from ui.dialogs.forms import button, row, status_label, table
from ui.infra.tasks import BackgroundTasks, describe_error

HUB_FILE_COLUMNS = ("File", "Quant", "Size", "Fit (approx.)")


class HubTab(QWidget):
    """Search GGUF repositories, list a repository's files, download one with progress.

    Signals:
        search_finished(int): search results are shown (count).
        online_checked(bool): the check made when the tab opens has answered (reachable?).
        files_listed(int): a repository's GGUF files are shown (count).
        download_progressed(object): a DownloadProgress, at phase changes and 10% steps.
        download_finished(str): a file was downloaded and verified (its path).
        download_failed(str): a download failed or was cancelled (one-line message).
    """

    search_finished = Signal(int)
    files_listed = Signal(int)
    online_checked = Signal(bool)
    download_progressed = Signal(object)
    download_finished = Signal(str)
    download_failed = Signal(str)

    def __init__(self, jobs: BackgroundTasks, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._jobs = jobs
        self._files: list[hub.HubFile] = []
        self._cancel: threading.Event | None = None
        self._last_step: tuple[str, int] | None = None
        self.search_edit = QLineEdit(placeholderText="Search GGUF models, e.g. SmolLM2 or Qwen")
        self.search_edit.setAccessibleName("Hub search")
        self.search_edit.returnPressed.connect(self.search)
        self.search_button = button("Search", self.search)
        self.repo_list = QListWidget()
        self.repo_list.setAccessibleName("Repositories")
        self.repo_list.currentItemChanged.connect(self._on_repo_list_current_item_changed)
        self.files_table = table(HUB_FILE_COLUMNS, "Repository files")
        self.download_button = button("Download", self.start_download)
        self.download_button.setEnabled(False)  # until a file is selected
        self.download_button.setToolTip("Download the selected file (select one first)")
        self.files_table.itemSelectionChanged.connect(self._update_download_button)
        self.cancel_button = button("Cancel", self.cancel_download)
        self.cancel_button.setEnabled(False)
        self.progress_bar = QProgressBar()
        self.progress_bar.setAccessibleName("Download progress")
        self.status = status_label("Hub status")
        lists = QHBoxLayout()
        lists.addWidget(self.repo_list, 2)
        lists.addWidget(self.files_table, 3)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row((self.search_edit, 1), self.search_button))
        layout.addLayout(lists, 1)
        layout.addLayout(row((self.progress_bar, 1), self.download_button, self.cancel_button))
        layout.addWidget(self.status)
        self.online: bool | None = None
        self.check_online()

    def check_online(self) -> None:
        """Say up front whether the Hub can be reached (a socket probe, off the GUI thread)."""
        self.status.setText("Checking the connection to the Hugging Face Hub…")
        self._jobs.run(hub.ensure_online, self._on_online, self._on_offline)

    def _on_online(self, _none: object) -> None:
        self.online = True
        if self.status.text().startswith("Checking the connection"):
            self.status.setText("Search the Hugging Face Hub for GGUF models.")
        self.online_checked.emit(True)

    def _on_offline(self, error: BaseException) -> None:
        self.online = False
        self.status.setText(describe_error(error))
        self.online_checked.emit(False)

    def _update_download_button(self) -> None:
        r = self.files_table.currentRow()
        selected = bool(self.files_table.selectedItems()) and 0 <= r < len(self._files)
        self.download_button.setEnabled(selected and self._cancel is None)

    @property
    def downloading(self) -> bool:
        return self._cancel is not None

    def search(self) -> None:
        query = self.search_edit.text().strip()
        self.status.setText(f"Searching for {query!r}…" if query else "Listing GGUF models…")
        self.search_button.setEnabled(False)
        self._jobs.run(lambda: hub.search_models(query), self._on_search_done, self._on_error)

    def _on_search_done(self, repos: list[hub.HubRepo]) -> None:
        self.search_button.setEnabled(True)
        self.repo_list.clear()
        for repo in repos:
            label = f"{repo.repo_id}  ·  {repo.downloads or 0:,} downloads"
            item = QListWidgetItem(label + ("  (gated)" if repo.gated else ""))
            item.setData(Qt.ItemDataRole.UserRole, repo.repo_id)
            self.repo_list.addItem(item)
        self.status.setText(f"{len(repos)} repositories" if repos else "Nothing found.")
        self.search_finished.emit(len(repos))

    def _on_repo_list_current_item_changed(self, item: QListWidgetItem | None) -> None:
        if item is not None:
            self.list_files(str(item.data(Qt.ItemDataRole.UserRole)))

    def list_files(self, repo_id: str) -> None:
        self.status.setText(f"Listing {repo_id}…")
        self._files = []
        self.files_table.setRowCount(0)
        self._update_download_button()
        self._jobs.run(lambda: hub.list_gguf_files(repo_id), self._on_listed, self._on_error)

    def _on_listed(self, files: list[hub.HubFile]) -> None:
        self._files = files
        self.files_table.setRowCount(len(files))
        for r, f in enumerate(files):
            size = format_bytes(f.size_bytes)
            cells = (f.filename, f.quantization or "?", size, rough_verdict_for_size(f.size_bytes))
            for c, text in enumerate(cells):
                self.files_table.setItem(r, c, QTableWidgetItem(text))
        self.files_table.resizeColumnsToContents()
        if files:
            self.files_table.selectRow(0)
        self.status.setText(f"{len(files)} GGUF files; fit is judged from the file size")
        self.files_listed.emit(len(files))

    def _on_error(self, error: BaseException) -> None:
        self.search_button.setEnabled(True)
        self.status.setText(describe_error(error))

    def start_download(self) -> None:
        r = self.files_table.currentRow()
        if self._cancel is not None or not 0 <= r < len(self._files):
            return
        file = self._files[r]
        cancel = self._cancel = threading.Event()
        self.download_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress_bar.setValue(0)
        self.status.setText(f"Downloading {file.filename}…")
        self._last_step = None

        def download(progress: Callable[[Any], None]) -> Path:
            return hub.download_gguf(file, on_progress=progress, cancel=cancel)

        self._jobs.run_with_progress(
            download, self._on_downloaded, self._on_download_error, self._on_progress
        )

    def cancel_download(self) -> None:
        if self._cancel is not None:
            self._cancel.set()  # the download stops at its next chunk and leaves nothing
            self.cancel_button.setEnabled(False)
            self.status.setText("Cancelling…")

    def _on_progress(self, p: hub.DownloadProgress) -> None:
        if self._cancel is None or self._cancel.is_set():
            return
        total = p.total_bytes or 0
        self.progress_bar.setValue(int(100 * p.done_bytes / total) if total else 0)
        rate = f"{format_bytes(int(p.rate_bytes_s))}/s" if p.rate_bytes_s else "…"
        eta = f", {p.eta_s:.0f} s left" if p.eta_s is not None else ""
        verb = "Verifying" if p.phase == "verifying" else "Downloading"
        done = f"{format_bytes(p.done_bytes)} of {format_bytes(total)}"
        self.status.setText(f"{verb} {p.filename}: {done} · {rate}{eta}")
        # Few emits on purpose: PySide6 6.12.0 loses a reference to True on every
        # Python-side emit() (tests/ui/test_views.py checks for it); a multi-GB
        # download must not emit per chunk. Phase changes and 10% steps only.
        step = (p.phase, int(10 * p.done_bytes / total) if total else 0)
        if step != self._last_step:
            self._last_step = step
            self.download_progressed.emit(p)

    def _download_ended(self) -> None:
        self._cancel = None
        self.cancel_button.setEnabled(False)
        self._update_download_button()

    def _on_downloaded(self, path: Path) -> None:
        self._download_ended()
        self.progress_bar.setValue(100)
        self.status.setText(f"Downloaded and verified: {path}")
        self.download_finished.emit(str(path))

    def _on_download_error(self, error: BaseException) -> None:
        self._download_ended()
        self.progress_bar.setValue(0)
        message = describe_error(error)
        self.status.setText(message)
        self.download_failed.emit(message)
