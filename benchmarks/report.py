"""`make bench`: run every benchmarks/bench_*.py section and write report.md and report.json.

Each section measures its comparisons side by side in this one run (alternating
rounds, medians, ratios against the targets); see benchmarks/benchlib.py for
what a section module provides.

    .venv/bin/python benchmarks/report.py [--only decode,gui] [--rounds 5] [--quick]
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))  # `app` and `ui`, when run as a script
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from benchlib import BenchConfig, Section, load_average  # noqa: E402


def discover(only: set[str] | None = None) -> list[ModuleType]:
    """The section modules, in their ORDER; `only` filters by name without "bench_"."""
    modules = []
    for path in sorted(HERE.glob("bench_*.py")):
        short = path.stem.removeprefix("bench_")
        if only and short not in only and path.stem not in only:
            continue
        module = importlib.import_module(path.stem)
        if callable(getattr(module, "run", None)):  # a report section, not a stand-alone script
            modules.append(module)
    return sorted(modules, key=lambda m: (str(getattr(m, "ORDER", "z")), m.__name__))


def run_section(module: ModuleType, config: BenchConfig) -> dict[str, Any]:
    title = str(getattr(module, "TITLE", module.__name__))
    print(f"== {title}", flush=True)
    load_before = load_average()
    started = time.monotonic()
    try:
        section: Section = module.run(config)
        data = section.to_dict()
    except Exception as exc:
        traceback.print_exc()
        data = Section(title, notes=[f"failed: {type(exc).__name__}: {exc}"]).to_dict()
    data["module"] = module.__name__
    data["load_before"] = round(load_before, 2)
    data["load_after"] = round(load_average(), 2)
    data["seconds"] = round(time.monotonic() - started, 1)
    return data


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value).replace("|", "\\|")


def _table(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c)) for c in columns) + " |")
    return lines


def _ratio_table(ratios: list[dict[str, Any]]) -> list[str]:
    if not ratios:
        return []
    lines = ["| target | measured | wanted | met | gap | why |", "|---|---|---|---|---|---|"]
    for r in ratios:
        unit = f" {r['unit']}" if r["unit"] else ""
        met = {True: "yes", False: "**no**", None: "-"}[r["met"]]
        lines.append(
            f"| {r['name']} | {_cell(r['value'])}{unit if r['value'] is not None else ''} "
            f"| {r['op']} {r['target']}{unit} | {met} | {r['gap']} | {r['why']} |"
        )
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    env = report["environment"]
    out = [
        "# Glassbox benchmark report",
        "",
        f"Written by `make bench` on {env['date']} ({env['machine']}, {env['cpus']} CPUs, "
        f"Python {env['python']}, llama-cpp-python {env['llama_cpp_python']}). "
        f"Model {env['model']}, {env['threads']} threads. Every comparison below was measured "
        "side by side in this one run, alternating rounds; figures are medians.",
        "",
    ]
    for section in report["sections"]:
        out += [f"## {section['title']}", ""]
        out.append(
            f"Load average (1 min) {section['load_before']} before, "
            f"{section['load_after']} after; {section['seconds']} s."
        )
        out.append("")
        if section["rows"]:
            out += [*_table(section["rows"]), ""]
        if section["ratios"]:
            out += [*_ratio_table(section["ratios"]), ""]
        for note in section["notes"]:
            out += [f"- {note}"]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def environment(config: BenchConfig) -> dict[str, Any]:
    import os

    try:
        import llama_cpp

        version = getattr(llama_cpp, "__version__", "?")
    except ImportError:
        version = "not installed"
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "llama_cpp_python": version,
        "model": Path(config.model).name,
        "threads": config.threads,
        "rounds": config.rounds,
        "max_tokens": config.max_tokens,
        "temperature": config.temperature,
        "seed": config.seed,
        "n_ctx": config.n_ctx,
    }


def main(argv: list[str] | None = None) -> int:
    from app.paths import bundled_model_path
    from app.settings import physical_core_count

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated sections (decode, gui, ...)")
    parser.add_argument("--model", default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--ctx", type=int, default=4096)
    parser.add_argument("--quick", action="store_true", help="2 rounds, 64 tokens: a smoke run")
    parser.add_argument("--out", default=str(HERE), help="where report.md/json go")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=300.0,
        metavar="S",
        help="wait up to S seconds for the load average to drop below 1.5 before a section",
    )
    args = parser.parse_args(argv)
    config = BenchConfig(
        model=args.model or str(bundled_model_path()),
        threads=args.threads or physical_core_count(),
        rounds=2 if args.quick else args.rounds,
        max_tokens=64 if args.quick else args.max_tokens,
        temperature=args.temperature,
        seed=args.seed,
        n_ctx=args.ctx,
        quick=args.quick,
        out_dir=args.out,
        quiet_wait_s=args.quiet_wait,
    )
    only = set(args.only.split(",")) if args.only else None
    modules = discover(only)
    if not modules:
        print("no benchmark sections found", file=sys.stderr)
        return 2
    report = {
        "environment": environment(config),
        "sections": [run_section(m, config) for m in modules],
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out / "report.md").write_text(render_markdown(report), encoding="utf-8")
    print(f"wrote {out / 'report.md'} and {out / 'report.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
