"""`glassbox load`: N requests at once against the local model or a server, per N.

Prints a row per round (aggregate tok/s; medians of queue time, TTFT and
inter-token latency over the round's requests) and writes the whole
experiment as JSON: {"model", "settings", "runs": [...]} (app.load_experiment).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from app.cli import common
from app.cli.remote_session import add_endpoint_flags, describe_loaded, endpoint_from_args
from app.engine import events as ev
from app.errors import SettingsError
from app.load_experiment import (
    ROUND_TIMEOUT_S,
    LoadRun,
    LoadSettings,
    parse_concurrency,
    report,
)
from app.load_source import LOCAL_MODES, LoadSource, run_modes

COLUMNS = (
    ("mode", 10, "s"),
    ("N", 3, "d"),
    ("agg tok/s", 10, ".1f"),
    ("queue ms", 9, ".0f"),
    ("ttft ms", 9, ".0f"),
    ("ttft p95", 9, ".0f"),
    ("itl p50", 8, ".1f"),
    ("itl p95", 8, ".1f"),
    ("errors", 7, "d"),
)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "load", help="send N requests at once (per N): latency per request vs total throughput"
    )
    common.add_common_flags(parser)
    add_endpoint_flags(parser)
    parser.add_argument(
        "--concurrency", default="1,2,4,8", metavar="N,N,...", help="requests at once, per round"
    )
    parser.add_argument("--max-tokens", type=int, default=64, help="tokens per request")
    parser.add_argument(
        "--round-timeout",
        type=float,
        default=ROUND_TIMEOUT_S,
        metavar="S",
        help="a round still running after S seconds is cancelled and recorded as it stands",
    )
    parser.add_argument(
        "--mode",
        choices=("both", *LOCAL_MODES),
        default="both",
        help="a local model: one request at a time (sequential), N sequences decoded "
        "together (batched), or both, side by side (ignored with --endpoint)",
    )
    parser.add_argument("--json", metavar="OUT", help="write model, settings and runs here")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "parallel", None) is not None:
        raise SettingsError(
            "--parallel sets the chat's sequences; the experiment's come from --concurrency"
        )
    settings = LoadSettings(
        concurrency=parse_concurrency(args.concurrency),
        max_tokens=args.max_tokens,
        round_timeout_s=args.round_timeout,
    ).validate()
    endpoint = endpoint_from_args(args)
    if endpoint is None:
        source = LoadSource(str(common.resolve_model(args)), common.runtime_from_args(args))
        modes = LOCAL_MODES if args.mode == "both" else (args.mode,)
    else:
        source, modes = LoadSource(endpoint=endpoint), ("remote",)
    loaded: list[ev.ModelLoaded] = []

    def on_loaded(mode: str, event: ev.ModelLoaded) -> None:
        if not loaded:
            print(describe_loaded(event), file=sys.stderr)
            print(table_header())
        loaded.append(event)

    runs = run_modes(
        source, settings, modes, on_run=lambda r: print(table_row(r)), on_loaded=on_loaded
    )
    for run_ in runs:
        for message in dict.fromkeys(run_.errors):  # each distinct message once
            print(f"glassbox: N={run_.concurrency}: {message}", file=sys.stderr)
    if args.json:
        first = loaded[0]
        model = {k: v for k, v in asdict(first).items() if k not in ("request_id", "settings")}
        run_settings: dict[str, Any] = {
            "runtime": first.settings,
            "sampling": settings.sampling().to_dict(),
            "load": settings.to_dict(),
        }
        document = report(model, run_settings, runs)
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}", file=sys.stderr)
    return 1 if any(r.errors for r in runs) else 0


def table_header() -> str:
    return " ".join(f"{name:>{width}}" for name, width, _ in COLUMNS)


def table_row(run: LoadRun) -> str:
    summary = run.summary()
    values: list[Any] = [
        run.mode,
        run.concurrency,
        run.aggregate_tok_s,
        summary["queue_ms_median"],
        summary["ttft_ms_median"],
        summary["ttft_ms_p95"],
        summary["itl_ms_p50_median"],
        summary["itl_ms_p95_median"],
        len(run.errors),
    ]
    cells = []
    for (_, width, fmt), value in zip(COLUMNS, values):
        cells.append(f"{'-':>{width}}" if value is None else f"{value:>{width}{fmt}}")
    return " ".join(cells)
