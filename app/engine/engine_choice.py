"""What a model choice asks for: a local file (one sequence or N), or a server.

The window's dropdown and the CLI name a model by its path; a saved endpoint
is "endpoint:NAME" and a server may also be named by its URL. EngineSwitch
(app.engine.switching) makes the engine of the kind asked for.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.endpoints import Endpoint, load_endpoints, split_base_url
from app.engine.base import Engine
from app.engine.batched import BatchedEngine
from app.engine.local import LocalEngine
from app.errors import SettingsError
from app.settings import RuntimeSettings

ENDPOINT_PREFIX = "endpoint:"  # what the model picker asks for a saved endpoint


def endpoint_key(endpoint: Endpoint) -> str:
    """How saved endpoints are told apart (the endpoint page replaces by it too)."""
    return endpoint.name or endpoint.root


def endpoint_choice(endpoint: Endpoint) -> str:
    """The model path that loads this saved endpoint."""
    return ENDPOINT_PREFIX + endpoint_key(endpoint)


def is_remote_choice(model_path: str | Path) -> bool:
    text = str(model_path)
    return text.startswith((ENDPOINT_PREFIX, "http://", "https://"))


def resolve_endpoint(model_path: str | Path) -> Endpoint:
    """The endpoint a remote choice names: a saved one (by name, or by URL), else the URL
    as typed. Reads the saved endpoints file: call it off the GUI thread."""
    text = str(model_path)
    key = text.removeprefix(ENDPOINT_PREFIX)
    saved = load_endpoints()
    for endpoint in saved:
        if endpoint_key(endpoint) == key:
            return endpoint
    if not key.startswith(("http://", "https://")):
        raise SettingsError(f"no saved endpoint is called {key!r} (Settings > Endpoints)")
    root = split_base_url(key)[0]
    return next((e for e in saved if e.root == root), Endpoint(key)).validate()


@dataclass(frozen=True)
class Target:
    """What a load asks for: "local", "batched" (with n_parallel) or "remote"."""

    kind: str
    n_parallel: int = 1
    endpoint: Endpoint | None = None


def target_for(model_path: str | Path, settings: RuntimeSettings) -> Target:
    if is_remote_choice(model_path):
        return Target("remote", endpoint=resolve_endpoint(model_path))
    if settings.n_parallel > 1:
        return Target("batched", n_parallel=settings.n_parallel)
    return Target("local")


def _remote_engine_class() -> type | None:
    # Imported only once a server is used (httpx costs start-up time); until then no
    # engine can be a RemoteEngine.
    module = sys.modules.get("app.engine.remote")
    return getattr(module, "RemoteEngine", None)


def kind_of(engine: Any) -> str:
    """An engine's kind; any other engine (FakeEngine in tests) counts as local."""
    remote = _remote_engine_class()
    if remote is not None and isinstance(engine, remote):
        return "remote"
    if isinstance(engine, BatchedEngine):
        return "batched"
    return "local"


def make_engine(target: Target) -> Engine:
    if target.kind == "remote":
        from app.engine.remote import RemoteEngine  # noqa: PLC0415 - see _remote_engine_class

        assert target.endpoint is not None
        return RemoteEngine(target.endpoint)
    if target.kind == "batched":
        return BatchedEngine(target.n_parallel)
    return LocalEngine()
