"""Start-up pieces shared by `glassbox` and `glassbox demo`: the QApplication, the model
to open, and a MainWindow wired to the core objects."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from app.gui_settings import GuiSettings

if TYPE_CHECKING:
    from PySide6.QtWidgets import QApplication

    from ui.chrome.main_window import MainWindow


def resolve_model(args: argparse.Namespace, remembered: str | None) -> str:
    """--model, else the remembered model while it is still usable, else the bundled one."""
    from app.models.resolve import resolve_model_path

    return str(resolve_model_path(getattr(args, "model", None), remembered))


def create_application(theme_name: str) -> QApplication:
    from PySide6.QtWidgets import QApplication

    from ui.infra import theme

    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(sys.argv[:1])
    app.setApplicationName("Glassbox")
    app.setOrganizationName("glassbox")
    theme.apply_theme(app, theme_name)
    return app


def build_window(settings: GuiSettings) -> MainWindow:
    """The core objects wired to a new MainWindow (store, engine, session, bridge)."""
    from app.engine.local import LocalEngine
    from app.session import ChatSession
    from app.storage.store import Store
    from ui.chrome.main_window import MainWindow
    from ui.infra.bridge import EngineBridge

    # Background threads here parse GGUF headers and write SQLite; a shorter GIL switch
    # interval (default 5 ms) lets the GUI thread take the GIL back sooner.
    sys.setswitchinterval(0.001)
    bridge = EngineBridge()
    store = Store.open()
    engine = LocalEngine()
    session = ChatSession(engine, store, bridge.post)
    window = MainWindow(
        engine=engine, store=store, session=session, bridge=bridge, settings=settings
    )
    bridge.setParent(window)
    return window
