"""MainWindow: conversation list | chat | internals dock, menus, shortcuts, status bar."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import shiboken6
from PySide6.QtCore import QEvent, QObject, QSize, Qt
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QKeySequence, QResizeEvent
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFrame,
    QMenu,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.engine.base import Engine
from app.gui_settings import GuiSettings
from app.session import ChatSession
from app.storage.store import Store
from ui.chat.chat_view import ChatView
from ui.chat.conversation_list import ConversationList
from ui.chrome.api_server_toggle import ApiServerToggle
from ui.chrome.controller import ChatController
from ui.chrome.conversation_settings_menu import ConversationSettingsAction
from ui.chrome.crash_banner import CrashBanner
from ui.chrome.demos_menu import DemosMenu
from ui.chrome.file_menu import FileMenuActions
from ui.chrome.model_picker import ModelPicker
from ui.chrome.prompt_inspector import PromptInspector
from ui.chrome.status_bar import EngineStatusBar
from ui.chrome.thread_tuner import ThreadTuner
from ui.chrome.token_inspector import TokenInspector
from ui.chrome.window_base import ChatWindowBase
from ui.dialogs.models import ModelsDialog
from ui.dialogs.settings import SettingsDialog
from ui.dialogs.threads_page import ThreadsPage
from ui.infra import theme
from ui.infra.bridge import EngineBridge
from ui.infra.gc_policy import GuiThreadCollector
from ui.infra.tasks import BackgroundTasks
from ui.internals.panel import InternalsPanel

# With the panel open the window still goes down to 900 px: the panel narrows to this
# (its readout and live plots stack) and scrolls when the window is short.
PANEL_MIN_WIDTH = 300
SIDEBAR_MIN_WIDTH = 190  # its New / Rename / Delete buttons whole
# The chat keeps room for a readable line and its bubbles' buttons; a narrower window
# takes the width from the panel instead.
CHAT_MIN_WIDTH = 340


class VerticalScroller(QScrollArea):
    """Gives its widget the viewport's width and height, scrolling only when the widget's
    minimum height does not fit. (widgetResizable would size a widget whose layout has
    height-for-width, such as rich-text labels, to its preferred height: the plots grew
    to three times the window.)"""

    def __init__(self, widget: QWidget) -> None:
        super().__init__()
        self.setWidget(widget)
        self.setWidgetResizable(False)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        widget.installEventFilter(self)  # its minimum height changes when it restacks

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if watched is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            self._fit_widget()
        return False

    def _fit_widget(self) -> None:
        widget = self.widget()
        if widget is not None:
            viewport = self.viewport().size()
            height = max(viewport.height(), widget.minimumSizeHint().height())
            widget.resize(viewport.width(), height)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._fit_widget()

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt override
        widget = self.widget()
        width = widget.minimumSizeHint().width() if widget is not None else 0
        return QSize(width + self.verticalScrollBar().sizeHint().width(), 0)


def _vertical_scroller(widget: QWidget) -> QScrollArea:
    return VerticalScroller(widget)


@dataclass(frozen=True)
class MenuEntry:
    text: str
    slot: Callable[..., object]
    shortcut: QKeySequence.StandardKey | Qt.Key | str | None = None
    tip: str = ""


class MainWindow(ChatWindowBase):
    """The Glassbox window. Owns the views and the controller; the core objects are passed in."""

    def __init__(
        self,
        *,
        engine: Engine,
        store: Store,
        session: ChatSession,
        bridge: EngineBridge,
        settings: GuiSettings,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Glassbox")
        self.setAccessibleName("Glassbox")
        self.engine, self.store, self.session, self.bridge, self.settings = (
            engine,
            store,
            session,
            bridge,
            settings,
        )
        self.tasks = BackgroundTasks(self)
        self._settings_dialog: SettingsDialog | None = None
        self._models_dialog: ModelsDialog | None = None
        self._closed = False
        self.collector = GuiThreadCollector(self)
        self.collector.start()

        self.conversations = ConversationList()
        self.conversations.setMinimumWidth(SIDEBAR_MIN_WIDTH)
        self.chat = ChatView()
        self.banner = CrashBanner()
        self.panel = InternalsPanel()
        self.status = EngineStatusBar()
        self.setStatusBar(self.status)

        chat_column = QWidget()
        chat_column.setMinimumWidth(CHAT_MIN_WIDTH)
        column_layout = QVBoxLayout(chat_column)
        column_layout.setContentsMargins(0, 0, 0, 0)
        self.model_picker = ModelPicker(self.tasks)
        column_layout.addWidget(self.model_picker)
        column_layout.addWidget(self.banner)
        column_layout.addWidget(self.chat, 1)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.conversations)
        self.splitter.addWidget(chat_column)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([200, 640])
        self.setCentralWidget(self.splitter)

        self.dock = QDockWidget("Inference internals", self)
        self.dock.setObjectName("internals_dock")
        self.dock.setAccessibleName("Inference internals dock")
        self.dock.setToolTip(
            "What inference is doing: drag to move, float or close it (View menu brings it back)"
        )
        self.dock.setWidget(_vertical_scroller(self.panel))
        self.dock.setMinimumWidth(PANEL_MIN_WIDTH)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)

        self.controller = ChatController(
            engine=engine,
            session=session,
            store=store,
            bridge=bridge,
            tasks=self.tasks,
            chat=self.chat,
            panel=self.panel,
            conversations=self.conversations,
            status=self.status,
            banner=self.banner,
            settings=settings,
            parent=self,
        )
        self.tuner = ThreadTuner(
            engine=engine,
            bridge=bridge,
            chat=self.chat,
            status=self.status,
            tasks=self.tasks,
            parent=self,
        )
        self.model_picker.model_requested.connect(self.controller.load_model)
        self.controller.model_ready.connect(self._on_controller_model_ready)
        self._build_menus()
        self.conversation_settings = ConversationSettingsAction(self)  # Edit menu
        self.api_server = ApiServerToggle(  # Server menu: the OpenAI-compatible API
            session=session,
            bridge=bridge,
            tasks=self.tasks,
            conversations=self.controller.conversations,
            settings=settings,
            window=self,
        )
        self.menuBar().addMenu(self.api_server.menu)
        self.demos = DemosMenu(engine, self.panel, self.status, self)  # scenarios (app.scenarios)
        self.menuBar().addMenu(self.demos.menu)
        self.prompt_inspector = PromptInspector(session, self.controller, engine, self.panel, self)
        self.token_inspector = TokenInspector(  # the token view's probabilities and branches
            session, self.controller, engine, self.panel, lambda: self.settings.sampling, self
        )
        self.file_actions = FileMenuActions(self)  # File: export, import
        self.resize(1400, 860)
        self.resizeDocks([self.dock], [560], Qt.Orientation.Horizontal)
        # The message box, not the first widget in tab order (conversation search).
        self.chat.input.setFocus()

    def _menu_table(self) -> list[tuple[str, list[MenuEntry | None]]]:
        """(menu, entries); None is a separator. The View menu adds its own parts after."""
        controller, chat, sidebar = self.controller, self.chat, self.conversations
        return [
            (
                "&File",
                [
                    MenuEntry(
                        "&New conversation",
                        controller.new_conversation,
                        QKeySequence.StandardKey.New,
                        "Start a new conversation (Ctrl+N)",
                    ),
                    MenuEntry(
                        "&Models…",
                        self.open_models_dialog,
                        "Ctrl+M",
                        "Choose, download or load a GGUF model",
                    ),
                    MenuEntry(
                        "&Settings…",
                        self.open_settings,
                        "Ctrl+,",
                        "Runtime and sampling settings",
                    ),
                    None,
                    MenuEntry("&Quit", self.close, QKeySequence.StandardKey.Quit, "Quit Glassbox"),
                ],
            ),
            (
                "&Edit",
                [
                    MenuEntry(
                        "&Undo delete",
                        sidebar.undo_delete,
                        None,
                        "Bring back the conversation you just deleted",
                    ),
                    MenuEntry(
                        "&Rename conversation",
                        sidebar.start_rename,
                        "F2",
                        "Rename the selected conversation",
                    ),
                    MenuEntry(
                        "&Delete conversation",
                        self._on_delete_action_triggered,
                        None,
                        "Delete the selected conversation (Undo brings it back)",
                    ),
                ],
            ),
            (
                "&Chat",
                [
                    MenuEntry(
                        "&Stop",
                        controller.stop,
                        Qt.Key.Key_Escape,
                        "Stop generating (Esc)",
                    ),
                    MenuEntry(
                        "&Focus input",
                        self.focus_input,
                        "Ctrl+L",
                        "Move the cursor to the message box",
                    ),
                    MenuEntry(
                        "&Regenerate",
                        controller.regenerate,
                        "Ctrl+R",
                        "Generate the last reply again",
                    ),
                    MenuEntry(
                        "&Edit last message",
                        chat.begin_edit_last,
                        "Ctrl+E",
                        "Edit your last message and send it again",
                    ),
                    MenuEntry(
                        "&Load experiment…",
                        self.open_load_dialog,
                        None,
                        "Send N requests at once: each user's wait against total throughput",
                    ),
                ],
            ),
        ]

    def _action(self, menu: QMenu, entry: MenuEntry) -> QAction:
        action = QAction(entry.text, self)
        if entry.shortcut is not None:
            action.setShortcut(QKeySequence(entry.shortcut))
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        action.setToolTip(entry.tip or entry.text)
        action.setStatusTip(entry.tip or entry.text)
        action.triggered.connect(entry.slot)
        menu.addAction(action)
        return action

    def _build_menus(self) -> None:
        bar = self.menuBar()
        for title, entries in self._menu_table():
            menu = bar.addMenu(title)
            for entry in entries:
                if entry is None:
                    menu.addSeparator()
                else:
                    self._action(menu, entry)

        view_menu = bar.addMenu("&View")
        toggle = self.dock.toggleViewAction()
        toggle.setText("&Internals panel")
        toggle.setShortcut(QKeySequence("Ctrl+I"))
        toggle.setToolTip("Show or hide the inference internals panel")
        view_menu.addAction(toggle)
        theme_menu = view_menu.addMenu("&Theme")
        group = QActionGroup(self)
        for name in theme.THEMES:
            action = self._action(
                theme_menu,
                MenuEntry(
                    name.capitalize(),
                    lambda _c=False, n=name: self.set_theme(n),
                    None,
                    f"Use the {name} colour scheme",
                ),
            )
            action.setCheckable(True)
            action.setChecked(name == self.settings.theme)
            group.addAction(action)

    # ---- commands -------------------------------------------------------------------------
    def start(self, model_path: str | None) -> None:
        """Load the model and open the last conversation; both run in the background."""
        self.controller.start()
        self.model_picker.refresh(self.settings.runtime.n_ctx)
        if model_path:
            self.controller.load_model(model_path)

    def focus_input(self) -> None:
        self.chat.input.setFocus()

    def set_theme(self, name: str) -> None:
        self.settings.theme = name
        app = QApplication.instance()
        if isinstance(app, QApplication):
            theme.apply_theme(app, name)
        self.tasks.run(self.settings.save)

    def open_settings(self) -> SettingsDialog:
        """The settings dialog, filled from the current settings; deleted when it closes."""
        if self._settings_dialog is not None and shiboken6.isValid(self._settings_dialog):
            self._settings_dialog.raise_()
            return self._settings_dialog
        info = self.engine.model_info
        dialog = SettingsDialog(
            self.settings.runtime,
            self.settings.sampling,
            n_layers=info.n_layers if info else 0,
            gpu_offload_supported=bool(info and info.gpu_offload_supported),
            parent=self,
        )
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        # n_ctx beyond what the loaded model was trained on gets a warning under the field.
        dialog.runtime_form.set_trained_context(info.n_ctx_train if info else 0)
        self._settings_dialog = dialog
        dialog.accepted.connect(
            lambda: self.controller.apply_settings(dialog.runtime(), dialog.sampling())
        )
        # Endpoints saved there (Settings > Endpoints) show in the model dropdown.
        dialog.finished.connect(lambda _result: self.model_picker.refresh())
        threads = ThreadsPage(self.tuner, self.tasks, info.model_path if info else None)
        dialog.tabs.addTab(threads, "Threads")
        dialog.open()
        return dialog

    def open_load_dialog(self) -> None:
        from ui.dialogs.load_dialog import open_load_dialog  # loaded when first asked for

        open_load_dialog(self)

    def open_models_dialog(self) -> ModelsDialog:
        """The model library, made once and shown again: its searches and scans keep running
        on its own thread pool, which deleting it on close would have to wait for."""
        # Fit verdicts are for the context size the user has set, not a default.
        if self._models_dialog is None:
            self._models_dialog = ModelsDialog(
                self,
                on_model_chosen=lambda path: self.controller.load_model(str(path)),
                n_ctx=self.settings.runtime.n_ctx,
            )
            # A folder added or a model downloaded there shows in the dropdown too.
            self._models_dialog.library_changed.connect(
                lambda: self.model_picker.refresh(self.settings.runtime.n_ctx)
            )
        else:
            self._models_dialog.set_fit_ctx(self.settings.runtime.n_ctx)
        info = self.engine.model_info
        self._models_dialog.set_loaded(info.model_path if info else None)
        self._models_dialog.open()
        return self._models_dialog

    def _on_controller_model_ready(self, event: object) -> None:
        path = getattr(event, "model_path", None)
        self.model_picker.set_loaded(path)
        if self._models_dialog is not None:
            self._models_dialog.set_loaded(path)

    def _on_delete_action_triggered(self) -> None:
        conversation_id = self.conversations.selected_id()
        if conversation_id is not None:
            self.controller.delete_conversation(conversation_id)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        if not self._closed:
            self._closed = True
            self.bridge.close()
            # Queued jobs write to the store and call the engine: let them finish first.
            # Closing the engine ends its turns, and the session stores what they
            # streamed; only then may the store close.
            self.api_server.stop()  # queued: runs in the shutdown below, before the store closes
            self.tasks.shutdown()
            self.engine.close()
            self.store.close()
            self.collector.stop()
        super().closeEvent(event)
