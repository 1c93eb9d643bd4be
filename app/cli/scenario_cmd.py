"""`glassbox scenario NAME`: reproduce one cause of a slow turn on a model, with its diagnosis."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from app.cli.common import add_common_flags, resolve_model, runtime_from_args
from app.engine import events as ev
from app.metrics_columns import format_metrics_line
from app.scenarios import SCENARIOS, ScenarioRunner


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "scenario",
        help="reproduce a cause of slow turns (long prompt, queue, ...) and diagnose it",
    )
    parser.add_argument("name", choices=[*SCENARIOS, "all"], help="which scenario to run")
    add_common_flags(parser)
    parser.add_argument("--json", metavar="OUT", help="write every request's metrics here")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    model = resolve_model(args)
    runtime = runtime_from_args(args)
    names = list(SCENARIOS) if args.name == "all" else [args.name]
    if args.ctx is not None:
        # Each scenario's cause depends on its context size (full-context overflows 1024).
        print("note: --ctx is not used; each scenario sets its own context size", file=sys.stderr)
    reports = []
    with ScenarioRunner(model, runtime, on_event=_show_load) as runner:
        for name in names:
            scenario = SCENARIOS[name]
            print(f"== {scenario.name}: {scenario.description}", file=sys.stderr)
            result = runner.run(name)
            for index, request in enumerate(result.requests):
                mark = "*" if index == scenario.focus % len(result.requests) else " "
                metrics = request.trace.metrics
                print(f"{mark} {request.label}: {format_metrics_line(metrics)}" if metrics else "")
                print(f"  {request.diagnosis.line()}")
            verdict = "reproduced" if result.reproduced else "NOT reproduced on this run"
            print(f"{scenario.name}: expected {scenario.cause}, {verdict}; see {scenario.explains}")
            reports.append(result.to_dict())
    if args.json:
        data = reports[0] if len(reports) == 1 else {"scenarios": reports}
        Path(args.json).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


def _show_load(event: ev.EngineEvent) -> None:
    if isinstance(event, ev.ModelLoaded):
        print(
            f"   loaded {event.model_name} (n_ctx {event.n_ctx}) in {event.load_ms:.0f} ms",
            file=sys.stderr,
        )
