"""Settings dialog: runtime settings (applied by reloading the model) and sampling settings.

Each page is its own form (ui.dialogs.runtime_form, ui.dialogs.sampling_form).
Values are checked with the core's own validate() as the user types; OK stays
disabled and the reason is shown while anything is invalid.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QTabWidget, QVBoxLayout, QWidget

from app.errors import SettingsError
from app.settings import RuntimeSettings, SamplingSettings
from ui.dialogs.endpoint_page import EndpointPage
from ui.dialogs.runtime_form import RuntimeForm
from ui.dialogs.sampling_form import SamplingForm

# Room for the longest form row and its tooltip-free labels without squeezing.
MINIMUM_SIZE = (560, 520)
README_PATH = Path(__file__).resolve().parents[2] / "README.md"
GPU_SECTION = "gpu-builds"
GPU_LINK_TEXT = (
    f"This build runs on the CPU only. <a href='#{GPU_SECTION}'>How to enable GPU offload</a>"
)


def gpu_help_url() -> QUrl:
    """The README's GPU section: the local copy of a source checkout."""
    url = QUrl.fromLocalFile(str(README_PATH))
    url.setFragment(GPU_SECTION)
    return url


class SettingsDialog(QDialog):
    """Edits a RuntimeSettings and a SamplingSettings; read the result from runtime()/sampling()."""

    def __init__(
        self,
        runtime: RuntimeSettings,
        sampling: SamplingSettings,
        n_layers: int = 0,
        gpu_offload_supported: bool = False,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setAccessibleName("Settings")
        self.setMinimumSize(*MINIMUM_SIZE)
        self.runtime_form = RuntimeForm(runtime, n_layers, gpu_offload_supported)
        self._link_gpu_help()
        self.sampling_form = SamplingForm(sampling)
        self.tabs = QTabWidget()
        self.tabs.setAccessibleName("Settings pages")
        self.tabs.addTab(self.runtime_form, "Runtime")
        self.tabs.addTab(self.sampling_form, "Sampling")
        self.endpoint_page = EndpointPage()  # saves on its own buttons, not on OK
        self.tabs.addTab(self.endpoint_page, "Endpoints")
        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #D55E00; font-weight: bold;")
        self.error_label.setAccessibleName("Settings error")
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setAccessibleName("Apply settings")
        self.ok_button.setToolTip("Save; a changed runtime setting reloads the model")
        cancel = self.buttons.button(QDialogButtonBox.StandardButton.Cancel)
        cancel.setAccessibleName("Cancel settings")
        cancel.setToolTip("Close without changing anything")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs)
        layout.addWidget(self.error_label)
        layout.addWidget(self.buttons)
        self.runtime_form.changed.connect(self._on_form_changed)
        self.sampling_form.changed.connect(self._on_form_changed)
        self._on_form_changed()

    def _link_gpu_help(self) -> None:
        """End users get a link to the build instructions, not a pip/CMake command line."""
        hint = self.runtime_form.gpu_hint
        hint.setText(GPU_LINK_TEXT)
        hint.setTextInteractionFlags(Qt.TextInteractionFlag.LinksAccessibleByMouse)
        hint.setOpenExternalLinks(False)
        hint.linkActivated.connect(self._on_gpu_hint_link_activated)
        hint.setToolTip("Opens the README's GPU section")
        tip = "GPU offload needs a llama-cpp-python build with a GPU backend (see the link below)"
        for widget in (self.runtime_form.gpu_layers, self.runtime_form.gpu_all):
            if not widget.isEnabled():
                widget.setToolTip(tip)

    def _on_gpu_hint_link_activated(self, _link: str) -> None:
        QDesktopServices.openUrl(gpu_help_url())

    def runtime(self) -> RuntimeSettings:
        return self.runtime_form.value()

    def sampling(self) -> SamplingSettings:
        return self.sampling_form.value()

    def validation_error(self) -> str | None:
        """None when both groups are valid, else the first reason."""
        try:
            self.runtime().validate()
            self.sampling().validate()
        except SettingsError as exc:
            return str(exc)
        return None

    def _on_form_changed(self) -> None:
        error = self.validation_error()
        self.error_label.setText(error or "")
        self.error_label.setVisible(error is not None)
        self.ok_button.setEnabled(error is None)

    def accept(self) -> None:
        error = self.validation_error()
        if error is not None:  # OK is disabled, but Enter in a field still lands here
            self.error_label.setText(error)
            self.error_label.show()
            return
        super().accept()
