"""`glassbox serve`: the OpenAI-compatible API server, without the GUI.

Every request is stored as a conversation (the GUI's list shows them) with its
metrics, and its metrics line is printed here as `glassbox chat` prints it.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import sys
import threading
from pathlib import Path

from app.cli.common import (
    add_common_flags,
    add_sampling_flags,
    describe_loaded,
    open_session,
    sampling_from_args,
)
from app.engine import events as ev
from app.errors import GlassboxError
from app.metrics_columns import format_metrics_line
from app.server import DEFAULT_HOST, DEFAULT_PORT, ApiServer
from app.storage.store import Store


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "serve",
        help="serve the model over an OpenAI-compatible API (/v1/chat/completions, /v1/models)",
        description="Serve the loaded model over an OpenAI-compatible HTTP API. Each request "
        "is stored as a conversation, with its metrics, as if typed in the window.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_common_flags(parser)
    add_sampling_flags(parser)
    parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help="address to listen on; anything but loopback needs --api-key-env",
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="TCP port to listen on (0: any free port)"
    )
    parser.add_argument(
        "--api-key-env",
        metavar="NAME",
        help="require 'Authorization: Bearer <key>', the key read from environment "
        "variable NAME (never from the command line, so it stays out of shell history "
        "and ps); default: no key",
    )
    parser.set_defaults(run=run)


def api_key_from_env(name: str | None) -> str | None:
    if name is None:
        return None
    key = os.environ.get(name, "")
    if not key.strip():
        raise GlassboxError(f"--api-key-env {name}: the environment variable {name} is not set")
    return key


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise GlassboxError(f"--port must be 0-65535, got {args.port}")
    api_key = api_key_from_env(args.api_key_env)
    if api_key is None and not _is_loopback(args.host):
        raise GlassboxError(
            f"--host {args.host} lets other machines in: set a key with --api-key-env NAME"
        )
    sampling = sampling_from_args(args)
    store = Store.open()
    loaded = open_session(args, store, stream_tokens=False)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda _n, _f: stop.set())
    try:
        print(describe_loaded(loaded.loaded), file=sys.stderr)
        server = ApiServer(
            loaded.session,
            host=args.host,
            port=args.port,
            api_key=api_key,
            sampling=lambda: sampling,
        )
        loaded.session.set_listener(server.as_listener(_print_metrics))
        server.start()
        try:
            model_id = Path(loaded.loaded.model_path).stem
            key_note = f", key from ${args.api_key_env}" if api_key else ""
            print(f"serving {model_id} at {server.url}{key_note}", flush=True)
            print("Ctrl+C stops the server.", file=sys.stderr)
            _wait(stop)
        finally:
            server.stop()
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
        loaded.close()
    print("server stopped", file=sys.stderr)
    return 0


def _wait(stop: threading.Event) -> None:
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass  # Ctrl+C: the normal way to stop


def _print_metrics(event: ev.EngineEvent) -> None:
    if isinstance(event, ev.TurnFinished) and event.metrics.prompt_tokens:
        print(f"request {event.request_id}: {format_metrics_line(event.metrics)}", file=sys.stderr)
    elif isinstance(event, ev.EngineError | ev.EngineCrashed):
        print(f"glassbox: {event.message}", file=sys.stderr)
