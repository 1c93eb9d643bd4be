"""LocalEngine: the parent-side handle on the llama.cpp worker process.

Plain Python, no llama_cpp import. One reader thread receives worker events,
fills in what only the parent can know (time to first token as the caller
sees it, total time) and passes every event to `on_event`, in order. Requests
wait in a parent-side queue while a turn runs; their queue time is measured
from submit to the start of their turn. If the worker dies, the reader thread
notices at once (it waits on the process sentinel as well as the pipe) and
reports EngineCrashed; the next request starts a fresh worker.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import multiprocessing as mp
import queue
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from app.engine import events as ev
from app.engine.pending_turn import MessagesSource, PendingTurn, exit_signal_name
from app.errors import EngineUnavailableError, GlassboxError
from app.metrics import TurnMetrics, ns_to_ms
from app.models.gguf_file import read_gguf_info
from app.paths import logs_dir
from app.settings import RuntimeSettings, SamplingSettings

EventSink = Callable[[ev.EngineEvent], None]

LOG_TAIL_LINES = 20
CLOSE_GRACE_S = 3.0


@contextlib.contextmanager
def _main_module_hidden() -> Iterator[None]:
    """Keep spawn from re-running the caller's __main__ in the worker.

    spawn re-imports the parent's main module in the child so pickled objects
    from it resolve. The worker needs nothing from it, and re-running it fails
    for `python -` (no file) and starts a script without a __main__ guard all
    over again. spawn records the main module while start() runs, so hiding
    its file and spec for that moment is enough.
    """
    main = sys.modules.get("__main__")
    namespace: dict[str, Any] = main.__dict__ if main is not None else {}
    saved: dict[str, Any] = {
        name: namespace[name] for name in ("__file__", "__spec__") if name in namespace
    }
    namespace.pop("__file__", None)
    namespace["__spec__"] = None  # spawn reads the attribute itself, so it must exist
    try:
        yield
    finally:
        namespace.pop("__spec__", None)
        namespace.update(saved)


class LocalEngine:
    """Runs a GGUF model in a worker process and streams events to `on_event`.

    on_event is called from the engine's reader thread (or from the caller's
    thread for events that need no worker). Without on_event, events go to an
    internal queue read with next_event().
    """

    def __init__(self, on_event: EventSink | None = None) -> None:
        self._events: queue.Queue[ev.EngineEvent] = queue.Queue()
        self._sink: EventSink = on_event or self._events.put
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._ctx = mp.get_context("spawn")
        self._proc: Any = None
        self._conn: Connection | None = None
        self._cancel = self._ctx.Event()
        self._reader: threading.Thread | None = None
        self._pending: collections.deque[PendingTurn] = collections.deque()
        self._running: PendingTurn | None = None
        self._loading = False
        self._closed = False
        self._crashed = False
        self._model_path: str | None = None
        self._settings: RuntimeSettings | None = None
        self.model_info: ev.ModelLoaded | None = None
        self._pending_load: tuple[str | None, RuntimeSettings | None] = (None, None)
        self.log_path = Path(tempfile.mkstemp(prefix="worker-", suffix=".log", dir=logs_dir())[1])

    # -- public API --------------------------------------------------------------

    @property
    def state(self) -> str:
        with self._lock:
            if self._closed:
                return "closed"
            if self._loading:
                return "loading"
            if self._crashed:
                return "crashed"
            if self._running is not None:
                return "generating"
            return "ready" if self.model_info is not None else "idle"

    @property
    def worker_pid(self) -> int | None:
        with self._lock:
            return self._proc.pid if self._proc is not None and self._proc.is_alive() else None

    def load(self, model_path: str | Path, settings: RuntimeSettings | None = None) -> None:
        """Load a model (asynchronously). Invalid settings raise SettingsError here.

        The GGUF file is validated in a background thread first; a bad file gives
        an EngineError event and the previous model stays loaded.
        """
        settings = (settings or RuntimeSettings()).validate()
        path = str(model_path)
        with self._lock:
            self._check_open()
            self._loading = True
            if self._running is None:
                self._cancel.clear()  # a cancel from now on aborts this load
        self._sink(ev.ModelLoadStarted(model_path=path))
        threading.Thread(
            target=self._load_job, args=(path, settings), daemon=True, name="glassbox-load"
        ).start()

    def submit(self, messages: MessagesSource, sampling: SamplingSettings | None = None) -> int:
        """Queue a chat request; returns its request id. Messages may be a callable,
        evaluated when the turn starts (so a queued follow-up sees the reply before it)."""
        sampling = (sampling or SamplingSettings()).validate()
        with self._lock:
            self._check_open()
            request = PendingTurn(next(self._ids), messages, sampling, time.monotonic_ns())
            ahead = len(self._pending) + (1 if self._running or self._loading else 0)
            self._pending.append(request)
        self._sink(ev.RequestQueued(request_id=request.request_id, position=ahead))
        self._dispatch()
        return request.request_id

    def cancel(self, request_id: int | None = None) -> None:
        """Stop the running turn (within one token), drop a queued request, or, with no
        request id while a model loads, abort the load (the previous model stays)."""
        dropped: PendingTurn | None = None
        with self._lock:
            running = self._running
            if running is not None and request_id in (None, running.request_id):
                self._cancel.set()
                return
            if running is None and self._loading and request_id is None:
                self._cancel.set()  # llama.cpp's progress callback aborts the load
                return
            for queued in list(self._pending):
                if queued.request_id == request_id:
                    self._pending.remove(queued)
                    dropped = queued
        if dropped is not None:
            self._sink(
                ev.TurnFinished(
                    request_id=dropped.request_id,
                    metrics=TurnMetrics(
                        queue_ms=ns_to_ms(time.monotonic_ns() - dropped.submit_ns),
                        stop_reason="cancelled",
                    ),
                )
            )

    def restart(self) -> None:
        """Start a fresh worker with the last model and settings (after a crash)."""
        with self._lock:
            path, settings = self._model_path, self._settings
        if path is None:
            raise EngineUnavailableError("no model has been loaded yet")
        self._stop_worker()
        self.load(path, settings)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            pending = list(self._pending)
            self._pending.clear()
        for request in pending:
            self._sink(
                ev.TurnFinished(
                    request_id=request.request_id, metrics=TurnMetrics(stop_reason="cancelled")
                )
            )
        self._cancel.set()
        self._stop_worker()
        with self._lock:
            keep_log = self._crashed
        if not keep_log:  # a crash's log stays in logs_dir() for the bug report
            self.log_path.unlink(missing_ok=True)

    def set_listener(self, on_event: EventSink) -> None:
        """Route events to on_event from now on (ChatSession installs itself here)."""
        self._sink = on_event

    def next_event(self, timeout: float | None = None) -> ev.EngineEvent:
        """Next event from the internal queue (only when no on_event was given)."""
        return self._events.get(timeout=timeout)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> list[str]:
        try:
            text = self.log_path.read_bytes()[-64_000:].decode("utf-8", errors="replace")
        except OSError:
            return []
        return [line for line in text.splitlines() if line.strip()][-lines:]

    def __enter__(self) -> LocalEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- worker lifecycle -----------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise EngineUnavailableError("the engine is closed")

    def _load_job(self, path: str, settings: RuntimeSettings) -> None:
        try:
            read_gguf_info(path)
            with self._lock:
                self._ensure_worker()
                assert self._conn is not None
                self._conn.send(("load", {"path": path, "settings": settings.to_dict()}))
                self._pending_load = (path, settings)
        except Exception as exc:
            with self._lock:
                self._loading = False
            message = (
                str(exc)
                if isinstance(exc, GlassboxError)
                else (f"could not start the engine: {type(exc).__name__}: {exc}".splitlines()[0])
            )
            self._sink(ev.EngineError(message=message))
            self._dispatch()

    def _ensure_worker(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            return
        from app.engine.worker import worker_main  # noqa: PLC0415 - runs in the child only

        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(
            target=worker_main,
            args=(child_conn, self._cancel, str(self.log_path)),
            name="glassbox-worker",
            daemon=True,
        )
        with _main_module_hidden():
            proc.start()
        # Our copy of the child's end must go, or EOF never arrives when it dies.
        child_conn.close()
        self._proc, self._conn, self._crashed = proc, parent_conn, False
        self._reader = threading.Thread(
            target=self._read_loop, args=(proc, parent_conn), daemon=True, name="glassbox-reader"
        )
        self._reader.start()

    def _stop_worker(self) -> None:
        with self._lock:
            proc, conn = self._proc, self._conn
            self._proc = self._conn = None
        if proc is None:
            return
        try:
            if conn is not None:
                conn.send(("close", None))
        except OSError:
            pass
        proc.join(CLOSE_GRACE_S)
        if proc.is_alive():
            proc.kill()
            proc.join(CLOSE_GRACE_S)
        if conn is not None:
            conn.close()

    def _fail(self, requests: list[PendingTurn], message: str) -> None:
        for request in requests:
            self._sink(ev.EngineError(request_id=request.request_id, message=message))
            self._sink(
                ev.TurnFinished(
                    request_id=request.request_id, metrics=TurnMetrics(stop_reason="error")
                )
            )

    def _dispatch(self) -> None:
        """Start the next queued request when the worker is free (or bring a worker back)."""
        doomed: list[PendingTurn] = []
        reload: tuple[str, RuntimeSettings] | None = None
        with self._lock:
            if self._closed or self._running is not None or self._loading or not self._pending:
                return
            if self._crashed or self._proc is None or not self._proc.is_alive():
                if self._model_path is None or self._settings is None:
                    # No model was ever loaded and none is loading: nothing can answer.
                    doomed = list(self._pending)
                    self._pending.clear()
                else:
                    # A fresh worker for the next request; it loads the last model first.
                    reload = (self._model_path, self._settings)
                    self._crashed, self._loading = False, True
                    # A cancel aimed at the turn that crashed must not abort this load.
                    self._cancel.clear()
            else:
                request = self._pending.popleft()
                self._running = request
                self._cancel.clear()
                conn = self._conn
        if doomed:
            self._fail(doomed, "no model is loaded: load one first")
            return
        if reload is not None:
            self._sink(ev.ModelLoadStarted(model_path=reload[0]))
            threading.Thread(
                target=self._load_job, args=reload, daemon=True, name="glassbox-reload"
            ).start()
            return
        try:
            messages = request.messages() if callable(request.messages) else request.messages
            payload = {
                "request_id": request.request_id,
                "messages": [dict(m) for m in messages],
                "sampling": request.sampling.to_dict(),
                "submit_ns": request.submit_ns,
            }
            assert conn is not None
            conn.send(("chat", payload))
        except OSError:
            pass  # the reader thread reports the dead worker
        except Exception as exc:  # the messages callable failed
            with self._lock:
                self._running = None
            self._sink(
                ev.EngineError(
                    request_id=request.request_id, message=f"could not build the prompt: {exc}"
                )
            )
            self._sink(
                ev.TurnFinished(
                    request_id=request.request_id, metrics=TurnMetrics(stop_reason="error")
                )
            )
            self._dispatch()

    # -- reader thread ----------------------------------------------------------

    def _read_loop(self, proc: Any, conn: Connection) -> None:
        while True:
            try:
                ready = wait([conn, proc.sentinel])
                if conn in ready:
                    event = conn.recv()
                else:
                    raise EOFError
            except (EOFError, OSError):
                self._on_worker_exit(proc)
                return
            self._on_worker_event(event)

    def _on_worker_event(self, event: ev.EngineEvent) -> None:
        now = time.monotonic_ns()
        finished = False
        with self._lock:
            request = self._running
            if isinstance(event, ev.ModelLoaded):
                self.model_info = event
                self._model_path, self._settings = getattr(self, "_pending_load", (None, None))
                self._loading = False
            elif isinstance(event, ev.EngineError) and event.request_id is None:
                self._loading = False  # a failed load; the previous model stays
            elif request is not None and event.request_id == request.request_id:
                if isinstance(event, ev.TurnStarted):
                    request.started = event
                elif isinstance(event, ev.Token):
                    if request.first_token_ns is None:
                        request.first_token_ns = now
                    request.token_times.append(event.t_ns)
                    request.text.append(event.text)
                elif isinstance(event, ev.TurnFinished):
                    m = event.metrics
                    if request.first_token_ns is not None:
                        m.ttft_ms = ns_to_ms(request.first_token_ns - request.submit_ns)
                    m.total_ms = ns_to_ms(now - request.submit_ns)
                    self._running = None
                    finished = True
        self._sink(event)
        if finished or isinstance(event, ev.ModelLoaded | ev.EngineError):
            self._dispatch()

    def _on_worker_exit(self, proc: Any) -> None:
        proc.join(1.0)
        code = proc.exitcode
        with self._lock:
            expected = self._closed or self._proc is not proc
            if expected:
                return
            self._crashed = True
            was_loading, self._loading = self._loading, False
            request, self._running = self._running, None
            # A model that kills the worker while loading would do it again:
            # fail the waiting requests instead of restarting in a loop.
            doomed = list(self._pending) if was_loading else []
            if was_loading:
                self._pending.clear()
        signal_name = exit_signal_name(code)
        status = signal_name or f"exit code {code}"
        tail = self.log_tail()
        last = f": {tail[-1]}" if tail else ""
        self._sink(
            ev.EngineCrashed(
                request_id=request.request_id if request else None,
                exit_code=code,
                signal_name=signal_name,
                log_tail=tail,
                message=f"the engine process died ({status}){last}",
            )
        )
        if request is not None:
            self._sink(
                ev.TurnFinished(
                    request_id=request.request_id,
                    text="".join(request.text),
                    metrics=request.crashed_metrics(),
                )
            )
        for waiting in doomed:
            self._sink(
                ev.EngineError(
                    request_id=waiting.request_id,
                    message=f"the engine died while loading the model ({status})",
                )
            )
            self._sink(
                ev.TurnFinished(
                    request_id=waiting.request_id, metrics=TurnMetrics(stop_reason="error")
                )
            )
        self._dispatch()
