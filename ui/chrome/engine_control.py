"""EngineController: loading models, restarting the engine, and showing its state."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QWidget

from app.engine import events as ev
from app.gui_settings import GuiSettings
from app.models.fit_check import estimate_vs_loaded
from app.settings import RuntimeSettings, SamplingSettings
from ui.chrome.crash_banner import CrashBanner
from ui.chrome.status_bar import EngineStatusBar
from ui.infra.bridge import EngineBridge
from ui.infra.error_dialog import show_error
from ui.infra.tasks import BackgroundTasks, describe_error
from ui.internals.panel import InternalsPanel

if TYPE_CHECKING:
    from app.engine.base import Engine


class EngineController(QObject):
    """Engine commands (load, restart, new settings) and what the engine reports about itself.

    Signals:
        model_ready(object): a ModelLoaded was applied (the settings dialog reads n_layers from it).
    """

    model_ready = Signal(object)

    def __init__(
        self,
        *,
        engine: Engine,
        bridge: EngineBridge,
        tasks: BackgroundTasks,
        status: EngineStatusBar,
        banner: CrashBanner,
        panel: InternalsPanel,
        settings: GuiSettings,
        dialog_parent: QWidget,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.engine, self.tasks, self.settings = engine, tasks, settings
        self.status, self.banner, self.panel = status, banner, panel
        self._dialog_parent = dialog_parent
        self._loading_path: str | None = None
        bridge.model_load_started.connect(self._on_bridge_model_load_started)
        bridge.model_load_progressed.connect(self._on_bridge_model_load_progressed)
        bridge.model_loaded.connect(self._on_bridge_model_loaded)
        bridge.engine_crashed.connect(self._on_bridge_engine_crashed)
        bridge.engine_error.connect(self._on_bridge_engine_error)
        bridge.event_received.connect(self._on_bridge_event_received)
        banner.restart_requested.connect(self.restart_engine)

    def load_model(self, path: str, runtime: RuntimeSettings | None = None) -> None:
        runtime = runtime or self.settings.runtime
        self._loading_path = path
        self.status.set_state("loading")
        self.tasks.run(
            lambda: self.engine.load(path, runtime),
            on_error=lambda e: self._on_load_failed(describe_error(e)),
        )

    def restart_engine(self) -> None:
        self.banner.hide()
        self.status.set_state("loading")
        self.tasks.run(
            self.engine.restart, on_error=lambda e: self._on_load_failed(describe_error(e))
        )

    def apply_settings(self, runtime: RuntimeSettings, sampling: SamplingSettings) -> None:
        reload = runtime != self.settings.runtime
        self.settings.runtime, self.settings.sampling = runtime, sampling
        self.tasks.run(self.settings.save)
        if reload:
            info = self.engine.model_info
            path = self.settings.model_path or (info.model_path if info else None)
            if info is not None and info.backend == "remote":
                path = None  # a server's settings are its own; these apply to a local model
            if path:
                self.load_model(path, runtime)

    def _on_load_failed(self, message: str) -> None:
        self.status.set_state(self.engine.state)
        show_error(
            self._dialog_parent.window(),
            "Could not load the model",
            message + "\n\nThe previous model stays loaded.",
        )

    def _on_bridge_model_load_started(self, _event: ev.ModelLoadStarted) -> None:
        self.status.set_state("loading")

    def _on_bridge_model_load_progressed(self, event: ev.ModelLoadProgress) -> None:
        self.status.set_load_progress(event.fraction)

    def _on_bridge_model_loaded(self, event: ev.ModelLoaded) -> None:
        self.banner.hide()
        self.status.set_model_info(event)
        # Reads the GGUF header: off the GUI thread.
        self.tasks.run(
            lambda: estimate_vs_loaded(event),
            on_done=self.status.set_memory_rows,
            on_error=lambda _e: None,  # the figure is optional; the model is loaded
        )
        self.panel.set_model_info(event)
        # A server's model_path is its URL, not a file to reopen at the next start.
        remembered = event.backend != "remote" and self.settings.model_path != event.model_path
        if self._loading_path is not None and remembered:
            self.settings.model_path = event.model_path
            self.tasks.run(self.settings.save)
        self.model_ready.emit(event)

    def _on_bridge_engine_crashed(self, event: ev.EngineCrashed) -> None:
        info = self.engine.model_info
        self.banner.show_crash(
            event,
            log_path=getattr(self.engine, "log_path", None),  # a local engine's worker log
            model_path=info.model_path if info else self.settings.model_path,
        )

    def _on_bridge_engine_error(self, event: ev.EngineError) -> None:
        if event.request_id is None:  # a turn's error is the turns controller's
            self._on_load_failed(event.message)

    def _on_bridge_event_received(self, _event: ev.EngineEvent) -> None:
        # After every event (the typed handlers have run): the engine's state now.
        state = self.engine.state
        self.status.set_state(
            "crashed" if self.banner.isVisible() and state != "loading" else state
        )
