"""--endpoint, --api-key-env, --remote-model: chat and bench against an OpenAI-compatible server.

The commands call open_session() and describe_loaded() from here; without
--endpoint they are app.cli.common's, unchanged.
"""

from __future__ import annotations

import argparse
import queue
import time

from app.cli import common
from app.endpoints import Endpoint, load_endpoints
from app.engine import events as ev
from app.engine.remote import RemoteEngine
from app.errors import GlassboxError, SettingsError
from app.session import ChatSession
from app.storage.store import Store

CONNECT_WAIT_S = 60.0
# Flags that shape a local model's load; a server decides these for itself.
LOCAL_ONLY_FLAGS = (
    ("model", "--model"),
    ("ctx", "--ctx"),
    ("gpu_layers", "--gpu-layers"),
    ("threads", "--threads"),
    ("repack", "--repack"),
    ("parallel", "--parallel"),
)


def add_endpoint_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("remote server (OpenAI-compatible)")
    group.add_argument(
        "--endpoint",
        metavar="URL",
        help="use the server at URL (http://host:port or .../v1: llama-server, vLLM, Ollama) "
        "or a saved endpoint's name, instead of a local model",
    )
    keys = group.add_mutually_exclusive_group()
    keys.add_argument(
        "--api-key-env", metavar="NAME", help="environment variable that holds the API key"
    )
    keys.add_argument(
        "--api-key-keyring",
        action="store_true",
        help="read the API key from the system keyring (service 'glassbox', user: the URL)",
    )
    group.add_argument(
        "--remote-model", metavar="NAME", help="model name on the server (default: its first)"
    )


def endpoint_from_args(args: argparse.Namespace) -> Endpoint | None:
    """The endpoint the flags name, or None for a local model. Bad combinations raise."""
    given = getattr(args, "endpoint", None)
    if not given:
        for flag in ("api_key_env", "remote_model"):
            if getattr(args, flag, None):
                raise SettingsError(f"--{flag.replace('_', '-')} needs --endpoint URL")
        if getattr(args, "api_key_keyring", False):
            raise SettingsError("--api-key-keyring needs --endpoint URL")
        return None
    for attr, flag in LOCAL_ONLY_FLAGS:
        if getattr(args, attr, None) is not None:
            hint = " (use --remote-model NAME)" if attr == "model" else ""
            raise SettingsError(
                f"{flag} is for a local model; with --endpoint the server decides{hint}"
            )
    saved = {e.name: e for e in load_endpoints() if e.name}
    endpoint = saved.get(given) or Endpoint(given)
    if args.api_key_env:
        endpoint = endpoint.with_changes(key_source="env", api_key_env=args.api_key_env)
    elif args.api_key_keyring:
        endpoint = endpoint.with_changes(key_source="keyring")
    if args.remote_model:
        endpoint = endpoint.with_changes(model=args.remote_model)
    return endpoint.validate()


def open_session(
    args: argparse.Namespace, store: Store, *, stream_tokens: bool = True
) -> common.LoadedSession:
    """A connected remote session with --endpoint; else common.open_session (a local model)."""
    endpoint = endpoint_from_args(args)
    if endpoint is None:
        return common.open_session(args, store, stream_tokens=stream_tokens)
    return open_remote_session(endpoint, store, stream_tokens=stream_tokens)


def open_remote_session(
    endpoint: Endpoint, store: Store, *, stream_tokens: bool = True, max_in_flight: int = 1
) -> common.LoadedSession:
    events: queue.Queue[ev.EngineEvent] = queue.Queue()

    def deliver(event: ev.EngineEvent) -> None:
        if stream_tokens or not isinstance(event, ev.Token):
            events.put(event)

    engine = RemoteEngine(endpoint, max_in_flight=max_in_flight)
    session = ChatSession(engine, store, deliver)
    try:
        loaded = wait_connected(engine, events)
    except BaseException:
        engine.close()
        raise
    return common.LoadedSession(session, events, loaded)


def wait_connected(engine: RemoteEngine, events: queue.Queue[ev.EngineEvent]) -> ev.ModelLoaded:
    engine.load()
    deadline = time.monotonic() + CONNECT_WAIT_S
    while True:
        try:
            event = events.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise GlassboxError(
                f"no answer from {engine.endpoint.root} within {CONNECT_WAIT_S:.0f} s"
            ) from None
        if isinstance(event, ev.ModelLoaded):
            return event
        if isinstance(event, ev.EngineError):
            raise GlassboxError(event.message)


def describe_loaded(loaded: ev.ModelLoaded) -> str:
    if loaded.backend != "remote":
        return common.describe_loaded(loaded)
    context = f"n_ctx {loaded.n_ctx} a slot" if loaded.n_ctx else "n_ctx unknown"
    return (
        f"{loaded.model_name} | remote {loaded.model_path} | {context} | "
        f"connected in {loaded.load_ms:.0f} ms"
    )
