"""Settings > Endpoints: OpenAI-compatible servers to chat with (llama-server, vLLM, Ollama).

Saved endpoints live in app.endpoints' file: the URL, the model and where the
API key comes from (an environment variable's name, or the system keyring),
never the key. Saving and removing act at once, apart from the dialog's OK.
Disk and network work (reading the list, /v1/models) run on the page's own
background runner; the GUI thread only shows the outcome.
"""

from __future__ import annotations

from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QVBoxLayout,
    QWidget,
)

from app.endpoints import KEY_SOURCES, Endpoint, load_endpoints, save_endpoints
from app.errors import GlassboxError
from ui.dialogs.forms import button, row, status_label, with_tip
from ui.infra.tasks import BackgroundTasks

KEY_SOURCE_LABELS = {
    "none": "No key",
    "env": "Environment variable",
    "keyring": "System keyring",
}


class EndpointPage(QWidget):
    """Edits the saved endpoints list. No signals: the list on disk is the result."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tasks = BackgroundTasks(self, max_workers=1, thread_name="glassbox-endpoints")
        self.endpoints: list[Endpoint] = []
        self._saving: tuple[list[Endpoint], str] = ([], "")
        intro = QLabel(
            "Chat with a model served elsewhere: llama.cpp's llama-server, vLLM, Ollama or any "
            "server with the OpenAI chat API. The same plots show, with the server's own "
            "figures where it reports them. Glassbox never stores the API key: name the "
            "environment variable that holds it, or keep it in the system keyring "
            "(service 'glassbox', user: the URL)."
        )
        intro.setWordWrap(True)
        self.saved = with_tip(QListWidget(), "Saved endpoints", "Pick one to edit it")
        self.saved.currentRowChanged.connect(self._on_saved_current_row_changed)
        self.name = with_tip(QLineEdit(), "Endpoint name", "What the picker and --endpoint call it")
        self.url = with_tip(
            QLineEdit(), "Base URL", "http://host:port or https://host/v1 (the /v1 is optional)"
        )
        self.url.setPlaceholderText("http://127.0.0.1:8080")
        self.key_source = with_tip(QComboBox(), "API key source", "Where the key is read from")
        for source in KEY_SOURCES:
            self.key_source.addItem(KEY_SOURCE_LABELS[source], source)
        self.key_env = with_tip(
            QLineEdit(), "API key variable", "The environment variable's name, e.g. OPENAI_API_KEY"
        )
        self.model = with_tip(QComboBox(), "Remote model", "Fetch the list, or type a name")
        self.model.setEditable(True)
        self.fetch_button = with_tip(
            button("Fetch models", self._on_fetch_button_clicked),
            "Fetch models",
            "Ask the server for its models (/v1/models)",
        )
        self.status = status_label("Endpoint status")
        self.save_button = with_tip(
            button("Save endpoint", self._on_save_button_clicked),
            "Save endpoint",
            "Add this endpoint, or replace the saved one of the same name",
        )
        self.remove_button = with_tip(
            button("Remove", self._on_remove_button_clicked),
            "Remove endpoint",
            "Forget the selected endpoint",
        )
        form = QFormLayout()
        form.addRow("Name", self.name)
        form.addRow("Base URL", self.url)
        form.addRow("API key from", self.key_source)
        form.addRow("Key variable", self.key_env)
        form.addRow("Model", self.model)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.saved, 1)
        layout.addLayout(form)
        layout.addLayout(row(self.fetch_button, None, self.save_button, self.remove_button))
        layout.addWidget(self.status)
        self.key_source.currentIndexChanged.connect(self._on_key_source_changed)
        self._on_key_source_changed()
        self._listed = False  # the saved list is read when the page is first shown

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt's name
        # Not in __init__: a settings dialog opened for another page starts no thread.
        if not self._listed:
            self._listed = True
            self.tasks.run(load_endpoints, on_done=self._show_saved)
        super().showEvent(event)

    # -- the form ------------------------------------------------------------------

    def endpoint(self) -> Endpoint:
        """The form as an Endpoint; SettingsError says what is wrong."""
        return Endpoint(
            base_url=self.url.text().strip(),
            model=self.model.currentText().strip(),
            key_source=str(self.key_source.currentData()),
            api_key_env=self.key_env.text().strip(),
            name=self.name.text().strip(),
        ).validate()

    def _fill(self, endpoint: Endpoint) -> None:
        self.name.setText(endpoint.name)
        self.url.setText(endpoint.base_url)
        self.key_source.setCurrentIndex(max(0, self.key_source.findData(endpoint.key_source)))
        self.key_env.setText(endpoint.api_key_env)
        self.model.setEditText(endpoint.model)

    def _show_saved(self, endpoints: list[Endpoint]) -> None:
        self.endpoints = list(endpoints)
        self.saved.clear()
        self.saved.addItems([e.label for e in self.endpoints])
        self.remove_button.setEnabled(bool(self.endpoints))

    def _on_key_source_changed(self) -> None:
        self.key_env.setEnabled(self.key_source.currentData() == "env")

    def _on_saved_current_row_changed(self, index: int) -> None:
        if 0 <= index < len(self.endpoints):
            self._fill(self.endpoints[index])

    # -- actions -------------------------------------------------------------------

    def _on_fetch_button_clicked(self) -> None:
        try:
            endpoint = self.endpoint()
        except GlassboxError as exc:
            self.status.setText(str(exc))
            return
        self.fetch_button.setEnabled(False)
        self.status.setText(f"Asking {endpoint.root} for its models…")
        # Imported here: the HTTP client is not worth loading until someone asks a server.
        from app.engine.remote_client import fetch_models

        self.tasks.run(
            lambda: fetch_models(endpoint), on_done=self._show_models, on_error=self._show_error
        )

    def _show_models(self, models: list[str]) -> None:
        self.fetch_button.setEnabled(True)
        typed = self.model.currentText()
        self.model.clear()
        self.model.addItems(models)
        self.model.setEditText(typed if typed in models else (models[0] if models else ""))
        self.status.setText(f"The server lists {len(models)} model(s).")

    def _show_error(self, exc: BaseException) -> None:
        self.fetch_button.setEnabled(True)
        self.save_button.setEnabled(True)
        text = str(exc) if isinstance(exc, GlassboxError) else f"{type(exc).__name__}: {exc}"
        self.status.setText(text.splitlines()[0] if text else type(exc).__name__)

    def _on_save_button_clicked(self) -> None:
        try:
            endpoint = self.endpoint()
        except GlassboxError as exc:
            self.status.setText(str(exc))
            return
        key = endpoint.name or endpoint.root
        kept = [e for e in self.endpoints if (e.name or e.root) != key]
        self._store([*kept, endpoint], f"Saved {endpoint.label}.")

    def _on_remove_button_clicked(self) -> None:
        index = self.saved.currentRow()
        if not 0 <= index < len(self.endpoints):
            self.status.setText("Pick a saved endpoint to remove.")
            return
        gone = self.endpoints[index]
        kept = self.endpoints[:index] + self.endpoints[index + 1 :]
        self._store(kept, f"Removed {gone.label}.")

    def _store(self, endpoints: list[Endpoint], done: str) -> None:
        self.save_button.setEnabled(False)
        self._saving = (endpoints, done)
        self.tasks.run(
            lambda: save_endpoints(endpoints), on_done=self._on_stored, on_error=self._show_error
        )

    def _on_stored(self, _: object) -> None:
        # A bound method, so the runner drops it if the dialog is gone (ui.infra.tasks).
        endpoints, done = self._saving
        self.save_button.setEnabled(True)
        self._show_saved(endpoints)
        self.status.setText(done)
