"""The Engine protocol: what the session, the CLI and the GUI ask of an engine.

LocalEngine (a llama.cpp worker process) implements it; so do FakeEngine
(scripted events with real timings, for fast tests of the layers above) and,
later, remote and batched engines. Every engine keeps the same contract:

- events go to one listener, from any thread, in order per request;
- request ids come from new_request_id() before submit(), so callers can key
  their records on the id before any event for it can arrive;
- every submitted request ends with exactly one TurnFinished, errors included;
- load() answers with ModelLoaded, or an EngineError carrying its load id.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from app.engine import events as ev
from app.engine.pending_turn import MessagesSource
from app.settings import RuntimeSettings, SamplingSettings

# What Engine.state can be.
ENGINE_STATES = ("idle", "loading", "ready", "generating", "crashed", "closed")


@runtime_checkable
class Engine(Protocol):
    model_info: ev.ModelLoaded | None
    # "window" when a GUI measures threads while it streams; "headless" otherwise.
    tuning_context: str

    @property
    def state(self) -> str: ...

    @property
    def tuning(self) -> bool: ...

    def load(self, model_path: str | Path, settings: RuntimeSettings | None = None) -> int: ...

    def new_request_id(self) -> int: ...

    def submit(
        self,
        messages: MessagesSource,
        sampling: SamplingSettings | None = None,
        request_id: int | None = None,
    ) -> int: ...

    def cancel(self, request_id: int | None = None) -> None: ...

    def restart(self) -> None: ...

    def tune(
        self,
        counts: Sequence[int] | None = None,
        *,
        rounds: int | None = None,
        decode_tokens: int | None = None,
    ) -> bool: ...

    def close(self) -> None: ...

    def set_listener(self, on_event: ev.EventSink) -> None: ...

    def log_tail(self, lines: int = 20) -> list[str]: ...
