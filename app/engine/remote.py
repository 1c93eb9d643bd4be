"""RemoteEngine: the Engine protocol over an OpenAI-compatible streaming chat API.

Works with llama.cpp's llama-server, vLLM, Ollama, llama-cpp-python's server
and OpenAI itself: /v1/models to connect, /v1/chat/completions with
server-sent events per turn. Each request runs on its own background thread
(at most `max_in_flight` at once; the rest wait in our queue, and that wait is
the queue time we can measure). Events and TurnMetrics are the local engine's;
what the server does not report stays None (app.engine.remote_figures).

A fault never loses the reply so far: the turn ends with an EngineError whose
message says what happened (app.engine.remote_faults), then a TurnFinished that
carries the partial text. Stop shuts the stream's socket down.
"""

from __future__ import annotations

import collections
import itertools
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.endpoints import Endpoint
from app.engine import events as ev
from app.engine.base import EngineEvents, Untuned, engine_state
from app.engine.pending_turn import Messages, MessagesSource, PendingTurn
from app.engine.remote_client import (
    CONNECT_TIMEOUT_S,
    TOKEN_TIMEOUT_S,
    RemoteClient,
    StreamHandle,
)
from app.engine.remote_faults import RemoteError
from app.engine.remote_figures import ClientTimes, ServerFigures, build_metrics, stop_reason
from app.errors import EngineUnavailableError, GlassboxError
from app.metrics import TurnMetrics, ns_to_ms
from app.settings import RuntimeSettings, SamplingSettings

UNKNOWN_TOKEN_ID = -1  # the OpenAI stream carries text, not token ids
CLOSE_JOIN_S = 5.0


@dataclass
class _Flight:
    request: PendingTurn
    handle: StreamHandle = field(default_factory=StreamHandle)
    thread: threading.Thread | None = None


def request_body(model: str, messages: Messages, sampling: SamplingSettings) -> dict[str, Any]:
    """The chat request. top_k, min_p and repeat_penalty are not OpenAI's own but
    llama.cpp servers, vLLM and Ollama read them, so the sampler matches the local one."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": sampling.max_tokens,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "top_k": sampling.top_k,
        "min_p": sampling.min_p,
        "repeat_penalty": sampling.repeat_penalty,
    }
    if sampling.seed is not None:
        body["seed"] = sampling.seed
    if sampling.stop:
        body["stop"] = list(sampling.stop)
    return body


class RemoteEngine(EngineEvents, Untuned):
    """Streams turns from a server; see the module docstring.

    Without on_event, events go to an internal queue read with next_event().
    """

    def __init__(
        self,
        endpoint: Endpoint,
        on_event: ev.EventSink | None = None,
        *,
        max_in_flight: int = 1,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        token_timeout_s: float = TOKEN_TIMEOUT_S,
    ) -> None:
        if max_in_flight < 1:
            raise GlassboxError(f"requests in flight must be at least 1, got {max_in_flight}")
        super().__init__(on_event)
        self.endpoint = endpoint.validate()
        self.max_in_flight = max_in_flight
        self._timeouts = (connect_timeout_s, token_timeout_s)
        self._lock = threading.Lock()
        self._load_ids = itertools.count(1)
        self._client: RemoteClient | None = None
        self._old_clients: list[RemoteClient] = []  # replaced by a later load; closed at close()
        self._slot_n_ctx: int | None = None
        self._pending: collections.deque[PendingTurn] = collections.deque()
        self._flights: dict[int, _Flight] = {}
        self._threads: list[threading.Thread] = []
        self._loads_in_flight = 0
        self._closed = False
        self.model_info: ev.ModelLoaded | None = None
        self.tuning_context = "headless"

    # -- the Engine protocol -----------------------------------------------------

    @property
    def state(self) -> str:
        with self._lock:
            return engine_state(
                closed=self._closed,
                loading=self._loads_in_flight > 0,
                crashed=False,  # no process of ours to die; faults end their turns
                busy=bool(self._flights),
                loaded=self.model_info is not None,
            )

    def load(self, model_path: str | Path = "", settings: RuntimeSettings | None = None) -> int:
        """Connect: list the server's models and pick one (model_path is the model's
        name on the server; "" or the server's URL takes the endpoint's model, else
        the first listed).
        ModelLoaded, or an EngineError with this load id, follows."""
        model = str(model_path)
        if model.rstrip("/") in ("", self.endpoint.root, self.endpoint.api_base):
            # The window reloads "the model at this path": for a server, its URL.
            model = self.endpoint.model
        with self._lock:
            self._check_open()
            self._loads_in_flight += 1
        load_id = next(self._load_ids)
        self._emit(ev.ModelLoadStarted(model_path=self.endpoint.root, load_id=load_id))
        if model.lower().endswith(".gguf"):  # a local file, chosen in a window on a server
            self._load_failed(
                load_id,
                f"this engine talks to {self.endpoint.root}; a local model file needs the "
                "local engine (start Glassbox without --endpoint)",
            )
            return load_id
        self._start_thread(self._connect, (load_id, model), "glassbox-remote-connect")
        return load_id

    def submit(
        self,
        messages: MessagesSource,
        sampling: SamplingSettings | None = None,
        request_id: int | None = None,
    ) -> int:
        sampling = (sampling or SamplingSettings()).validate()
        rid = request_id if request_id is not None else self.new_request_id()
        with self._lock:
            self._check_open()
        if self._cancelled_before_submit(rid):  # Stop came between new_request_id() and now
            return rid
        with self._lock:
            request = PendingTurn(rid, messages, sampling, time.monotonic_ns())
            busy = len(self._flights) >= self.max_in_flight or self._loads_in_flight > 0
            ahead = len(self._pending) + (len(self._flights) if busy else 0)
            self._pending.append(request)
        self._emit(ev.RequestQueued(request_id=rid, position=ahead))
        self._dispatch()
        return rid

    def cancel(self, request_id: int | None = None) -> None:
        """Stop a running request (its stream closes at once), drop a queued one;
        with no id, stop every running request."""
        dropped: PendingTurn | None = None
        with self._lock:
            flights = [
                f for rid, f in self._flights.items() if request_id is None or rid == request_id
            ]
            for queued in list(self._pending):
                if queued.request_id == request_id:
                    self._pending.remove(queued)
                    dropped = queued
            if not flights and dropped is None:
                self._ids.cancel_before_submit(request_id)
        for flight in flights:
            flight.handle.cancel()
        if dropped is not None:
            metrics = TurnMetrics(
                queue_ms=ns_to_ms(time.monotonic_ns() - dropped.submit_ns), stop_reason="cancelled"
            )
            self._emit(ev.TurnFinished(request_id=dropped.request_id, metrics=metrics))

    def restart(self) -> None:
        """Connect again with the current model (a server restarted, a key changed)."""
        info = self.model_info
        if info is None:
            raise EngineUnavailableError("not connected to a server yet")
        self.load(info.model_name)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            flights = list(self._flights.values())
            pending = list(self._pending)
            self._pending.clear()
            threads = list(self._threads)
        for flight in flights:
            flight.handle.cancel()
        for request in pending:
            metrics = TurnMetrics(
                queue_ms=ns_to_ms(time.monotonic_ns() - request.submit_ns), stop_reason="cancelled"
            )
            self._emit(ev.TurnFinished(request_id=request.request_id, metrics=metrics))
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(CLOSE_JOIN_S)
        with self._lock:
            clients = [*self._old_clients, *([self._client] if self._client else [])]
            self._old_clients, self._client = [], None
        for client in clients:
            client.close()

    def log_tail(self, lines: int = 20) -> list[str]:
        return []  # no process of ours to keep a log: faults are in the events

    # -- connecting ------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise EngineUnavailableError("the engine is closed")

    def _start_thread(self, target: Any, args: tuple[Any, ...], name: str) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, daemon=True, name=name)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()
        return thread

    def _connect(self, load_id: int, model: str) -> None:
        started = time.monotonic_ns()
        client: RemoteClient | None = None
        try:
            connect_s, token_s = self._timeouts
            client = RemoteClient(
                self.endpoint, connect_timeout_s=connect_s, token_timeout_s=token_s
            )
            models = client.list_models()
            if model and model not in models:
                listed = ", ".join(models[:8]) or "none"
                raise RemoteError(f"the server has no model {model!r} (it lists: {listed})")
            if not models and not model:
                raise RemoteError("the server lists no models")
            chosen = model or models[0]
            slot_n_ctx = client.slot_n_ctx()
        except (RemoteError, GlassboxError) as exc:
            if client is not None:
                client.close()
            self._load_failed(load_id, str(exc))
            return
        except Exception as exc:  # a bug of ours: reported, never a dead thread
            traceback.print_exc()
            if client is not None:
                client.close()
            self._load_failed(load_id, f"could not connect: {type(exc).__name__}: {exc}")
            return
        info = ev.ModelLoaded(
            model_path=self.endpoint.root,
            model_name=chosen,
            load_ms=ns_to_ms(time.monotonic_ns() - started),
            backend="remote",
            n_ctx=slot_n_ctx or 0,
            kv_cells_total=slot_n_ctx or 0,
            has_chat_template=True,  # the server applies its own template
            chat_format="server",
            settings={"endpoint": self.endpoint.root, "model": chosen},
            load_id=load_id,
            repack="",
            repack_used=False,
        )
        with self._lock:
            if self._client is not None:
                self._old_clients.append(self._client)
            self._client, self._slot_n_ctx = client, slot_n_ctx
            self.model_info = info
            self._loads_in_flight -= 1
            closed = self._closed
        if closed:
            client.close()
            return
        self._emit(info)
        self._dispatch()

    def _load_failed(self, load_id: int, message: str) -> None:
        with self._lock:
            self._loads_in_flight -= 1
        self._emit(ev.EngineError(message=message, load_id=load_id))
        self._dispatch()

    # -- requests --------------------------------------------------------------------

    def _dispatch(self) -> None:
        """Start queued requests while there is room; fail them when nothing can serve them."""
        doomed: list[PendingTurn] = []
        starting: list[_Flight] = []
        with self._lock:
            if self._closed or self._loads_in_flight:
                return
            if self.model_info is None or self._client is None:
                doomed = list(self._pending)
                self._pending.clear()
            while self._pending and len(self._flights) < self.max_in_flight:
                request = self._pending.popleft()
                flight = _Flight(request)
                self._flights[request.request_id] = flight
                starting.append(flight)
        for request in doomed:
            self._emit_all(
                ev.failed_turn(request.request_id, "not connected to a server: connect first")
            )
        for flight in starting:
            flight.thread = self._start_thread(
                self._run, (flight,), f"glassbox-remote-{flight.request.request_id}"
            )

    def _run(self, flight: _Flight) -> None:
        request = flight.request
        rid = request.request_id
        times = ClientTimes(submit_ns=request.submit_ns)
        figures = ServerFigures()
        parts: list[str] = []
        error: str | None = None
        cancelled = False
        with self._lock:
            client, model, figures.slot_n_ctx = self._client, self.model_info, self._slot_n_ctx
        try:
            assert client is not None and model is not None
            messages = request.messages() if callable(request.messages) else request.messages
            body = request_body(model.model_name, messages, request.sampling)
            times.sent_ns = time.monotonic_ns()
            request.started = ev.TurnStarted(
                request_id=rid,
                t_ns=times.sent_ns,
                queue_ms=ns_to_ms(times.sent_ns - request.submit_ns),
            )
            self._emit(request.started)

            def on_text(text: str, t_ns: int) -> None:
                if request.first_token_ns is None:
                    request.first_token_ns = t_ns
                index = len(times.token_times)
                times.token_times.append(t_ns)
                request.token_times.append(t_ns)
                parts.append(text)
                self._emit(
                    ev.Token(
                        request_id=rid, index=index, token_id=UNKNOWN_TOKEN_ID, text=text, t_ns=t_ns
                    )
                )

            result = client.stream_chat(body, flight.handle, on_text, figures)
            cancelled = result.cancelled
        except RemoteError as exc:
            error = str(exc)
        except Exception as exc:
            traceback.print_exc()
            error = f"could not finish the request: {type(exc).__name__}: {exc}"
        times.end_ns = time.monotonic_ns()
        if error is None and not cancelled and client is not None:
            figures.kv_fill = client.kv_fill()
        if error is not None:
            reason: str | None = "error"
        elif cancelled:
            reason = "cancelled"
        else:
            reason = stop_reason(figures.finish_reason, bool(request.sampling.stop))
        metrics = build_metrics(times, figures, reason)
        with self._lock:
            self._flights.pop(rid, None)
        if error is not None:
            self._emit(ev.EngineError(request_id=rid, message=error))
        self._emit(ev.TurnFinished(request_id=rid, text="".join(parts), metrics=metrics))
        self._dispatch()
