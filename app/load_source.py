"""Which engines a load experiment runs on, and running it on each.

A local model runs both ways, one after the other: "sequential" (LocalEngine,
one request at a time; the rest queue) and "batched" (BatchedEngine with one
slot per request of the largest round). A server runs "remote". Each mode gets
an engine of its own, never the chat's: its requests queue behind nothing but
each other, and the chat keeps its listener. For a local model that is another
worker process with its own copy of the weights, one mode at a time.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from app.endpoints import Endpoint
from app.engine import events as ev
from app.engine.batched import BatchedEngine
from app.engine.local import LocalEngine
from app.engine.remote import RemoteEngine
from app.errors import GlassboxError, SettingsError
from app.load_experiment import LoadRun, LoadSettings, run_experiment
from app.settings import RuntimeSettings

OPEN_TIMEOUT_S = 600.0
LOCAL_MODES = ("sequential", "batched")

LoadEngineT = LocalEngine | RemoteEngine | BatchedEngine


@dataclass(frozen=True)
class LoadSource:
    model_path: str | None = None  # a GGUF file (local)
    runtime: RuntimeSettings | None = None
    endpoint: Endpoint | None = None  # or a server

    @property
    def modes(self) -> tuple[str, ...]:
        return ("remote",) if self.endpoint is not None else LOCAL_MODES


def open_engine(
    source: LoadSource, mode: str, max_concurrency: int, timeout_s: float = OPEN_TIMEOUT_S
) -> tuple[LoadEngineT, ev.ModelLoaded]:
    """A loaded (or connected) engine for this mode, its events on next_event().
    Raises GlassboxError with the engine's message when it cannot be made ready."""
    engine: LoadEngineT
    if mode == "remote":
        if source.endpoint is None:
            raise SettingsError("the remote mode needs an endpoint")
        # Every request of a round goes out at once; the server decides how to serve them.
        engine = RemoteEngine(source.endpoint, max_in_flight=max_concurrency)
        engine.load()
    elif source.model_path is None:
        raise GlassboxError("no model and no endpoint to run the experiment on")
    elif mode == "batched":
        engine = BatchedEngine(max_concurrency)  # a slot for every request of the largest round
        engine.load(source.model_path, source.runtime)
    elif mode == "sequential":
        engine = LocalEngine()
        engine.load(source.model_path, source.runtime)
    else:
        raise SettingsError(f"unknown mode {mode!r}")
    try:
        return engine, _wait_ready(engine, timeout_s)
    except BaseException:
        engine.close()
        raise


def run_modes(
    source: LoadSource,
    settings: LoadSettings,
    modes: Sequence[str] | None = None,
    on_run: Callable[[LoadRun], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_loaded: Callable[[str, ev.ModelLoaded], None] | None = None,
) -> list[LoadRun]:
    """Every round of every mode (the source's modes unless given), one engine at a time."""
    settings = settings.validate()
    runs: list[LoadRun] = []
    for mode in modes or source.modes:
        if should_stop is not None and should_stop():
            break
        engine, loaded = open_engine(source, mode, max(settings.concurrency))
        try:
            if on_loaded is not None:
                on_loaded(mode, loaded)
            runs += run_experiment(engine, mode, settings, on_run, should_stop)
        finally:
            engine.close()
    return runs


def _wait_ready(engine: LoadEngineT, timeout_s: float) -> ev.ModelLoaded:
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
