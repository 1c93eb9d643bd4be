"""ApiServer: the OpenAI-compatible server on a background thread, started and stopped at will.

uvicorn runs the Starlette app on its own thread and event loop, so the CLI's
main thread and the GUI thread never wait on a request. The listening socket is
bound in start(), on the caller's thread: a port in use is a one-line error
there, and the real port is known at once (port 0 picks a free one). Store
writes run on one thread of our own (an executor closed by stop()), so nothing
outlives the server.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import uvicorn

from app.engine import events as ev
from app.errors import GlassboxError
from app.server.routes import build_app
from app.server.served_turns import ServedTurns
from app.session import ChatSession
from app.settings import SamplingSettings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8421
START_TIMEOUT_S = 10.0
# Open streams get this long to end after their turns are cancelled.
STOP_GRACE_S = 5.0


class ApiServer:
    """One server for one ChatSession. Not restartable: make a new one to serve again.

    The session's listener must pass every event to on_event (as_listener wraps
    the listener the session had, so both keep receiving).
    """

    def __init__(
        self,
        session: ChatSession,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        api_key: str | None = None,
        sampling: Callable[[], SamplingSettings] = SamplingSettings,
    ) -> None:
        if api_key is not None and not api_key.strip():
            raise GlassboxError("the API key is empty")
        self.session = session
        self.host, self.port = host, port
        self.served = ServedTurns(session)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="glassbox-api-store")
        app = build_app(self.served, self._executor, api_key=api_key, sampling=sampling)
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=int(STOP_GRACE_S),
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def on_event(self, event: ev.EngineEvent) -> None:
        """Part of the session's listener; never blocks."""
        self.served.on_event(event)

    def as_listener(self, downstream: ev.EventSink) -> ev.EventSink:
        """A session listener that feeds this server, then downstream (the GUI's bridge)."""

        def listener(event: ev.EngineEvent) -> None:
            self.served.on_event(event)
            downstream(event)

        return listener

    def start(self) -> None:
        """Bind and start serving; GlassboxError when the address cannot be used."""
        if self._thread is not None:
            raise GlassboxError("this server was already started")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(128)
        except OSError as exc:
            sock.close()
            reason = exc.strerror or str(exc)
            raise GlassboxError(f"cannot listen on {self.host}:{self.port}: {reason}") from None
        self._socket = sock
        self.port = sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name="glassbox-api-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise GlassboxError(f"the API server did not start: {self._error or 'timed out'}")
            time.sleep(0.01)

    def _serve(self) -> None:
        assert self._socket is not None
        try:
            self._server.run(sockets=[self._socket])
        except BaseException as exc:  # reported by start(); the thread must end quietly
            self._error = exc

    def stop(self) -> None:
        """Cancel the served turns, close the streams and the socket, end every thread."""
        self.served.cancel_all()
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(STOP_GRACE_S * 2)
        if self._socket is not None:
            self._socket.close()
        self._executor.shutdown(wait=True)

    def __enter__(self) -> ApiServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
