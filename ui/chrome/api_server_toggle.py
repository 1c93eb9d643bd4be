"""ApiServerToggle: Server > Serve OpenAI-compatible API, on and off from the window.

The server (app.server.ApiServer) runs on its own thread; starting and stopping
it (binding the socket, joining its thread) run on the window's BackgroundTasks,
never on the GUI thread. While it serves, the session's listener feeds the server
first and then the bridge, so the window still sees every event. A served request
refreshes the conversations list when it is submitted and when its reply is
stored; while its conversation is the one shown, the chat shows its messages and
the panel its live strip and stored metrics, as for a typed message.

The key, when one is wanted, comes from the environment variable named in
API_KEY_ENV, never from the settings file.
"""

from __future__ import annotations

import os

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction, QGuiApplication
from PySide6.QtWidgets import QMenu, QWidget

from app.engine import events as ev
from app.gui_settings import GuiSettings
from app.server import DEFAULT_HOST, DEFAULT_PORT, ApiServer
from app.session import ChatSession, RequestSubmitted
from ui.chrome.conversations import ConversationsController
from ui.infra.bridge import EngineBridge, FrameTokens
from ui.infra.error_dialog import show_error
from ui.infra.tasks import BackgroundTasks, describe_error

API_KEY_ENV = "GLASSBOX_API_KEY"
OFF_TEXT = "Serve OpenAI-compatible &API"


class ApiServerToggle(QObject):
    """The Server menu: a checkable action that starts and stops the API server.

    Signals:
        server_started(str): serving at this base URL.
        server_stopped(): the server has stopped (its thread and socket are gone).
        start_failed(str): it could not start; one line for the user.
    """

    server_started = Signal(str)
    server_stopped = Signal()
    start_failed = Signal(str)

    def __init__(
        self,
        *,
        session: ChatSession,
        bridge: EngineBridge,
        tasks: BackgroundTasks,
        conversations: ConversationsController,
        settings: GuiSettings,
        window: QWidget,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
    ) -> None:
        super().__init__(window)
        self.session, self.bridge, self.tasks = session, bridge, tasks
        self.conversations, self.settings, self.window = conversations, settings, window
        self.host, self.port = host, port
        self.server: ApiServer | None = None
        self._served: dict[int, int] = {}  # request id -> conversation id, until it finishes
        self._live: set[int] = set()  # served turns the panel's live strip follows

        self.menu = QMenu("Ser&ver", window)
        self.action = QAction(OFF_TEXT, self)
        self.action.setCheckable(True)
        tip = (
            f"Answer other tools on {host}:{port} through the OpenAI chat API; their requests "
            f"show here as conversations. Set {API_KEY_ENV} before starting Glassbox to "
            "require that key."
        )
        self.action.setToolTip(tip)
        self.action.setStatusTip(tip)
        self.action.toggled.connect(self._on_action_toggled)
        self.menu.addAction(self.action)
        self.copy_action = QAction("&Copy API URL", self)
        self.copy_action.setEnabled(False)
        self.copy_action.setToolTip("Copy the server's base URL, for a client's settings")
        self.copy_action.setStatusTip(self.copy_action.toolTip())
        self.copy_action.triggered.connect(self._on_copy_action_triggered)
        self.menu.addAction(self.copy_action)
        self.menu.setToolTipsVisible(True)

        bridge.request_submitted.connect(self._on_bridge_request_submitted)
        bridge.turn_started.connect(self._on_bridge_turn_started)
        bridge.tokens_received.connect(self._on_bridge_tokens_received)
        bridge.turn_finished.connect(self._on_bridge_turn_finished)

    # ---- commands -----------------------------------------------------------------------
    def start(self) -> None:
        if self.server is not None:
            return
        key = os.environ.get(API_KEY_ENV) or None
        server = ApiServer(
            self.session,
            host=self.host,
            port=self.port,
            api_key=key,
            sampling=lambda: self.settings.sampling,
        )
        self.server = server
        session, downstream = self.session, self.bridge.post

        def job() -> str:
            session.set_listener(server.as_listener(downstream))
            try:
                server.start()
            except BaseException:
                session.set_listener(downstream)
                raise
            return server.url

        self._set_action(True, "starting…")
        self.tasks.run(
            job,
            on_done=lambda url: self._on_started(server, url),
            on_error=lambda error: self._on_start_failed(server, error),
        )

    def stop(self) -> None:
        """Stop serving (in the background): open streams end, their turns cancelled."""
        server, self.server = self.server, None
        if server is None:
            return
        session, downstream = self.session, self.bridge.post

        def job() -> None:
            server.stop()  # the cancelled turns' events still reach it: listener restored after
            session.set_listener(downstream)

        self._set_action(False)
        self.tasks.run(job, on_done=lambda _none: self.server_stopped.emit())

    # ---- slots --------------------------------------------------------------------------
    def _on_action_toggled(self, checked: bool) -> None:
        if checked:
            self.start()
        else:
            self.stop()

    def _on_started(self, server: ApiServer, url: str) -> None:
        if server is not self.server:
            return  # switched off while it started; the stop job follows
        self._set_action(True, url)
        keyed = " (key required)" if os.environ.get(API_KEY_ENV) else ""
        self._show_message(f"Serving the OpenAI-compatible API at {url}{keyed}")
        self.server_started.emit(url)

    def _on_start_failed(self, server: ApiServer, error: BaseException) -> None:
        if server is not self.server:
            return
        self.server = None
        self._set_action(False)
        message = describe_error(error)
        self.start_failed.emit(message)
        show_error(self.window, "API server", f"The API server did not start: {message}")

    def _on_copy_action_triggered(self) -> None:
        if self.server is not None:
            QGuiApplication.clipboard().setText(self.server.url)

    def _on_bridge_request_submitted(self, event: RequestSubmitted) -> None:
        server = self.server
        # serves() remembers a request whose turn has ended before this reached us.
        if (
            server is not None
            and event.request_id is not None
            and server.served.serves(event.request_id)
        ):
            self._served[event.request_id] = event.conversation_id
            self.conversations.refresh_conversations()
            if self._shown(event.conversation_id):
                self.conversations.open_conversation(event.conversation_id)  # the new message

    def _on_bridge_turn_started(self, event: ev.TurnStarted) -> None:
        conversation_id = self._served.get(event.request_id or -1)
        if conversation_id is not None and self._shown(conversation_id):
            self._live.add(event.request_id or -1)
            self.conversations.panel.begin_live(event)

    def _on_bridge_tokens_received(self, batch: FrameTokens) -> None:
        if batch.request_id in self._live:
            self.conversations.panel.add_tokens([token.t_ns for token in batch.tokens])

    def _on_bridge_turn_finished(self, event: ev.TurnFinished) -> None:
        # The session stores a reply before it passes the TurnFinished on, so what is
        # read from the store now has the reply, its time and its metrics.
        conversation_id = self._served.pop(event.request_id or -1, None)
        if conversation_id is None:
            return
        self.conversations.refresh_conversations()
        if event.request_id in self._live:
            self._live.discard(event.request_id or -1)
            partial = event.metrics.stop_reason in ("cancelled", "error")
            state = event.metrics.stop_reason or "finished"
            self.conversations.panel.end_live(None if partial else event.metrics, state=state)
        if self._shown(conversation_id):
            self.conversations.open_conversation(conversation_id)  # the reply and its plots

    # ---- helpers ------------------------------------------------------------------------
    def _shown(self, conversation_id: int) -> bool:
        return conversation_id == self.conversations.conversation_id

    def _set_action(self, on: bool, detail: str = "") -> None:
        self.action.blockSignals(True)
        self.action.setChecked(on)
        self.action.blockSignals(False)
        self.action.setText(f"{OFF_TEXT} ({detail})" if on and detail else OFF_TEXT)
        self.copy_action.setEnabled(on and detail.startswith("http"))

    def _show_message(self, text: str) -> None:
        status = getattr(self.window, "statusBar", None)
        if callable(status):
            status().showMessage(text, 8000)
