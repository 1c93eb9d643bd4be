"""Which engine a load experiment runs on: the local model (its own worker) or a server.

The experiment gets an engine of its own, never the chat's: its requests then
queue behind nothing but each other, and the chat keeps its listener. For a
local model that is a second worker process with its own copy of the weights.
"""

from __future__ import annotations

import queue
import time
from dataclasses import dataclass

from app.endpoints import Endpoint
from app.engine import events as ev
from app.engine.local import LocalEngine
from app.engine.remote import RemoteEngine
from app.errors import GlassboxError
from app.settings import RuntimeSettings

OPEN_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class LoadSource:
    model_path: str | None = None  # a GGUF file (local)
    runtime: RuntimeSettings | None = None
    endpoint: Endpoint | None = None  # or a server

    @property
    def mode(self) -> str:
        return "remote" if self.endpoint is not None else "sequential"


def open_engine(
    source: LoadSource, max_concurrency: int, timeout_s: float = OPEN_TIMEOUT_S
) -> tuple[LocalEngine | RemoteEngine, ev.ModelLoaded]:
    """A loaded (or connected) engine whose events go to its next_event() queue.
    Raises GlassboxError with the engine's message when it cannot be made ready."""
    engine: LocalEngine | RemoteEngine
    if source.endpoint is not None:
        # Every request of a round goes out at once; the server decides how to serve them.
        engine = RemoteEngine(source.endpoint, max_in_flight=max_concurrency)
        engine.load()
    elif source.model_path is not None:
        engine = LocalEngine()
        engine.load(source.model_path, source.runtime)
    else:
        raise GlassboxError("no model and no endpoint to run the experiment on")
    try:
        return engine, _wait_ready(engine, timeout_s)
    except BaseException:
        engine.close()
        raise


def _wait_ready(engine: LocalEngine | RemoteEngine, timeout_s: float) -> ev.ModelLoaded:
    deadline = time.monotonic() + timeout_s
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise GlassboxError(f"the model was not ready within {timeout_s:.0f} s")
        try:
            event = engine.next_event(timeout=left)
        except queue.Empty:
            continue
        if isinstance(event, ev.ModelLoaded):
            return event
        if isinstance(event, ev.EngineError | ev.EngineCrashed):
            raise GlassboxError(event.message)
