"""The model dropdown above the chat: local models with their fit verdict, then the saved
server endpoints (Settings > Endpoints); the loaded one selected; choosing another asks for
it to be loaded (an endpoint as "endpoint:NAME", which app.engine.switching serves)."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSizePolicy, QWidget

from app.endpoints import Endpoint, load_endpoints
from app.engine.engine_choice import endpoint_choice, is_remote_choice
from app.models.library import ModelEntry, ModelLibrary
from ui.dialogs.models import DEFAULT_FIT_CTX, scan_with_verdicts
from ui.infra.tasks import BackgroundTasks, describe_error

_PATH_ROLE = Qt.ItemDataRole.UserRole
_ROOT_ROLE = Qt.ItemDataRole.UserRole + 1  # an endpoint item's server URL


def _same_file(a: str | Path | None, b: str | Path | None) -> bool:
    """Same path as text: no resolve(), which would touch the disk on the GUI thread."""
    if not a or not b:
        return False
    return os.path.normpath(os.path.abspath(a)) == os.path.normpath(os.path.abspath(b))


def picker_label(entry: ModelEntry, verdict: str) -> str:
    # entry.name is the display name, which already ends with the quantization.
    quant = entry.info.quantization if entry.info else None
    name = entry.name
    if quant and not name.endswith(quant):
        name = f"{name} · {quant}"
    return f"{name}  —  {verdict}" if verdict and verdict != "-" else name


class ModelPicker(QWidget):
    """A combo box of the local models and saved endpoints; scans run on the given
    BackgroundTasks.

    Signals:
        model_requested(str): the user chose a model that is not the loaded one (its path,
            or "endpoint:NAME" for a saved endpoint).
        models_listed(int): the list was filled (number of models).
    """

    model_requested = Signal(str)
    models_listed = Signal(int)

    def __init__(
        self,
        tasks: BackgroundTasks,
        library: ModelLibrary | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._tasks = tasks
        self._library = library or ModelLibrary()
        self._loaded: str | None = None
        self._requested: str | None = None  # the last choice, to tell endpoints apart
        self._n_ctx = DEFAULT_FIT_CTX
        self.combo = QComboBox()
        self.combo.setAccessibleName("Model")
        self.combo.setToolTip(
            "The model this chat runs on, and whether each local model fits in memory at "
            "your context size; pick another to load it (File > Models… to add or download)"
        )
        self.combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.combo.setMinimumContentsLength(18)
        self.combo.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.combo.activated.connect(self._on_combo_activated)
        label = QLabel("Model")
        label.setBuddy(self.combo)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(label)
        layout.addWidget(self.combo, 1)
        self.combo.addItem("Reading the model library…")
        self.combo.setEnabled(False)

    def refresh(self, n_ctx: int | None = None) -> None:
        """List the library again (off the GUI thread), with verdicts at n_ctx."""
        if n_ctx is not None:
            self._n_ctx = n_ctx
        library, ctx = self._library, self._n_ctx
        self._tasks.run(
            lambda: (scan_with_verdicts(library, ctx), load_endpoints()),
            lambda found: self._on_scanned(*found),
            self._on_failed,
        )

    def set_loaded(self, path: str | None) -> None:
        """The engine has this model loaded: select it (or add it when not in the library)."""
        self._loaded = path
        self._select_loaded()

    def loaded_path(self) -> str | None:
        return self._loaded

    def paths(self) -> list[str]:
        """The local models listed (their files)."""
        return [c for c in self._choices() if not is_remote_choice(c)]

    def endpoint_choices(self) -> list[str]:
        """The saved endpoints listed ("endpoint:NAME")."""
        return [c for c in self._choices() if is_remote_choice(c)]

    def _choices(self) -> list[str]:
        return [
            str(self.combo.itemData(i, _PATH_ROLE))
            for i in range(self.combo.count())
            if self.combo.itemData(i, _PATH_ROLE)
        ]

    def _on_scanned(
        self, rows: list[tuple[ModelEntry, str]], endpoints: list[Endpoint] | None = None
    ) -> None:
        self.combo.clear()
        for entry, verdict in rows:
            if entry.usable:
                self.combo.addItem(picker_label(entry, verdict), str(entry.path))
                self.combo.setItemData(
                    self.combo.count() - 1,
                    f"{entry.path}\nfit: {verdict}",
                    Qt.ItemDataRole.ToolTipRole,
                )
        for endpoint in endpoints or []:
            self.combo.addItem(f"{endpoint.label}  —  server", endpoint_choice(endpoint))
            last = self.combo.count() - 1
            self.combo.setItemData(last, endpoint.root, _ROOT_ROLE)
            self.combo.setItemData(
                last, f"{endpoint.root}\nOpenAI-compatible server", Qt.ItemDataRole.ToolTipRole
            )
        self.combo.setEnabled(self.combo.count() > 0)
        if not self.combo.count():
            self.combo.addItem("No local models: File > Models… to add or download one")
        self._select_loaded()
        self.models_listed.emit(len(self.paths()))

    def _on_failed(self, error: BaseException) -> None:
        self.combo.clear()
        self.combo.addItem(f"Cannot list models: {describe_error(error)}")
        self._select_loaded()

    def _select_loaded(self) -> None:
        if not self._loaded:
            return
        if is_remote_choice(self._loaded):  # a server: its model_path is its URL
            roots = [self.combo.itemData(i, _ROOT_ROLE) for i in range(self.combo.count())]
            matches = [i for i, root in enumerate(roots) if root == self._loaded.rstrip("/")]
            chosen = [i for i in matches if self.combo.itemData(i, _PATH_ROLE) == self._requested]
            if matches:
                self.combo.setCurrentIndex((chosen or matches)[0])
                return
        for i in range(self.combo.count()):
            if _same_file(self.combo.itemData(i, _PATH_ROLE), self._loaded):
                self.combo.setCurrentIndex(i)
                return
        # Loaded from elsewhere (--model PATH): shown, so the dropdown never lies.
        shown = self._loaded if is_remote_choice(self._loaded) else Path(self._loaded).stem
        self.combo.insertItem(0, f"{shown}  (loaded)", self._loaded)
        if is_remote_choice(self._loaded):
            self.combo.setItemData(0, self._loaded.rstrip("/"), _ROOT_ROLE)
        self.combo.setCurrentIndex(0)
        self.combo.setEnabled(True)

    def _on_combo_activated(self, index: int) -> None:
        path = self.combo.itemData(index, _PATH_ROLE)
        if not path:
            return
        if is_remote_choice(path):
            if path != self._requested or self.combo.itemData(index, _ROOT_ROLE) != self._loaded:
                self._requested = str(path)
                self.model_requested.emit(str(path))
        elif not _same_file(path, self._loaded):
            self._requested = str(path)
            self.model_requested.emit(str(path))
