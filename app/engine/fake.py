"""FakeEngine: the Engine protocol without a model, for fast tests of the layers above.

It runs each command on its own thread, one at a time like the worker, and
emits the same events as LocalEngine in the same order, with real timestamps
and real sleeps between them, so queue time, TTFT and decode rates are
measured, not made up. What it says is scripted: by default it answers
"You said: <the last user message>", one word a token. A script can instead
give the tokens, an error, or a crash after some tokens, per request.

Nothing here imports llama_cpp or starts a process; a session test with it
runs in milliseconds.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from app.engine import events as ev
from app.engine.base import Untuned
from app.engine.pending_turn import Messages, MessagesSource, PendingTurn
from app.engine.request_ids import RequestIds
from app.errors import EngineUnavailableError
from app.metrics import TurnMetrics, decode_figures, ns_to_ms, rate_per_s
from app.settings import RuntimeSettings, SamplingSettings


@dataclass
class FakeReply:
    """What the fake engine does for one request."""

    tokens: list[str] = field(default_factory=list)
    error: str | None = None  # an EngineError instead of a reply
    crash_after: int | None = None  # the "worker" dies after this many tokens


Script = Callable[[Messages], FakeReply]


def echo(messages: Messages) -> FakeReply:
    last = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    words = f"You said: {last}".split(" ")
    return FakeReply(tokens=[w if i == 0 else f" {w}" for i, w in enumerate(words)])


@dataclass
class _Command:
    kind: str  # "load" or "chat"
    load_id: int = 0
    path: str = ""
    settings: RuntimeSettings | None = None
    request: PendingTurn | None = None


class FakeEngine(Untuned):  # no threads to measure: nothing runs on a CPU here
    """Scripted events with real timings; see the module docstring."""

    def __init__(
        self,
        on_event: ev.EventSink | None = None,
        *,
        script: Script = echo,
        token_interval_s: float = 0.002,
        prefill_s: float = 0.005,
        load_s: float = 0.005,
    ) -> None:
        self._events: queue.Queue[ev.EngineEvent] = queue.Queue()
        self._sink: ev.EventSink = on_event or self._events.put
        self.script = script
        self.token_interval_s, self.prefill_s, self.load_s = token_interval_s, prefill_s, load_s
        self.model_info: ev.ModelLoaded | None = None
        self.tuning_context = "headless"
        self._ids = RequestIds()
        self._load_ids = itertools.count(1)
        self._lock = threading.Lock()
        self._commands: queue.Queue[_Command | None] = queue.Queue()
        self._cancel = threading.Event()
        self._running: PendingTurn | None = None
        self._queued: list[int] = []  # request ids submitted and not started
        self._dropped: set[int] = set()

        self._loads_in_flight = 0
        self._crashed = False
        self._closed = False
        self.submitted: list[PendingTurn] = []  # what the tests asked for
        self._thread = threading.Thread(target=self._serve, daemon=True, name="fake-engine")
        self._thread.start()

    # -- the Engine protocol -----------------------------------------------------

    @property
    def state(self) -> str:
        with self._lock:
            if self._closed:
                return "closed"
            if self._loads_in_flight:
                return "loading"
            if self._crashed:
                return "crashed"
            if self._running is not None:
                return "generating"
            return "ready" if self.model_info is not None else "idle"

    def load(self, model_path: str | Path, settings: RuntimeSettings | None = None) -> int:
        settings = (settings or RuntimeSettings()).validate()
        with self._lock:
            self._check_open()
            self._loads_in_flight += 1
        load_id = next(self._load_ids)
        self._emit(ev.ModelLoadStarted(model_path=str(model_path), load_id=load_id))
        self._commands.put(_Command("load", load_id, str(model_path), settings))
        return load_id

    def new_request_id(self) -> int:
        return self._ids.new()

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
        if self._ids.submitted(rid):
            self._emit(
                ev.TurnFinished(request_id=rid, metrics=TurnMetrics(stop_reason="cancelled"))
            )
            return rid
        with self._lock:
            ahead = len(self._queued) + (1 if self._running or self._loads_in_flight else 0)
            request = PendingTurn(rid, messages, sampling, time.monotonic_ns())
            self._queued.append(rid)
            self.submitted.append(request)
        self._emit(ev.RequestQueued(request_id=rid, position=ahead))
        self._commands.put(_Command("chat", request=request))
        return rid

    def cancel(self, request_id: int | None = None) -> None:
        with self._lock:
            running = self._running
            if running is not None and request_id in (None, running.request_id):
                self._cancel.set()
                return
            if request_id in self._queued:
                self._dropped.add(request_id)
            else:
                self._ids.cancel_before_submit(request_id)

    def restart(self) -> None:
        with self._lock:
            self._crashed = False
            info = self.model_info
        if info is None:
            raise EngineUnavailableError("no model has been loaded yet")
        self.load(info.model_path, RuntimeSettings.from_dict(info.settings))

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._cancel.set()
        self._commands.put(None)
        self._thread.join(5.0)

    def set_listener(self, on_event: ev.EventSink) -> None:
        self._sink = on_event

    def next_event(self, timeout: float | None = None) -> ev.EngineEvent:
        return self._events.get(timeout=timeout)

    def log_tail(self, lines: int = 20) -> list[str]:
        return []

    def __enter__(self) -> FakeEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the "worker" -------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise EngineUnavailableError("the engine is closed")

    def _emit(self, event: ev.EngineEvent) -> None:
        self._sink(event)

    def _serve(self) -> None:
        while True:
            command = self._commands.get()
            if command is None:
                return
            if command.kind == "load":
                self._load(command)
            elif command.request is not None:
                self._chat(command.request)

    def _load(self, command: _Command) -> None:
        assert command.settings is not None
        started = time.monotonic_ns()
        time.sleep(self.load_s)
        settings = command.settings
        info = ev.ModelLoaded(
            model_path=command.path,
            model_name=f"fake {Path(command.path).stem}",
            load_ms=ns_to_ms(time.monotonic_ns() - started),
            n_layers=1,
            n_ctx=settings.n_ctx,
            n_ctx_train=settings.n_ctx,
            n_threads=settings.n_threads or 1,
            kv_cells_total=settings.n_ctx,
            chat_format="plain",
            settings=settings.to_dict(),
            load_id=command.load_id,
        )
        with self._lock:
            self.model_info, self._crashed = info, False
            self._loads_in_flight -= 1
        self._emit(info)

    def _chat(self, request: PendingTurn) -> None:
        rid = request.request_id
        with self._lock:
            self._queued.remove(rid)
            if rid in self._dropped or self._closed:
                self._dropped.discard(rid)
                dropped = True
            else:
                dropped = False
                self._running = request
                self._cancel.clear()
            info = self.model_info
        if dropped:
            metrics = TurnMetrics(
                queue_ms=ns_to_ms(time.monotonic_ns() - request.submit_ns), stop_reason="cancelled"
            )
            self._emit(ev.TurnFinished(request_id=rid, metrics=metrics))
            return
        if info is None:
            self._finish_with(ev.failed_turn(rid, "no model is loaded: load one first"))
            return
        if self._crashed:  # as LocalEngine: the next request brings a fresh "worker"
            settings = RuntimeSettings.from_dict(info.settings)
            self._emit(ev.ModelLoadStarted(model_path=info.model_path, note="restarting"))
            with self._lock:
                self._loads_in_flight += 1
            self._load(_Command("load", next(self._load_ids), info.model_path, settings))
        messages = request.messages() if callable(request.messages) else request.messages
        reply = self.script(list(messages))
        if reply.error is not None:
            self._finish_with(ev.failed_turn(rid, reply.error))
            return
        self._stream(request, reply, messages, info)

    def _stream(
        self, request: PendingTurn, reply: FakeReply, messages: Messages, info: ev.ModelLoaded
    ) -> None:
        rid = request.request_id
        started = time.monotonic_ns()
        prompt_tokens = sum(len(m["content"].split()) + 4 for m in messages)
        request.started = ev.TurnStarted(
            request_id=rid,
            t_ns=started,
            queue_ms=ns_to_ms(started - request.submit_ns),
            prompt_tokens=prompt_tokens,
        )
        self._emit(request.started)
        time.sleep(self.prefill_s)
        prefill_ns = time.monotonic_ns() - started
        text, stop_reason = "", "eos"
        for index, piece in enumerate(reply.tokens[: request.sampling.max_tokens]):
            if reply.crash_after is not None and index >= reply.crash_after:
                self._crash(request)
                return
            if index:
                time.sleep(self.token_interval_s)
            now = time.monotonic_ns()
            if request.first_token_ns is None:
                request.first_token_ns = now
            request.token_times.append(now)
            text += piece
            self._emit(ev.Token(request_id=rid, index=index, token_id=index, text=piece, t_ns=now))
            if self._cancel.is_set():
                stop_reason = "cancelled"
                break
        else:
            if len(reply.tokens) > request.sampling.max_tokens:
                stop_reason = "length"
        used = prompt_tokens + len(request.token_times)
        end = time.monotonic_ns()
        metrics = TurnMetrics(
            queue_ms=request.started.queue_ms,
            ttft_ms=ns_to_ms((request.first_token_ns or end) - request.submit_ns),
            prefill_ms=ns_to_ms(prefill_ns),
            prompt_tokens=prompt_tokens,
            prompt_tokens_cached=0,
            prompt_tokens_evaluated=prompt_tokens,
            prefill_tok_s=rate_per_s(prompt_tokens, prefill_ns),
            output_tokens=len(request.token_times),
            kv_cells_used=used,
            kv_cells_total=info.kv_cells_total,
            kv_fill=used / max(1, info.kv_cells_total),
            stop_reason=stop_reason,
            total_ms=ns_to_ms(end - request.submit_ns),
        )
        for name, value in decode_figures(request.token_times).items():
            setattr(metrics, name, value)
        with self._lock:
            self._running = None
        self._emit(ev.TurnFinished(request_id=rid, text=text, metrics=metrics))

    def _crash(self, request: PendingTurn) -> None:
        with self._lock:
            self._running, self._crashed = None, True
        self._emit(
            ev.EngineCrashed(
                request_id=request.request_id,
                exit_code=-11,
                signal_name="SIGSEGV",
                message="the engine process died (SIGSEGV): scripted by FakeEngine",
            )
        )
        self._emit(
            ev.TurnFinished(request_id=request.request_id, metrics=request.crashed_metrics())
        )

    def _finish_with(self, events: tuple[ev.EngineEvent, ...]) -> None:
        with self._lock:
            self._running = None
        for event in events:
            self._emit(event)


def scripted(replies: dict[str, FakeReply], default: Script = echo) -> Script:
    """A script keyed on the last user message's text (anything else: default)."""

    def script(messages: Messages) -> FakeReply:
        last = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        return replies.get(last, default(messages))

    return script
