"""Start-up pieces shared by `glassbox` and `glassbox demo`: the QApplication, the model
to open, and a MainWindow wired to the core objects."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import TYPE_CHECKING

from app.gui_settings import GuiSettings

if TYPE_CHECKING:
    from PySide6.QtWidgets import QApplication

    from app.engine.base import Engine
    from ui.chrome.main_window import MainWindow


# Set to 1, `glassbox` prints when its window is shown and when the model is ready, then
# exits (benchmarks/bench_startup.py). Times are time.monotonic_ns(), the clock the
# launching process reads too.
STARTUP_TIMES_ENV = "GLASSBOX_STARTUP_TIMES"
STARTUP_TIMES_PREFIX = "glassbox-startup"


def startup_times_requested() -> bool:
    return os.environ.get(STARTUP_TIMES_ENV, "") not in ("", "0")


def report_startup_times(app: QApplication, window: MainWindow) -> None:
    """Print `glassbox-startup window_shown NS` once the window's first frame is painted,
    `glassbox-startup model_ready NS` when the model is loaded (and `worker_load_ms MS`,
    the worker's share), then quit (exit 1 if loading fails)."""
    from PySide6.QtCore import QEvent, QObject, QTimer

    def emit(moment: str) -> None:
        print(f"{STARTUP_TIMES_PREFIX} {moment} {time.monotonic_ns()}", flush=True)

    class FirstFrame(QObject):
        """The window's first UpdateRequest paints every visible widget into the backing
        store and flushes it; the zero timer fires once that event is done."""

        def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
            if event.type() == QEvent.Type.UpdateRequest:
                watched.removeEventFilter(self)
                QTimer.singleShot(0, lambda: emit("window_shown"))
            return False

    def on_ready(info: object) -> None:
        emit("model_ready")
        # The worker's own part: llama.cpp's load and the warm-up decode.
        print(
            f"{STARTUP_TIMES_PREFIX} worker_load_ms {getattr(info, 'load_ms', 0.0):.1f}", flush=True
        )
        app.quit()

    def on_error(_event: object) -> None:
        emit("model_failed")
        app.exit(1)

    first_frame = FirstFrame(window)
    window.installEventFilter(first_frame)
    window.update()  # an UpdateRequest even where show() already painted
    window.controller.model_ready.connect(on_ready)
    window.bridge.engine_error.connect(on_error)
    window.bridge.engine_crashed.connect(on_error)


def resolve_model(args: argparse.Namespace, remembered: str | None) -> str:
    """--model, else the remembered model while it is still usable, else the bundled one."""
    from app.models.resolve import resolve_model_path

    return str(resolve_model_path(getattr(args, "model", None), remembered))


def model_after_last_exit(args: argparse.Namespace, model: str) -> tuple[str | None, str | None]:
    """(model to load now, model to offer instead) given how the last run ended.

    After an unclean exit (app.run_marker) the remembered model is offered, not loaded,
    so a model that brings the app down does not do it again at every start; --model
    always loads. Marks this run as running; mark_clean_exit() when it ends.
    """
    from app.run_marker import mark_running, previous_unclean_exit, startup_model

    load_now, offer = startup_model(
        model, bool(getattr(args, "model", None)), previous_unclean_exit()
    )
    mark_running(model)
    return load_now, offer


def offer_model(window: MainWindow, model: str) -> None:
    """Ask, without blocking the event loop, whether to load the model after an unclean exit."""
    from pathlib import Path

    from PySide6.QtWidgets import QMessageBox

    box = QMessageBox(window)
    box.setIcon(QMessageBox.Icon.Question)
    box.setWindowTitle("Glassbox did not close properly")
    box.setText(
        f"Glassbox did not close properly last time, with {Path(model).name} loaded. Load it again?"
    )
    box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
    yes = QMessageBox.StandardButton.Yes
    box.buttonClicked.connect(
        lambda button: (
            window.controller.load_model(model) if box.standardButton(button) == yes else None
        )
    )
    box.open()


def create_application(theme_name: str) -> QApplication:
    from PySide6.QtWidgets import QApplication

    from ui.infra import theme

    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(sys.argv[:1])
    app.setApplicationName("Glassbox")
    app.setOrganizationName("glassbox")
    theme.apply_theme(app, theme_name)
    return app


def build_window(settings: GuiSettings, engine: Engine | None = None) -> MainWindow:
    """The core objects wired to a new MainWindow (store, engine, session, bridge).

    engine: a LocalEngine by default; tests pass a FakeEngine. Either is wrapped in an
    EngineSwitch, which changes what serves the chat when the user picks a saved endpoint,
    a local model again, or another number of parallel sequences.
    """
    from app.engine.switching import EngineSwitch
    from app.session import ChatSession
    from app.storage.store import Store
    from ui.chrome.main_window import MainWindow
    from ui.infra.bridge import EngineBridge

    # Background threads here parse GGUF headers and write SQLite; a shorter GIL switch
    # interval (default 5 ms) lets the GUI thread take the GIL back sooner.
    sys.setswitchinterval(0.001)
    bridge = EngineBridge()
    store = Store.open()
    engine = EngineSwitch(engine)
    session = ChatSession(engine, store, bridge.post)
    window = MainWindow(
        engine=engine, store=store, session=session, bridge=bridge, settings=settings
    )
    bridge.setParent(window)
    if store.recovery_notice:
        _tell_database_recovered(window, store.recovery_notice)
    return window


def _tell_database_recovered(window: MainWindow, notice: str) -> None:
    """The store moved a damaged database aside at open: say so, without blocking."""
    from PySide6.QtWidgets import QMessageBox

    box = QMessageBox(window)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle("Conversation database replaced")
    box.setText(notice[:1].upper() + notice[1:] + ".")
    box.open()
