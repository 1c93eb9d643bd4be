"""ChatWindowBase: what the window's add-ons (menus, inspectors) use of the main window.

The add-ons are built by MainWindow and hook themselves into it. Typed against
MainWindow itself they would import ui.chrome.main_window, which imports them: a
cycle (tests/app/test_core_imports.py forbids them, TYPE_CHECKING imports included).
They are typed against this base class instead, which MainWindow derives from.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import QMainWindow

if TYPE_CHECKING:
    from app.engine.base import Engine
    from app.gui_settings import GuiSettings
    from app.session import ChatSession
    from app.storage.store import Store
    from ui.chrome.controller import ChatController
    from ui.chrome.status_bar import EngineStatusBar
    from ui.infra.bridge import EngineBridge
    from ui.infra.tasks import BackgroundTasks
    from ui.internals.panel import InternalsPanel


class ChatWindowBase(QMainWindow):
    """The main window's parts that its add-ons reach; MainWindow sets every one."""

    engine: Engine
    store: Store
    session: ChatSession
    bridge: EngineBridge
    settings: GuiSettings
    tasks: BackgroundTasks
    panel: InternalsPanel
    status: EngineStatusBar
    controller: ChatController
