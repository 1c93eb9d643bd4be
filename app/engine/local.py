"""LocalEngine: the parent-side handle on the llama.cpp worker process.

Plain Python, no llama_cpp import. It decides what the worker does next: loads
and chat requests wait in parent-side queues and are sent one at a time, when
the worker is free, so a cancel can never reach a command it was not meant for.
One reader thread per worker receives its events, fills in what only the parent
can know (time to first token as the caller sees it, total time) and passes
every event to `on_event`, in order. Queue time is measured from submit to the
start of the turn. If the worker dies, the reader notices at once (it waits on
the process sentinel as well as the pipe) and reports EngineCrashed; the next
request starts a fresh worker. When the death looks like llama.cpp's repacked
weight kernels crashing on this CPU (app.engine.repack_guard), the engine
loads once more without repacking instead, and the waiting requests are served.
"""

from __future__ import annotations

import collections
import itertools
import os
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.engine import cpu_activity, thread_tuning
from app.engine import events as ev
from app.engine.base import EngineEvents
from app.engine.pending_turn import MessagesSource, PendingTurn, exit_signal_name
from app.engine.repack_guard import RepackMemory, RepackPlan, crash_reason, plan_for
from app.engine.token_batch import TokenBatch
from app.engine.worker_process import (
    WorkerProcess,
    new_log_path,
    read_log_tail,
    spawn_context,
)
from app.errors import EngineUnavailableError, GlassboxError
from app.metrics import TurnMetrics, ns_to_ms
from app.models.gguf_file import read_gguf_info
from app.settings import RuntimeSettings, SamplingSettings

EventSink = ev.EventSink

LOG_TAIL_LINES = 20
CRASH_LOG_BYTES = 512_000
KERNEL_FAULT_SIGNALS = (
    "SIGSEGV",
    "SIGBUS",
    "SIGILL",
    "SIGFPE",
)  # enough for a load at llama.cpp's debug log level


@dataclass
class LoadAttempt:
    load_id: int
    path: str
    settings: RuntimeSettings
    plan: RepackPlan | None = None  # set once the file is checked; then it can be sent
    note: str = ""  # why the engine started this load itself


class LocalEngine(EngineEvents):
    """Runs a GGUF model in a worker process and streams events to `on_event`.

    on_event is called from the engine's reader thread (or from the caller's
    thread for events that need no worker). Without on_event, events go to an
    internal queue read with next_event(). An exception in on_event is reported
    as an EngineError and never stops the events that follow.
    """

    # submit() takes top_logprobs: token probabilities computed in the decode loop.
    takes_top_logprobs = True

    def __init__(
        self, on_event: EventSink | None = None, repack_memory: RepackMemory | None = None
    ) -> None:
        super().__init__(on_event)  # the listener, event queue and request ids (app.engine.base)
        self._lock = threading.RLock()
        self._spawn_lock = threading.Lock()  # never held with _lock: readers of state never wait
        self._load_ids = itertools.count(1)
        self._ctx = spawn_context()
        self._cancel = self._ctx.Event()
        self._worker: WorkerProcess | None = None
        self._loads: collections.deque[LoadAttempt] = collections.deque()  # not yet sent
        self._loading: LoadAttempt | None = None  # sent; the worker is loading it
        self._current: LoadAttempt | None = None  # what the worker has loaded
        self._turns_since_load = 0
        self._pending: collections.deque[PendingTurn] = collections.deque()

        self._running: PendingTurn | None = None
        self._closed = False
        self._crashed = False
        self._keep_log = False
        self.model_info: ev.ModelLoaded | None = None
        self.repack_memory = repack_memory or RepackMemory()
        self.log_path = new_log_path()
        # Thread tuning (tune()). "window" when a window streams beside the
        # decode (the GUI sets it): its CPU use changes the best counts.
        self.tuning_context = "headless"
        self._tuning = False
        self._tune_cpu: cpu_activity.CpuSnapshot | None = None
        self._tune_apply = (False, False)  # (decode, prefill): the result replaces them
        self._threads_source = ""  # of the load in flight (ModelLoaded.threads_source)

    # -- public API --------------------------------------------------------------

    @property
    def state(self) -> str:
        with self._lock:
            if self._closed:
                return "closed"
            if self._loading is not None or self._loads:
                return "loading"
            if self._crashed:
                return "crashed"
            if self._running is not None:
                return "generating"
            return "ready" if self.model_info is not None else "idle"

    @property
    def worker_pid(self) -> int | None:
        with self._lock:
            worker = self._worker
            return worker.pid if worker is not None and worker.is_alive() else None

    @property
    def tuning(self) -> bool:
        """A thread measurement (tune()) is running."""
        with self._lock:
            return self._tuning

    def tune(
        self,
        counts: Sequence[int] | None = None,
        *,
        rounds: int | None = None,
        decode_tokens: int | None = None,
    ) -> bool:
        """Measure prefill and decode speed per thread count on the loaded model.

        Only while the engine is idle: returns False, doing nothing, while a
        model loads, a turn runs or waits, or no model is loaded. Otherwise
        TuneProgress events follow, then one TuneFinished. The result is stored
        for this machine and model (app.engine.thread_tuning) and, when the
        settings leave threads unset, used at once. A submit() or load()
        meanwhile stops the measurement within a token: it never delays them.
        """
        with self._lock:
            current, worker = self._current, self._worker
            busy = self._running or self._loading or self._loads or self._pending
            if self._closed or busy or self._tuning or self._crashed or current is None:
                return False
            if worker is None or not worker.is_alive() or self.model_info is None:
                return False
            settings = current.settings
            chosen = list(counts or thread_tuning.candidate_counts(thread_tuning.usable_cores()))
            self._tune_apply = (settings.n_threads is None, settings.n_threads_batch is None)
            payload: dict[str, Any] = {
                "counts": chosen,
                "context": self.tuning_context,
                "apply_decode": self._tune_apply[0],
                "apply_batch": self._tune_apply[1],
            }
            if rounds is not None:
                payload["rounds"] = rounds
            if decode_tokens is not None:
                payload["decode_tokens"] = decode_tokens
            self._tuning = True
            self._cancel.clear()
        self._tune_cpu = cpu_activity.snapshot([os.getpid(), worker.pid or 0])
        try:
            worker.send(("tune", payload))
        except OSError:
            pass  # the reader thread reports the dead worker
        return True

    def load(self, model_path: str | Path, settings: RuntimeSettings | None = None) -> int:
        """Load a model (asynchronously); returns its load id. Invalid settings raise
        SettingsError here. The file is checked in a background thread first; a bad
        file gives an EngineError event and the previous model stays loaded. The load
        starts when the running turn, if any, has finished."""
        settings = (settings or RuntimeSettings()).validate()
        with self._lock:
            self._check_open()
            if self._tuning:
                self._cancel.set()  # the thread measurement stops; this load goes next
        return self._begin_load(str(model_path), settings)

    def submit(
        self,
        messages: MessagesSource,
        sampling: SamplingSettings | None = None,
        request_id: int | None = None,
        top_logprobs: int = 0,
    ) -> int:
        """Queue a chat request; returns its request id. Messages may be a callable,
        evaluated when the turn starts (so a queued follow-up sees the reply before it).
        top_logprobs (0..10): each token's probability and that many alternatives, on
        its Token event and TurnFinished.tokens (app.engine.token_logprobs); 0 computes none."""
        sampling = (sampling or SamplingSettings()).validate()
        rid = request_id if request_id is not None else self.new_request_id()
        with self._lock:
            self._check_open()
        if self._ids.submitted(rid):  # Stop came between new_request_id() and now
            self._emit(
                ev.TurnFinished(request_id=rid, metrics=TurnMetrics(stop_reason="cancelled"))
            )
            return rid
        with self._lock:
            self._check_open()
            request = PendingTurn(rid, messages, sampling, time.monotonic_ns(), top_logprobs)
            busy = self._running or self._loading or self._loads
            ahead = len(self._pending) + (1 if busy else 0)
            self._pending.append(request)
            if self._tuning:
                self._cancel.set()  # the thread measurement stops within a token; this goes next
        self._emit(ev.RequestQueued(request_id=rid, position=ahead))
        self._dispatch()
        return rid

    def cancel(self, request_id: int | None = None) -> None:
        """Stop the running turn (within one token), drop a queued request, or, with no
        request id while a model loads, abort the load (the previous model stays)."""
        dropped: PendingTurn | None = None
        dropped_loads: list[LoadAttempt] = []
        with self._lock:
            running = self._running
            if running is not None and request_id in (None, running.request_id):
                self._cancel.set()
                return
            if request_id is None:
                if self._loading is not None or self._tuning:
                    self._cancel.set()  # aborts the load, or stops the thread measurement
                dropped_loads = list(self._loads)
                self._loads.clear()
            for queued in list(self._pending):
                if queued.request_id == request_id:
                    self._pending.remove(queued)
                    dropped = queued
            self._ids.cancel_before_submit(request_id)
        for attempt in dropped_loads:
            self._emit(ev.EngineError(message="model loading cancelled", load_id=attempt.load_id))
        if dropped is not None:
            metrics = TurnMetrics(
                queue_ms=ns_to_ms(time.monotonic_ns() - dropped.submit_ns), stop_reason="cancelled"
            )
            self._emit(ev.TurnFinished(request_id=dropped.request_id, metrics=metrics))
        if dropped_loads:
            self._dispatch()

    def restart(self) -> None:
        """Start a fresh worker with the last model and settings (after a crash, or
        to get out of a stuck turn: the running turn ends, kept as partial)."""
        with self._lock:
            current, loading = self._current, self._loading
            if current is None and loading is None:
                raise EngineUnavailableError("no model has been loaded yet")
            running, self._running = self._running, None
            worker, self._worker = self._worker, None
            self._loading, self._tuning = None, False
            if loading is not None:
                self._loads.appendleft(loading)  # sent to the fresh worker instead
        if worker is not None:
            worker.stop()
        if running is not None:
            metrics = running.crashed_metrics()
            metrics.stop_reason = "cancelled"
            self._emit(ev.TurnFinished(request_id=running.request_id, metrics=metrics))
        if loading is None and current is not None:
            self._begin_load(current.path, current.settings, "restarting the engine")
        else:
            self._dispatch()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            ended = ([self._running] if self._running else []) + list(self._pending)
            self._pending.clear()
            self._loads.clear()
            self._running = self._loading = None
            worker, self._worker = self._worker, None
        self._cancel.set()
        if worker is not None:
            worker.stop()
        for request in ended:
            metrics = request.crashed_metrics()
            metrics.stop_reason = "cancelled"
            self._emit(ev.TurnFinished(request_id=request.request_id, metrics=metrics))
        if not (self._crashed or self._keep_log):  # a crash's log stays for the bug report
            self.log_path.unlink(missing_ok=True)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> list[str]:
        return read_log_tail(self.log_path)[-lines:]

    # -- loads ----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise EngineUnavailableError("the engine is closed")

    def _begin_load(self, path: str, settings: RuntimeSettings, note: str = "") -> int:
        attempt = LoadAttempt(next(self._load_ids), path, settings, note=note)
        with self._lock:
            self._loads.append(attempt)
        self._emit(ev.ModelLoadStarted(model_path=path, load_id=attempt.load_id, note=note))
        threading.Thread(
            target=self._check_file, args=(attempt,), daemon=True, name="glassbox-load"
        ).start()
        return attempt.load_id

    def _check_file(self, attempt: LoadAttempt) -> None:
        """Off the caller's thread: the header read and the repack decision read files."""
        try:
            read_gguf_info(attempt.path)
            plan = plan_for(attempt.settings.repack, attempt.path, self.repack_memory)
        except Exception as exc:
            with self._lock:
                if attempt in self._loads:
                    self._loads.remove(attempt)
            message = str(exc) if isinstance(exc, GlassboxError) else f"could not load: {exc}"
            self._emit(ev.EngineError(message=message.splitlines()[0], load_id=attempt.load_id))
        else:
            attempt.plan = plan
        self._dispatch()

    # -- scheduling -------------------------------------------------------------------

    def _dispatch(self) -> None:
        """Give the worker its next command when it is free: a load first, then a turn."""
        while True:
            doomed: list[PendingTurn] = []
            restart: LoadAttempt | None = None
            attempt: LoadAttempt | None = None
            request: PendingTurn | None = None
            with self._lock:
                busy = self._running is not None or self._loading is not None or self._tuning
                if self._closed or busy:
                    return
                if self._loads:
                    if self._loads[0].plan is None:
                        return  # its file is still being checked
                    attempt = self._loads.popleft()
                    self._loading = attempt
                    self._cancel.clear()  # from now on a cancel aborts this load
                elif not self._pending:
                    return
                elif self._crashed or self._worker is None or not self._worker.is_alive():
                    if self._current is None:
                        doomed = list(self._pending)  # no model was ever loaded
                        self._pending.clear()
                    else:
                        restart, self._crashed = self._current, False
                else:
                    request = self._pending.popleft()
                    self._running = request
                    self._turns_since_load += 1
                    self._cancel.clear()
            if doomed:
                for waiting in doomed:
                    self._emit_all(
                        ev.failed_turn(waiting.request_id, "no model is loaded: load one first")
                    )
                return
            if restart is not None:
                # A fresh worker for the next request; it loads the last model first.
                self._begin_load(restart.path, restart.settings, "restarting after a crash")
                return
            if attempt is not None:
                self._send_load(attempt)
            elif request is not None:
                self._send_turn(request)
                return

    def _send_load(self, attempt: LoadAttempt) -> None:
        assert attempt.plan is not None
        payload = {
            "load_id": attempt.load_id,
            "path": attempt.path,
            "settings": self._resolved_settings(attempt).to_dict(),
            "use_extra_bufts": attempt.plan.use_extra_bufts,
            "repack_note": attempt.plan.note,
        }
        try:
            worker = self._ensure_worker()
        except Exception as exc:
            with self._lock:
                self._loading = None
            message = f"could not start the engine: {type(exc).__name__}: {exc}"
            self._emit(ev.EngineError(message=message.splitlines()[0], load_id=attempt.load_id))
            return
        try:
            worker.send(("load", payload))
        except OSError:
            pass  # the reader thread reports the dead worker

    def _resolved_settings(self, attempt: LoadAttempt) -> RuntimeSettings:
        """Threads the settings leave unset, filled in from this machine's stored
        measurement (else every usable core); attempt.settings keeps them unset."""
        resolved, source = thread_tuning.resolve_threads(
            attempt.settings, attempt.path, self.tuning_context
        )
        with self._lock:
            self._threads_source = source
        return resolved

    def _send_turn(self, request: PendingTurn) -> None:
        try:
            messages = request.messages() if callable(request.messages) else request.messages
            payload = {
                "request_id": request.request_id,
                "messages": [dict(m) for m in messages],
                "sampling": request.sampling.to_dict(),
                "submit_ns": request.submit_ns,
                "top_logprobs": request.top_logprobs,
            }
        except Exception as exc:  # the messages callable failed
            with self._lock:
                self._running = None
            self._emit_all(ev.failed_turn(request.request_id, f"could not build the prompt: {exc}"))
            self._dispatch()
            return
        with self._lock:
            worker = self._worker
        try:
            assert worker is not None
            worker.send(("chat", payload))
        except (OSError, AssertionError):
            pass  # the reader thread reports the dead worker

    def _ensure_worker(self) -> WorkerProcess:
        """The live worker, or a new one; spawned without holding the state lock."""
        with self._spawn_lock:
            with self._lock:
                worker = self._worker
            if worker is not None and worker.is_alive():
                return worker
            worker = WorkerProcess(
                self._ctx, self._cancel, self.log_path, self._on_message, self._on_exit
            )
            with self._lock:
                self._worker, self._crashed = worker, False
            return worker

    # -- events from the worker (its reader thread) ----------------------------------

    def _on_message(self, worker: WorkerProcess, event: ev.EngineEvent) -> None:
        if isinstance(event, TokenBatch):  # one pipe message, one Token event per token
            for token in event.unpack():
                self._on_message(worker, token)
            return
        now = time.monotonic_ns()
        next_command = False
        with self._lock:
            if worker is not self._worker:
                return  # a worker that was stopped; its last words are not news
            request = self._running
            if isinstance(event, ev.ModelLoaded):
                attempt, self._loading = self._loading, None
                self._current, self._turns_since_load = attempt, 0
                self.model_info = event
                event.threads_source = self._threads_source
                next_command = True
            elif isinstance(event, ev.TuneFinished):
                self._tuning = False
                next_command = True  # a turn or load that stopped the measurement goes now
            elif isinstance(event, ev.EngineError) and event.request_id is None:
                if self._loading is not None:
                    event.load_id = self._loading.load_id
                    self._loading = None  # a failed load; the previous model stays
                    next_command = True
            elif request is not None and event.request_id == request.request_id:
                if isinstance(event, ev.TurnStarted):
                    request.started = event
                elif isinstance(event, ev.Token):
                    if request.first_token_ns is None:
                        request.first_token_ns = now
                    request.token_times.append(event.t_ns)
                elif isinstance(event, ev.TurnFinished):
                    m = event.metrics
                    if request.first_token_ns is not None:
                        m.ttft_ms = ns_to_ms(request.first_token_ns - request.submit_ns)
                    m.total_ms = ns_to_ms(now - request.submit_ns)
                    self._running = None
                    next_command = True
        if isinstance(event, ev.TuneFinished):
            self._on_tune_finished(event)
        self._emit(event)
        if next_command:
            self._dispatch()

    def _on_tune_finished(self, event: ev.TuneFinished) -> None:
        """Store a completed measurement; when it was applied, say so in model_info."""
        with self._lock:
            current, info = self._current, self.model_info
            apply_decode, apply_batch = self._tune_apply
        if current is None:
            return
        worker = self._worker
        after = cpu_activity.snapshot([os.getpid(), (worker.pid if worker else None) or 0])
        others = cpu_activity.others_cores(self._tune_cpu, after, cpu_activity.cpu_count())
        busy = others if others is not None and others > cpu_activity.BUSY_CORES else None
        updated = thread_tuning.record_result(
            event, current.path, info, apply_decode, apply_batch, busy_cores=busy
        )
        if updated is not None:
            with self._lock:
                if self.model_info is info:
                    self.model_info = updated

    def _on_exit(self, worker: WorkerProcess) -> None:
        code = worker.exitcode
        with self._lock:
            if self._closed or worker is not self._worker:
                return  # stopped on purpose
            self._worker, self._tuning = None, False
            loading, self._loading = self._loading, None
            request, self._running = self._running, None
            suspect = loading
            if suspect is None and request is not None and self._turns_since_load == 1:
                suspect = self._current  # died in the first turn after its load
            plan = suspect.plan if suspect is not None else None
            # Only a fault in native code looks like a kernel crash; SIGKILL (the
            # OOM killer, a user) or an exit code says nothing about repacking.
            fall_back = (
                plan is not None
                and plan.may_fall_back
                and exit_signal_name(code) in KERNEL_FAULT_SIGNALS
            )
            if not fall_back:
                self._crashed = True
                # A model that kills the worker while loading would do it again:
                # fail the waiting requests instead of restarting in a loop.
                doomed = list(self._pending) if loading is not None else []
                if loading is not None:
                    self._pending.clear()
        signal_name = exit_signal_name(code)
        status = signal_name or f"exit code {code}"
        if fall_back:
            assert suspect is not None
            self._fall_back(suspect, loading is not None, request, status)
            return
        tail = self.log_tail()
        last = f": {tail[-1]}" if tail else ""
        self._emit(
            ev.EngineCrashed(
                request_id=request.request_id if request else None,
                exit_code=code,
                signal_name=signal_name,
                log_tail=tail,
                message=f"the engine process died ({status}){last}",
            )
        )
        if request is not None:
            self._emit(
                ev.TurnFinished(request_id=request.request_id, metrics=request.crashed_metrics())
            )
        if loading is not None:
            self._emit(
                ev.EngineError(
                    message=f"the engine died while loading the model ({status})",
                    load_id=loading.load_id,
                )
            )
        for waiting in doomed:
            self._emit_all(
                ev.failed_turn(
                    waiting.request_id, f"the engine died while loading the model ({status})"
                )
            )
        self._dispatch()

    def _fall_back(
        self, suspect: LoadAttempt, while_loading: bool, request: PendingTurn | None, status: str
    ) -> None:
        """Load the same model once more with repacking off, and remember why."""
        log = read_log_tail(self.log_path, CRASH_LOG_BYTES)
        reason = crash_reason(log, while_loading, status)
        try:
            self.repack_memory.remember_off(suspect.path, reason)
        except OSError:
            traceback.print_exc()  # not remembered: the next start falls back again
        plan = RepackPlan(use_extra_bufts=False, may_fall_back=False, note=reason)
        retry = LoadAttempt(next(self._load_ids), suspect.path, suspect.settings, plan, reason)
        served_after = request is not None and not request.token_times
        with self._lock:
            self._keep_log = True
            self._loads.appendleft(retry)
            if served_after:
                assert request is not None
                request.started, request.first_token_ns = None, None
                self._pending.appendleft(request)  # answered by the reload, not lost
        self._emit(ev.ModelLoadStarted(model_path=suspect.path, load_id=retry.load_id, note=reason))
        if request is not None and not served_after:
            self._emit(
                ev.TurnFinished(request_id=request.request_id, metrics=request.crashed_metrics())
            )
        self._dispatch()
