"""`glassbox bench --compare SPEC --compare SPEC`: an A/B run (app.experiments) from the CLI.

Each --compare is one configuration: space-separated KEY=VALUE overrides of the
base settings (the command's own flags), or model=PATH. One --compare alone is
compared with the base settings as they are.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from app.cli.common import resolve_model, runtime_from_args, sampling_from_args
from app.experiments import (
    RATIO_FIELDS,
    ExperimentError,
    ExperimentResult,
    SideResult,
    format_ratio_table,
    parse_config,
    run_experiment,
)
from app.metrics_columns import COLUMNS
from app.prompts_file import read_prompts


def add_compare_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="SPEC",
        help='A/B run: a configuration as "threads=2 ctx=4096 kv=q8_0 fa=1 batch=256 '
        'gpu_layers=0" or "model=PATH" (repeat for the second side; one alone is compared '
        "with the base settings); the prompts alternate between the sides",
    )


def run_compare(args: argparse.Namespace) -> int:
    if getattr(args, "endpoint", None):
        raise ExperimentError("--compare runs local models; it cannot be used with --endpoint")
    prompts = read_prompts(args.prompts)
    sampling = sampling_from_args(args)
    base, model = runtime_from_args(args), resolve_model(args)
    specs = list(args.compare)
    if len(specs) == 1:
        specs.insert(0, "")  # the base settings as they are
    configs = [parse_config(spec, base, model) for spec in specs]

    def on_loaded(index: int, loaded: object) -> None:
        name = getattr(loaded, "model_name", "?")
        threads = getattr(loaded, "n_threads", "?")
        n_ctx = getattr(loaded, "n_ctx", "?")
        print(
            f"side {index + 1} ({configs[index].label}): {name}, n_ctx {n_ctx}, {threads} threads",
            file=sys.stderr,
        )

    header = ["turn", "side".ljust(24)] + [
        f"{COLUMNS[f].header} {COLUMNS[f].unit}".rjust(16) for f in RATIO_FIELDS
    ]
    print("  ".join(header))

    def on_turn(index: int, turn: int, side: SideResult) -> None:
        metrics = side.turns[-1]
        cells = [str(turn + 1).rjust(4), f"{index + 1}: {side.config.label}"[:24].ljust(24)]
        cells += [COLUMNS[f].of(metrics).rjust(16) for f in RATIO_FIELDS]
        print("  ".join(cells), flush=True)

    result = run_experiment(prompts, configs, sampling, on_turn=on_turn, on_loaded=on_loaded)
    print()
    print(format_ratio_table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_dict(), indent=2) + "\n", "utf-8")
        print(f"wrote {args.json}", file=sys.stderr)
    return _exit_code(result)


def _exit_code(result: ExperimentResult) -> int:
    failed = any(m.stop_reason == "error" for side in result.sides for m in side.turns)
    return 1 if failed else 0
