"""EngineSwitch: the chat's engine, whichever kind serves what the user chose.

The window, the session and the CLI hold one engine for their whole life; what
serves it changes with what they load:
- a GGUF file with n_parallel = 1: LocalEngine (today's one-at-a-time path;
  its events go straight to the listener, nothing in between);
- a GGUF file with n_parallel > 1: BatchedEngine(n_parallel), N requests
  decoding together;
- "endpoint:NAME" (a saved endpoint) or an http(s) URL: RemoteEngine
  (app.engine.engine_choice reads the choice).

A load the serving engine can take itself (another file on a LocalEngine, the
same server again) goes to it. Any other load starts a *candidate* engine
beside it: the serving engine keeps answering until the candidate's
ModelLoaded, then the candidate serves and the old engine finishes its running
turns and closes (on a thread of its own, so no caller waits). A candidate that
fails to load is dropped and the old engine stays, as a failed load on
LocalEngine keeps the previous model. Request ids are the switch's own, so the
ids of the conversations' turns never repeat across engines.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.endpoints import Endpoint
from app.engine import events as ev
from app.engine.base import Engine, EngineEvents
from app.engine.engine_choice import ENDPOINT_PREFIX, Target, kind_of, make_engine, target_for
from app.engine.local import LocalEngine
from app.engine.pending_turn import MessagesSource
from app.errors import EngineUnavailableError
from app.settings import RuntimeSettings, SamplingSettings

RETIRE_LIMIT_S = 600.0  # the longest an old engine may take to finish its turns
RETIRE_POLL_S = 0.05


class EngineSwitch(EngineEvents):
    """An Engine that delegates to the engine serving now; see the module docstring.

    Attributes it does not define (worker_pid, log_path, endpoint, n_parallel,
    repack_memory, ...) are the serving engine's.
    """

    def __init__(self, engine: Engine | None = None, on_event: ev.EventSink | None = None) -> None:
        super().__init__(on_event)
        self._lock = threading.Lock()
        self._current: Engine = engine if engine is not None else LocalEngine()
        self._candidate: Engine | None = None
        self._retiring: list[Engine] = []
        self._submitting: dict[int, Engine] = {}  # ids inside submit() now, and their engine
        self._late_cancels: set[int] = set()  # of those, cancelled meanwhile
        self._closed = False
        self._tuning_context = self._current.tuning_context
        self._current.set_listener(self._sink)

    # -- what serves ----------------------------------------------------------------

    @property
    def serving(self) -> Engine:
        """The engine that takes submits now."""
        with self._lock:
            return self._current

    @property
    def kind(self) -> str:
        return kind_of(self.serving)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # never for our own fields (they may not exist yet)
            raise AttributeError(name)
        return getattr(self.serving, name)

    # -- the Engine protocol -----------------------------------------------------------

    @property
    def model_info(self) -> ev.ModelLoaded | None:
        return self.serving.model_info

    @model_info.setter
    def model_info(self, value: ev.ModelLoaded | None) -> None:
        self.serving.model_info = value

    @property
    def tuning_context(self) -> str:
        return self._tuning_context

    @tuning_context.setter
    def tuning_context(self, value: str) -> None:
        self._tuning_context = value
        with self._lock:
            engines = [self._current, *([self._candidate] if self._candidate else [])]
        for engine in engines:
            engine.tuning_context = value

    @property
    def state(self) -> str:
        with self._lock:
            if self._closed:
                return "closed"
            current, candidate, retiring = self._current, self._candidate, list(self._retiring)
        state = current.state
        if state == "generating" or any(e.state == "generating" for e in retiring):
            return "generating"
        return "loading" if candidate is not None else state

    @property
    def tuning(self) -> bool:
        return self.serving.tuning

    def tune(
        self,
        counts: Sequence[int] | None = None,
        *,
        rounds: int | None = None,
        decode_tokens: int | None = None,
    ) -> bool:
        with self._lock:
            if self._candidate is not None:
                return False  # another engine is on its way: measure that one later
        return self.serving.tune(counts, rounds=rounds, decode_tokens=decode_tokens)

    def load(self, model_path: str | Path, settings: RuntimeSettings | None = None) -> int:
        """Load on the serving engine when it can take this model, else on a candidate
        that serves once loaded. Reads files (saved endpoints): not on a GUI thread."""
        settings = (settings or RuntimeSettings()).validate()
        target = target_for(model_path, settings)
        with self._lock:
            self._check_open()
            current = self._current
        same = self._takes(current, target, model_path)
        self._drop_candidate()  # a newer load wins over one in flight
        if same:
            return current.load(self._inner_path(target, model_path), settings)
        engine = make_engine(target)
        engine.tuning_context = self._tuning_context
        keep_serving = current.model_info is not None and current.state != "crashed"
        if keep_serving:
            with self._lock:
                self._candidate = engine
            engine.set_listener(self._candidate_listener(engine))
        else:  # nothing to keep answering with: the new engine serves at once
            engine.set_listener(self._sink)
            with self._lock:
                self._current = engine
            self._retire(current)
        try:
            return engine.load(self._inner_path(target, model_path), settings)
        except BaseException:
            with self._lock:
                if self._candidate is engine:
                    self._candidate = None
            if keep_serving:
                self._close_later(engine)
            raise

    # submit() takes top_logprobs, passed on to a serving engine that computes them
    # (LocalEngine); others serve the turn without them.
    takes_top_logprobs = True

    def submit(
        self,
        messages: MessagesSource,
        sampling: SamplingSettings | None = None,
        request_id: int | None = None,
        top_logprobs: int = 0,
    ) -> int:
        rid = request_id if request_id is not None else self.new_request_id()
        with self._lock:
            self._check_open()
            current = self._current
            self._submitting[rid] = current
        try:
            if self._cancelled_before_submit(rid):  # Stop came between new_request_id() and now
                return rid
            if top_logprobs and getattr(type(current), "takes_top_logprobs", False):
                current.submit(  # type: ignore[call-arg]
                    messages, sampling, request_id=rid, top_logprobs=top_logprobs
                )
            else:
                current.submit(messages, sampling, request_id=rid)
        finally:
            with self._lock:
                self._submitting.pop(rid, None)
                late = rid in self._late_cancels
                self._late_cancels.discard(rid)
        if late:  # the engine had not seen the id when Stop reached it
            current.cancel(rid)
        return rid

    def cancel(self, request_id: int | None = None) -> None:
        if request_id is not None and self._ids.cancel_before_submit(request_id):
            return
        with self._lock:
            if request_id in self._submitting:
                self._late_cancels.add(request_id)
            engines = [self._current, *self._retiring]
            if request_id is None and self._candidate is not None:
                engines.append(self._candidate)  # aborts its load where the engine can
        for engine in engines:  # ids are ours: only the engine that has it acts on it
            engine.cancel(request_id)

    def restart(self) -> None:
        self.serving.restart()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            engines = [
                *([self._candidate] if self._candidate else []),
                *self._retiring,
                self._current,
            ]
            self._candidate = None
        for engine in engines:
            engine.close()

    def set_listener(self, on_event: ev.EventSink) -> None:
        with self._lock:
            self._sink = on_event
            engines = [self._current, *self._retiring]
        for engine in engines:
            engine.set_listener(on_event)

    def log_tail(self, lines: int = 20) -> list[str]:
        return self.serving.log_tail(lines)

    # -- switching ------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise EngineUnavailableError("the engine is closed")

    @staticmethod
    def _takes(engine: Engine, target: Target, model_path: str | Path) -> bool:
        """Whether this engine loads the target itself (no engine of another kind needed)."""
        kind = kind_of(engine)
        if kind != target.kind or kind == "batched":  # a batched load restarts its worker
            return False
        if kind == "remote":
            endpoint: Endpoint = getattr(engine, "endpoint")  # noqa: B009 - a RemoteEngine's
            assert target.endpoint is not None
            if str(model_path).startswith(ENDPOINT_PREFIX):
                return endpoint == target.endpoint
            return endpoint.root == target.endpoint.root
        return True

    @staticmethod
    def _inner_path(target: Target, model_path: str | Path) -> str | Path:
        # A server's engine loads its endpoint's model when given "" (or its URL).
        return (
            ""
            if target.kind == "remote" and str(model_path).startswith(ENDPOINT_PREFIX)
            else model_path
        )

    def _candidate_listener(self, engine: Engine) -> ev.EventSink:
        return lambda event: self._on_candidate_event(engine, event)

    def _on_candidate_event(self, engine: Engine, event: ev.EngineEvent) -> None:
        """A candidate's load events; its ModelLoaded makes it the serving engine."""
        with self._lock:
            ours = self._candidate is engine
        if not ours:
            return  # dropped by a newer load; it is closing
        if isinstance(event, ev.ModelLoaded):
            with self._lock:
                old, self._current, self._candidate = self._current, engine, None
            engine.set_listener(self._sink)
            self._emit(event)  # model_info is the new engine's by now
            self._retire(old)
            return
        if isinstance(event, ev.EngineError) and event.request_id is None:
            with self._lock:
                self._candidate = None  # a failed load: the serving engine stays
            self._emit(event)
            self._close_later(engine)
            return
        self._emit(event)

    def _drop_candidate(self) -> None:
        with self._lock:
            candidate, self._candidate = self._candidate, None
        if candidate is not None:
            self._close_later(candidate)

    def _retire(self, engine: Engine) -> None:
        """Let the old engine finish its running turns, then close it, off the caller's thread."""
        with self._lock:
            self._retiring.append(engine)

        def busy() -> bool:  # a turn running, or one on its way in
            with self._lock:
                arriving = engine in self._submitting.values()
            return arriving or engine.state == "generating"

        def finish() -> None:
            deadline = time.monotonic() + RETIRE_LIMIT_S
            while busy() and time.monotonic() < deadline and not self._closed:
                time.sleep(RETIRE_POLL_S)
            try:
                engine.close()
            except Exception:
                traceback.print_exc()
            with self._lock:
                if engine in self._retiring:
                    self._retiring.remove(engine)

        threading.Thread(target=finish, daemon=True, name="glassbox-engine-retire").start()

    def _close_later(self, engine: Engine) -> None:
        def close() -> None:
            try:
                engine.close()
            except Exception:
                traceback.print_exc()

        threading.Thread(target=close, daemon=True, name="glassbox-engine-close").start()
