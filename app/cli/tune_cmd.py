"""`glassbox tune`: measure prefill and decode speed per thread count, store the best.

Loads the model (the bundled one by default) in the engine worker, runs the
thread measurement (app.engine.thread_probe) headless, prints the table and
the chosen counts, and stores them where the app, the CLI and `glassbox demo`
look for them (app.engine.thread_tuning). An explicit --threads still wins
over the stored counts everywhere.
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
from dataclasses import asdict
from typing import Any

from app.cli.common import add_common_flags, resolve_model, runtime_from_args
from app.engine import events as ev
from app.engine import thread_tuning
from app.engine.local import LocalEngine
from app.errors import GlassboxError

TIMEOUT_S = 600.0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "tune", help="measure decode and prefill speed per thread count; store the fastest"
    )
    add_common_flags(parser)
    parser.add_argument(
        "--counts",
        metavar="N,N,...",
        help="thread counts to measure (default: 1 to the usable cores)",
    )
    parser.add_argument("--rounds", type=int, default=2, help="rounds per count (default 2)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(run=run)


def _counts(args: argparse.Namespace, usable: int) -> list[int]:
    if not args.counts:
        return thread_tuning.candidate_counts(usable)
    try:
        counts = sorted({int(part) for part in args.counts.split(",") if part.strip()})
    except ValueError:
        message = f"--counts must be numbers separated by commas, got {args.counts!r}"
        raise GlassboxError(message) from None
    if not counts or counts[0] < 1:
        raise GlassboxError(f"--counts must be thread counts of 1 or more, got {args.counts!r}")
    return counts


def _next(events: queue.Queue[ev.EngineEvent]) -> ev.EngineEvent:
    try:
        return events.get(timeout=TIMEOUT_S)
    except queue.Empty:
        raise GlassboxError(f"the engine said nothing for {TIMEOUT_S:.0f} s") from None


def run(args: argparse.Namespace) -> int:
    if args.rounds < 1:
        raise GlassboxError(f"--rounds must be at least 1, got {args.rounds}")
    model = resolve_model(args)
    settings = runtime_from_args(args)
    usable = thread_tuning.usable_cores()
    counts = _counts(args, usable)
    events: queue.Queue[ev.EngineEvent] = queue.Queue()
    show = sys.stderr.isatty() and not args.json
    with LocalEngine(on_event=events.put) as engine:
        engine.load(model, settings)
        while not isinstance(event := _next(events), ev.ModelLoaded):
            if isinstance(event, ev.EngineError | ev.EngineCrashed):
                raise GlassboxError(event.message)
        if not engine.tune(counts, rounds=args.rounds):
            raise GlassboxError("the engine is busy; nothing was measured")
        while not isinstance(event := _next(events), ev.TuneFinished):
            if isinstance(event, ev.EngineError | ev.EngineCrashed):
                raise GlassboxError(event.message)
            if show and isinstance(event, ev.TuneProgress) and event.phase == "prefill":
                print(
                    f"\rmeasuring {event.step}/{event.total}: {event.n_threads} threads ",
                    end="",
                    file=sys.stderr,
                )
        if show:
            print("\r\033[K", end="", file=sys.stderr)
    if event.error and event.n_threads is None:
        raise GlassboxError(f"the measurement failed: {event.error}")
    if event.cancelled:
        raise GlassboxError("the measurement was cancelled")
    if args.json:
        print(json.dumps(_as_json(event, usable, str(model)), indent=2))
    else:
        print(format_table(event, usable))
    if event.error:  # measured, not stored
        print(f"glassbox: {event.error}", file=sys.stderr)
        return 1
    return 0


def format_table(event: ev.TuneFinished, usable: int) -> str:
    lines = [f"{'threads':>7}  {'prefill tok/s':>13}  {'decode tok/s':>12}"]
    for row in event.rows:
        lines.append(f"{row.n_threads:>7}  {row.prefill_tok_s:>13.1f}  {row.decode_tok_s:>12.1f}")
    lines.append(
        f"chosen: {event.n_threads} decode / {event.n_threads_batch} prefill threads "
        f"(usable cores: {usable}; best of each count's rounds)"
    )
    if event.stored_in:
        lines.append(f"stored in {event.stored_in}")
    if event.busy_note:
        lines.append(f"note: {event.busy_note}")
    return "\n".join(lines)


def _as_json(event: ev.TuneFinished, usable: int, model: str) -> dict[str, Any]:
    return {
        "model": model,
        "usable_cores": usable,
        "rows": [asdict(row) for row in event.rows],
        "n_threads": event.n_threads,
        "n_threads_batch": event.n_threads_batch,
        "stored_in": event.stored_in or None,
        "busy_note": event.busy_note or None,
    }
