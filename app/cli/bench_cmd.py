"""`glassbox bench`: prompts as consecutive turns of one conversation, a table and a JSON file."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from app.cli.common import (
    add_common_flags,
    add_sampling_flags,
    describe_loaded,
    open_session,
    sampling_from_args,
)
from app.engine import events as ev
from app.errors import GlassboxError
from app.metrics import TurnMetrics
from app.storage.store import Store

COLUMNS: tuple[tuple[str, str, str], ...] = (
    # (header, TurnMetrics field, format)
    ("prompt", "prompt_tokens", "d"),
    ("cached", "prompt_tokens_cached", "d"),
    ("eval", "prompt_tokens_evaluated", "d"),
    ("ttft ms", "ttft_ms", ".1f"),
    ("prefill t/s", "prefill_tok_s", ".1f"),
    ("out", "output_tokens", "d"),
    ("decode t/s", "decode_tok_s", ".1f"),
    ("itl p50", "itl_ms_p50", ".2f"),
    ("itl p95", "itl_ms_p95", ".2f"),
    ("kv fill", "kv_fill", ".3f"),
    ("stop", "stop_reason", "s"),
)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "bench", help="run prompts as turns of one conversation, report metrics"
    )
    add_common_flags(parser)
    add_sampling_flags(parser, max_tokens=128, seed=0, temperature=0.7)
    parser.add_argument("--prompts", required=True, metavar="FILE", help="one prompt a line")
    parser.add_argument("--json", metavar="OUT", help="write model, settings and turns here")
    parser.add_argument("--system", default="", help="system prompt")
    parser.set_defaults(run=run)


def read_prompts(path: str) -> list[str]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise GlassboxError(f"cannot read prompts file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise GlassboxError(f"prompts file {path} is not UTF-8 text ({exc.reason})") from exc
    prompts = [line.strip() for line in lines if line.strip()]
    if not prompts:
        raise GlassboxError(f"prompts file {path} has no prompts (one a line)")
    return prompts


def run(args: argparse.Namespace) -> int:
    prompts = read_prompts(args.prompts)
    sampling = sampling_from_args(args)
    # Bench turns are measurements, not conversations: keep them out of the history.
    with tempfile.TemporaryDirectory(prefix="glassbox-bench-") as scratch:
        store = Store.open(Path(scratch) / "bench.sqlite3")
        loaded = open_session(args, store, stream_tokens=False)
        try:
            print(describe_loaded(loaded.loaded), file=sys.stderr)
            conversation_id = store.create_conversation("bench", args.system).id
            print(_row(["turn", *(c[0] for c in COLUMNS)]))
            turns: list[TurnMetrics] = []
            for index, prompt in enumerate(prompts, start=1):
                metrics = _run_turn(loaded, conversation_id, prompt, sampling)
                turns.append(metrics)
                print(_row([str(index), *(_cell(metrics, f, spec) for _, f, spec in COLUMNS)]))
        finally:
            loaded.close()
    if args.json:
        report: dict[str, Any] = {
            "model": {
                k: v
                for k, v in asdict(loaded.loaded).items()
                if k not in ("request_id", "settings")
            },
            "settings": {"runtime": loaded.loaded.settings, "sampling": sampling.to_dict()},
            "turns": [m.to_dict() for m in turns],
        }
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}", file=sys.stderr)
    return 1 if any(m.stop_reason == "error" for m in turns) else 0


def _run_turn(loaded: Any, conversation_id: int, prompt: str, sampling: Any) -> TurnMetrics:
    request_id = loaded.session.send(conversation_id, prompt, sampling)
    while True:
        event = loaded.next_event()
        if event.request_id != request_id:
            continue
        if isinstance(event, ev.EngineError | ev.EngineCrashed):
            print(f"glassbox: {event.message}", file=sys.stderr)
        elif isinstance(event, ev.TurnFinished):
            metrics: TurnMetrics = event.metrics
            return metrics


def _cell(metrics: TurnMetrics, field: str, spec: str) -> str:
    value = getattr(metrics, field)
    return "-" if value is None else format(value, spec)


def _row(cells: list[str]) -> str:
    return "  ".join(cell.rjust(11) if i else cell.rjust(4) for i, cell in enumerate(cells))
