"""Shared pieces of the `make bench` sections (benchmarks/bench_*.py).

A section module exposes:

    TITLE = "a. Decode and prefill"          # shown as the section heading
    ORDER = "a"                              # sections are reported in this order
    def run(config: BenchConfig) -> Section  # measures, side by side, in one run

and returns a Section: rows (one dict per measured path or case; the keys become
the table's columns, in first-seen order), ratios (Ratio.to_dict() of each target
checked) and notes (plain sentences: what was measured, why a target was missed).
benchmarks/report.py finds the modules, runs them and writes report.md / report.json.

Rules every section keeps: the paths compared run alternately, in the same
process run, on the same machine; figures are medians over rounds; the load
average is recorded next to them (these machines are shared).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

# Above this 1-minute load average a 2-core machine is busy with someone else's work.
QUIET_LOAD = 1.5


@dataclass
class BenchConfig:
    """What every section is given: the run's shared settings."""

    model: str
    threads: int
    rounds: int = 5
    max_tokens: int = 256
    temperature: float = 0.7
    seed: int = 42
    n_ctx: int = 4096
    quick: bool = False  # fewer rounds and tokens: a smoke run of the harness itself
    out_dir: str = "benchmarks"
    quiet_wait_s: float = 300.0  # how long a section waits for a quiet machine
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Ratio:
    """One target: value compared with a bound, e.g. engine/native >= 0.98."""

    name: str
    value: float | None
    op: str  # ">=" or "<="
    target: float
    unit: str = ""  # "" for a ratio; "ms", "s" for absolute targets
    why: str = ""  # when missed: by how much and why, in plain words

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        return self.value >= self.target if self.op == ">=" else self.value <= self.target

    @property
    def gap(self) -> str:
        if self.value is None or self.met:
            return ""
        diff = self.value - self.target
        if self.unit:
            return f"{diff:+.3g} {self.unit}"
        return f"{diff:+.3f} ({diff / self.target:+.1%})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "op": self.op,
            "target": self.target,
            "unit": self.unit,
            "met": self.met,
            "gap": self.gap,
            "why": self.why,
        }


@dataclass
class Section:
    title: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    ratios: list[Ratio] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)  # per-round figures, for report.json

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "rows": self.rows,
            "ratios": [r.to_dict() for r in self.ratios],
            "notes": self.notes,
            "raw": self.raw,
        }


def _say(message: str) -> None:
    print(message, flush=True)


def load_average() -> float:
    return os.getloadavg()[0]


def wait_for_quiet(limit_s: float = 300.0, step_s: float = 20.0, log: Callable = _say) -> float:
    """Wait (up to limit_s) for the 1-minute load average to drop below QUIET_LOAD.

    Returns the load average it starts with; a busy machine is measured anyway
    after the limit, and the report says so next to the figures.
    """
    deadline = time.monotonic() + limit_s
    load = load_average()
    while load > QUIET_LOAD and time.monotonic() < deadline:
        log(f"load average {load:.2f} > {QUIET_LOAD}: waiting {step_s:.0f} s")
        time.sleep(step_s)
        load = load_average()
    return load


def alternate(
    rounds: int,
    paths: dict[str, Callable[[], Any]],
    log: Callable = _say,
    loads: list[float] | None = None,
) -> dict[str, list[Any]]:
    """Run each path once per round, in turn, rotating which goes first.

    Rotating the order keeps a slow start (or a neighbour's burst) from
    always landing on the same path. `loads`, when given, receives the load
    average after each round.
    """
    names = list(paths)
    results: dict[str, list[Any]] = {name: [] for name in names}
    for round_no in range(rounds):
        shift = round_no % len(names)
        for name in names[shift:] + names[:shift]:
            results[name].append(paths[name]())
        load = load_average()
        if loads is not None:
            loads.append(round(load, 2))
        log(f"round {round_no + 1}/{rounds}, load {load:.2f}")
    return results


def median(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def safe_ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b
