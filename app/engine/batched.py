"""BatchedEngine: the local model decoding up to N requests at once (app.engine.batch_worker).

Parent side, no llama_cpp: it starts the batched worker process, forwards
requests and cancels as they come (the worker lets a request join the running
batch at its next step), and passes the worker's events on. The chat's engine
when the runtime setting n_parallel is above 1 (app.engine.switching), and the
load experiment's "batched" mode; n_parallel = 1 is the same loop with one slot.

Two turns of one conversation never decode together: a request whose messages
name a conversation (ChatSession's history callable carries `conversation_key`)
waits here until the earlier turn of that conversation has finished, and its
messages are read only then, so they hold the reply before it. If the worker
dies, the next request starts a fresh one on the last model. Weight repacking
here is off unless the settings say "on": a fallback after a crash is
LocalEngine's business. The worker keeps a finished request's cells in its slot
for a next prompt that starts the same way (prompt_cache=False turns that off).
"""

from __future__ import annotations

import itertools
import threading
import time
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from app.engine import events as ev
from app.engine import thread_tuning
from app.engine.base import EngineEvents, Untuned, engine_state
from app.engine.pending_turn import MessagesSource, PendingTurn, exit_signal_name
from app.engine.worker_process import (
    CLOSE_GRACE_S,
    _main_module_hidden,
    new_log_path,
    read_log_tail,
    spawn_context,
)
from app.errors import EngineUnavailableError, GlassboxError
from app.metrics import TurnMetrics, ns_to_ms
from app.settings import RuntimeSettings, SamplingSettings

MAX_PARALLEL = 32


class BatchedEngine(EngineEvents, Untuned):
    """Streams events to on_event (or the next_event() queue), like LocalEngine."""

    def __init__(
        self, n_parallel: int, on_event: ev.EventSink | None = None, *, prompt_cache: bool = True
    ) -> None:
        if not 1 <= n_parallel <= MAX_PARALLEL:
            raise GlassboxError(f"parallel sequences must be 1..{MAX_PARALLEL}, got {n_parallel}")
        super().__init__(on_event)
        self.n_parallel = n_parallel
        # Slots keep a finished request's cells for a next prompt that starts the same
        # way (app.engine.batch_worker); off, every prompt is evaluated whole.
        self.prompt_cache = prompt_cache
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._load_ids = itertools.count(1)
        self._ctx = spawn_context()
        self._cancel_load = self._ctx.Event()
        self._proc: Any = None
        self._conn: Connection | None = None
        self._reader: threading.Thread | None = None
        self._requests: dict[int, PendingTurn] = {}  # submitted, not finished
        self._held: list[PendingTurn] = []  # waiting here for their conversation's turn
        self._last_load: tuple[str, RuntimeSettings] | None = None
        self._threads_source = ""
        self._loading: int | None = None  # the load id in flight
        self._closed = False
        self._crashed = False
        self.model_info: ev.ModelLoaded | None = None
        self.tuning_context = "headless"
        self.log_path = new_log_path()

    # -- the Engine protocol -----------------------------------------------------

    @property
    def state(self) -> str:
        with self._lock:
            return engine_state(
                closed=self._closed,
                loading=self._loading is not None,
                crashed=self._crashed,
                busy=bool(self._requests or self._held),
                loaded=self.model_info is not None,
            )

    @property
    def worker_pid(self) -> int | None:
        """The batched worker's process id while it runs (for CPU traces)."""
        with self._lock:
            proc = self._proc
        return proc.pid if proc is not None and proc.is_alive() else None

    def load(self, model_path: str | Path, settings: RuntimeSettings | None = None) -> int:
        """Start a fresh worker with this model; ModelLoaded or an EngineError follows."""
        settings = (settings or RuntimeSettings()).validate()
        if settings.n_batch < self.n_parallel:
            raise GlassboxError(
                f"the batch size ({settings.n_batch}) must hold one token per sequence "
                f"({self.n_parallel})"
            )
        return self._load(str(model_path), settings)

    def _load(self, model_path: str, settings: RuntimeSettings, note: str = "") -> int:
        resolved, source = thread_tuning.resolve_threads(settings, model_path, self.tuning_context)
        load_id = next(self._load_ids)
        self._stop_worker()
        with self._lock:
            if self._closed:
                raise EngineUnavailableError("the engine is closed")
            self._loading, self._crashed, self.model_info = load_id, False, None
            self._last_load, self._threads_source = (model_path, settings), source
        self._cancel_load.clear()
        self._emit(ev.ModelLoadStarted(model_path=model_path, load_id=load_id, note=note))
        self._start_worker()
        self._send(
            (
                "load",
                {
                    "load_id": load_id,
                    "path": str(model_path),
                    "settings": resolved.to_dict(),
                    "n_parallel": self.n_parallel,
                    "prompt_cache": self.prompt_cache,
                    "use_extra_bufts": settings.repack == "on",
                },
            )
        )
        return load_id

    def submit(
        self,
        messages: MessagesSource,
        sampling: SamplingSettings | None = None,
        request_id: int | None = None,
    ) -> int:
        sampling = (sampling or SamplingSettings()).validate()
        rid = request_id if request_id is not None else self.new_request_id()
        if self._closed:
            raise EngineUnavailableError("the engine is closed")
        if self._cancelled_before_submit(rid):
            return rid
        with self._lock:
            reload = self._crashed and self._loading is None and self._last_load
        if reload:  # the worker died: a fresh one loads the last model, then serves this
            path, settings = reload
            self._load(path, settings, "restarting after a crash")
        request = PendingTurn(rid, messages, sampling, time.monotonic_ns())
        key = _conversation_key(messages)
        with self._lock:
            unusable = (self.model_info is None and self._loading is None) or self._crashed
            held = key is not None and any(
                _conversation_key(r.messages) == key
                for r in [*self._requests.values(), *self._held]
            )
            waiting = len(self._held) + sum(1 for r in self._requests.values() if r.started is None)
            running = len(self._requests) + len(self._held) - waiting
            ahead = waiting + (running if running >= self.n_parallel else 0)
            if not unusable:
                if held:
                    self._held.append(request)
                else:
                    self._requests[rid] = request
        if unusable:
            message = "the batched engine has no model: load one first"
            self._emit_all(ev.failed_turn(rid, message))
            return rid
        self._emit(ev.RequestQueued(request_id=rid, position=ahead))
        if not held:
            self._send_request(request)
        return rid

    def _send_request(self, request: PendingTurn) -> None:
        """To the worker, which starts it at its next step with a slot free."""
        try:
            source = request.messages
            resolved = [dict(m) for m in (source() if callable(source) else source)]
        except Exception as exc:  # the messages callable failed
            with self._lock:
                self._requests.pop(request.request_id, None)
            self._emit_all(ev.failed_turn(request.request_id, f"could not build the prompt: {exc}"))
            self._release_held()
            return
        payload = {
            "request_id": request.request_id,
            "messages": resolved,
            "sampling": request.sampling.to_dict(),
            "submit_ns": request.submit_ns,
        }
        self._send(("chat", payload))

    def _release_held(self) -> None:
        """Send the held requests whose conversation has no turn in flight any more."""
        while True:
            with self._lock:
                busy = {_conversation_key(r.messages) for r in self._requests.values()}
                ready = next(
                    (r for r in self._held if _conversation_key(r.messages) not in busy), None
                )
                if ready is None or self._closed:
                    return
                self._held.remove(ready)
                self._requests[ready.request_id] = ready
            self._send_request(ready)

    def cancel(self, request_id: int | None = None) -> None:
        """Stop a request (within a step), drop a held one; with no id, every request,
        and a load in flight is aborted."""
        with self._lock:
            targets = [r for r in self._requests if request_id in (None, r)]
            dropped = [r for r in self._held if request_id in (None, r.request_id)]
            for request in dropped:
                self._held.remove(request)
            if not targets and not dropped:
                self._ids.cancel_before_submit(request_id)
            if request_id is None and self._loading is not None:
                self._cancel_load.set()
        for rid in targets:
            self._send(("cancel", rid))
        for request in dropped:
            metrics = TurnMetrics(
                queue_ms=ns_to_ms(time.monotonic_ns() - request.submit_ns), stop_reason="cancelled"
            )
            self._emit(ev.TurnFinished(request_id=request.request_id, metrics=metrics))

    def restart(self) -> None:
        with self._lock:
            last = self._last_load
        if last is None:
            raise EngineUnavailableError("no model has been loaded yet")
        self._load(*last, note="restarting the engine")

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stop_worker()
        self.log_path.unlink(missing_ok=True)

    def log_tail(self, lines: int = 20) -> list[str]:
        return read_log_tail(self.log_path)[-lines:]

    # -- the worker ------------------------------------------------------------------

    def _start_worker(self) -> None:
        from app.engine.batch_process import batch_main  # noqa: PLC0415 - the child's code

        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(
            target=batch_main,
            args=(child_conn, self._cancel_load, str(self.log_path)),
            name="glassbox-batch-worker",
            daemon=True,
        )
        with _main_module_hidden():  # as LocalEngine's worker: spawn must not rerun __main__
            proc.start()
        child_conn.close()  # our copy of its end must go, or EOF never comes
        reader = threading.Thread(
            target=self._read, args=(parent_conn, proc), daemon=True, name="glassbox-batch-reader"
        )
        with self._lock:
            self._proc, self._conn, self._reader = proc, parent_conn, reader
        reader.start()

    def _stop_worker(self) -> None:
        with self._lock:
            proc, conn, reader = self._proc, self._conn, self._reader
            self._proc = self._conn = self._reader = None
            ended = list(self._requests.values()) + self._held
            self._requests.clear()
            self._held = []
        if proc is None or conn is None:
            self._end_cancelled(ended)  # held requests, never sent to a worker
            return
        try:
            with self._send_lock:
                conn.send(("close", None))
        except (OSError, ValueError):
            pass
        proc.join(CLOSE_GRACE_S)
        if proc.is_alive():
            proc.kill()
            proc.join(CLOSE_GRACE_S)
        if reader is not None and reader is not threading.current_thread():
            reader.join(CLOSE_GRACE_S)
        conn.close()
        self._end_cancelled(ended)

    def _end_cancelled(self, ended: list[PendingTurn]) -> None:
        for request in ended:
            metrics = request.crashed_metrics()
            metrics.stop_reason = "cancelled"
            self._emit(ev.TurnFinished(request_id=request.request_id, metrics=metrics))

    def _send(self, message: Any) -> None:
        with self._lock:
            conn = self._conn
        if conn is None:
            return
        try:
            with self._send_lock:
                conn.send(message)
        except (OSError, ValueError):
            pass  # the reader reports the dead worker

    def _read(self, conn: Connection, proc: Any) -> None:
        while True:
            try:
                ready = wait([conn, proc.sentinel])
                if conn not in ready:
                    raise EOFError
                event = conn.recv()
            except (EOFError, OSError, ValueError):
                proc.join(1.0)
                self._on_exit(proc)
                return
            self._on_event(event)

    def _on_event(self, event: ev.EngineEvent) -> None:
        with self._lock:
            request = self._requests.get(event.request_id) if event.request_id else None
            finished = isinstance(event, ev.TurnFinished)
            if isinstance(event, ev.ModelLoaded):
                event.threads_source = self._threads_source
                self.model_info, self._loading = event, None
            elif isinstance(event, ev.EngineError) and event.request_id is None:
                self._loading = None
            elif request is not None:
                if isinstance(event, ev.TurnStarted):
                    request.started = event
                elif isinstance(event, ev.Token):
                    if request.first_token_ns is None:
                        request.first_token_ns = event.t_ns
                    request.token_times.append(event.t_ns)
                elif isinstance(event, ev.TurnFinished):
                    del self._requests[event.request_id]  # type: ignore[arg-type]
        self._emit(event)
        if finished and self._held:  # the session has stored the reply: the next turn sees it
            self._release_held()

    def _on_exit(self, proc: Any) -> None:
        with self._lock:
            if proc is not self._proc:
                return  # stopped on purpose
            self._proc = self._conn = self._reader = None
            self._crashed = True
            loading, self._loading = self._loading, None
            ended = list(self._requests.values())
            held, self._held = self._held, []
            self._requests.clear()
        code = proc.exitcode
        status = exit_signal_name(code) or f"exit code {code}"
        tail = self.log_tail()
        message = f"the batched engine process died ({status})"
        if loading is not None:
            self._emit(ev.EngineError(message=message, load_id=loading))
        if not ended:  # idle: the crash is still news (the window shows it)
            self._emit(
                ev.EngineCrashed(
                    exit_code=code,
                    signal_name=exit_signal_name(code),
                    log_tail=tail,
                    message=message,
                )
            )
        for request in ended:
            self._emit(
                ev.EngineCrashed(
                    request_id=request.request_id,
                    exit_code=code,
                    signal_name=exit_signal_name(code),
                    log_tail=tail,
                    message=message,
                )
            )
            self._emit(
                ev.TurnFinished(request_id=request.request_id, metrics=request.crashed_metrics())
            )
        for request in held:  # never started: nothing of theirs to keep
            self._emit_all(ev.failed_turn(request.request_id, message))


def _conversation_key(messages: MessagesSource) -> object | None:
    """What orders a request after the earlier turns of its conversation (None: nothing)."""
    return getattr(messages, "conversation_key", None) if callable(messages) else None
