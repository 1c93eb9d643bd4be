"""`glassbox chat`: terminal chat on the same engine, store and metrics as the GUI."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from app import bandwidth
from app.cli.common import (
    LoadedSession,
    add_common_flags,
    add_sampling_flags,
    sampling_from_args,
)
from app.cli.remote_session import add_endpoint_flags, describe_loaded, open_session
from app.conversation_settings import effective_sampling
from app.diagnosis import diagnose_trace
from app.engine import events as ev
from app.errors import GlassboxError
from app.metrics_table import MetricsTable
from app.settings import SamplingSettings
from app.storage.store import Store
from app.turn_trace import TraceRecorder

PROMPT = "you> "
QUIT_WORDS = ("/quit", "/exit")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "chat",
        help="chat in the terminal (reads stdin when piped)",
        description="Chat in the terminal: replies on stdout; the conversation id, the "
        "metrics table and notes on stderr. Piped stdin is one message, or one message a "
        "line with --each-line.",
    )
    add_common_flags(parser)
    add_endpoint_flags(parser)
    # Flags added from here on note that they were typed: a typed sampling flag wins
    # over the conversation's stored overrides, an untyped default does not.
    parser.register("action", None, _TypedStore)
    parser.register("action", "store", _TypedStore)
    parser.register("action", "append", _TypedAppend)
    add_sampling_flags(parser)
    parser.add_argument(
        "--system", default="", help="system prompt for a new conversation (default: none)"
    )
    parser.add_argument(
        "--conversation",
        type=int,
        metavar="ID",
        help="continue a stored conversation (default: start a new one)",
    )
    parser.add_argument(
        "--each-line",
        action="store_true",
        help="piped stdin: send each non-empty line as its own message, in one "
        "conversation (default: all of stdin is one message)",
    )
    parser.set_defaults(run=run)


class _TypedStore(argparse._StoreAction):
    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        super().__call__(parser, namespace, values, option)
        namespace.typed_flags = {*getattr(namespace, "typed_flags", ()), self.dest}


class _TypedAppend(argparse._AppendAction):
    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        super().__call__(parser, namespace, values, option)
        namespace.typed_flags = {*getattr(namespace, "typed_flags", ()), self.dest}


def _conversation_sampling(
    store: Store, conversation_id: int, sampling: SamplingSettings, args: argparse.Namespace
) -> SamplingSettings:
    """The flags' settings with the conversation's stored overrides applied, except
    for the flags typed on this command line."""
    typed: set[str] = getattr(args, "typed_flags", set())
    stored = store.sampling_overrides(conversation_id) or {}
    kept = {name: value for name, value in stored.items() if name not in typed}
    if kept:
        shown = ", ".join(f"{name}={value}" for name, value in sorted(kept.items()))
        print(f"conversation {conversation_id} uses its own {shown}", file=sys.stderr)
    return effective_sampling(sampling, kept, conversation_id)


def run(args: argparse.Namespace) -> int:
    sampling = sampling_from_args(args)
    store = Store.open()
    loaded = open_session(args, store)
    try:
        print(describe_loaded(loaded.loaded), file=sys.stderr)
        if args.conversation is not None:
            if store.get_conversation(args.conversation) is None:
                raise GlassboxError(f"no conversation with id {args.conversation}")
            conversation_id = args.conversation
            sampling = _conversation_sampling(store, conversation_id, sampling, args)
        else:
            conversation_id = store.create_conversation(system_prompt=args.system).id
        print(f"conversation {conversation_id}", file=sys.stderr)
        interactive = sys.stdin.isatty()
        # The metrics table bench and the demo print; in a live chat the replies
        # scroll its header away, so each row comes with it.
        table = MetricsTable(_to_stderr, repeat_header=interactive)
        if not interactive and args.each_line:
            return _each_line(loaded, conversation_id, sampling, table)
        if not interactive:
            # Piped input is one message: `cat question.txt | glassbox chat`.
            text = sys.stdin.read().strip()
            if not text:
                raise GlassboxError("stdin was empty: nothing to send")
            return _turn(loaded, conversation_id, text, sampling, _recorder(loaded), table)
        print("Type a message; Ctrl+C stops a reply, /quit ends.", file=sys.stderr)
        recorder = _recorder(loaded)  # across turns: the model's baseline decode rate
        while True:
            try:
                text = input(PROMPT).strip()
            except EOFError:
                print(file=sys.stderr)
                return 0
            if text in QUIT_WORDS:
                return 0
            if text:
                _turn(loaded, conversation_id, text, sampling, recorder, table)
    finally:
        loaded.close()


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr)


def _each_line(
    loaded: LoadedSession, conversation_id: int, sampling: SamplingSettings, table: MetricsTable
) -> int:
    """--each-line: one turn per line of stdin, read as lines come (a pipe may be slow)."""
    recorder = _recorder(loaded)
    sent = failed = 0
    for line in sys.stdin:
        text = line.strip()
        if not text:
            continue
        sent += 1
        failed += _turn(loaded, conversation_id, text, sampling, recorder, table)
    if not sent:
        raise GlassboxError("stdin had no non-empty line: nothing to send")
    return 1 if failed else 0


def _recorder(loaded: LoadedSession) -> TraceRecorder:
    """Turn traces; the worker's CPU time is ours, not another program's."""
    return TraceRecorder(lambda: [getattr(loaded.session.engine, "worker_pid", None)])


def _turn(
    loaded: LoadedSession,
    conversation_id: int,
    text: str,
    sampling: SamplingSettings,
    recorder: TraceRecorder,
    table: MetricsTable,
) -> int:
    """Send one message, stream the reply to stdout, metrics to stderr. 0 unless it failed."""
    request_id = loaded.session.send(conversation_id, text, sampling)
    failed = False
    printed = ""
    while True:
        try:
            event = loaded.next_event()
        except KeyboardInterrupt:
            loaded.session.cancel(request_id)
            continue
        if event.request_id is None and isinstance(event, ev.EngineError | ev.EngineCrashed):
            print(f"glassbox: {event.message}", file=sys.stderr)  # e.g. a reload that failed
            continue
        if event.request_id != request_id:
            continue
        trace = recorder.on_event(event)
        if isinstance(event, ev.TurnStarted) and event.dropped_messages:
            print(
                f"(left out the {event.dropped_messages} oldest messages to fit the "
                f"{loaded.loaded.n_ctx}-token context)",
                file=sys.stderr,
            )
        elif isinstance(event, ev.Token):
            printed += event.text
            print(event.text, end="", flush=True)
        elif isinstance(event, ev.EngineError | ev.EngineCrashed):
            print(f"\nglassbox: {event.message}", file=sys.stderr)
            failed = True
        elif isinstance(event, ev.TurnFinished):
            # Text held back as a possible stop string, and not one after all.
            if event.text.startswith(printed):
                print(event.text[len(printed) :], end="")
            print()
            if event.metrics.output_tokens is not None or event.metrics.prompt_tokens:
                table.add(event.metrics)
                if trace is not None and event.metrics.stop_reason != "error":
                    measured = bandwidth.cached()  # never measured here: no pause before a reply
                    speed = measured.bytes_per_s if measured else None
                    diagnosis = diagnose_trace(trace, loaded.loaded, recorder, speed)
                    print(diagnosis.line(), file=sys.stderr)
            return 1 if failed else 0
