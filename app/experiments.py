"""A/B experiments: the same prompts under two (or more) configurations, side by side.

A configuration is a set of overrides of the base runtime settings, written as
`glassbox bench --compare` takes them: "threads=2 ctx=4096 kv=q8_0 fa=1", or
"model=PATH". Every configuration has its own engine (its own worker process),
all loaded before the first turn; the prompts then run in rounds, each
configuration in turn, so a machine that gets busier or cooler part-way through
tilts every side alike. Each side's prompts are consecutive turns of its own
conversation, as in `glassbox bench`.

Ratios are side / first side, per turn and for the medians over turns.
"""

from __future__ import annotations

import queue
import statistics
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.engine import events as ev
from app.engine.local import LocalEngine
from app.errors import EngineTimeoutError, GlassboxError, SettingsError
from app.metrics import TurnMetrics
from app.metrics_columns import COLUMNS
from app.models.resolve import resolve_model_path
from app.session import ChatSession
from app.settings import KV_CACHE_TYPES, RuntimeSettings, SamplingSettings
from app.storage.store import Store

# The figures an A/B run compares, and whether a higher value is better.
RATIO_FIELDS: dict[str, bool] = {
    "ttft_ms": False,
    "prefill_tok_s": True,
    "decode_tok_s": True,
    "kv_bytes_used": False,
}
LOAD_TIMEOUT_S = 600.0
TURN_TIMEOUT_S = 600.0

# KEY in a --compare spec -> RuntimeSettings field (threads sets both thread counts).
_KEYS: dict[str, str] = {
    "threads": "n_threads",
    "n_threads": "n_threads",
    "threads_batch": "n_threads_batch",
    "n_threads_batch": "n_threads_batch",
    "ctx": "n_ctx",
    "n_ctx": "n_ctx",
    "gpu_layers": "n_gpu_layers",
    "ngl": "n_gpu_layers",
    "n_gpu_layers": "n_gpu_layers",
    "batch": "n_batch",
    "n_batch": "n_batch",
    "kv": "kv_cache_type",
    "kv_cache_type": "kv_cache_type",
    "fa": "flash_attn",
    "flash_attn": "flash_attn",
    "repack": "repack",
}
_TRUE, _FALSE = ("1", "true", "on", "yes"), ("0", "false", "off", "no")


class ExperimentError(GlassboxError):
    """A configuration cannot be parsed or loaded, or a run failed."""


@dataclass(frozen=True)
class Config:
    label: str  # as the user wrote it: the column title in tables
    model: Path
    runtime: RuntimeSettings


def parse_config(spec: str, base: RuntimeSettings, base_model: Path) -> Config:
    """One --compare spec over `base`; ExperimentError (one line) naming a bad KEY=VALUE."""
    changes: dict[str, Any] = {}
    model = base_model
    for item in spec.split():
        key, sep, value = item.partition("=")
        key = key.strip().lower().replace("-", "_")
        if not sep or not value:
            raise ExperimentError(f"--compare {spec!r}: {item!r} is not KEY=VALUE")
        if key == "model":
            try:
                model = resolve_model_path(value)
            except GlassboxError as exc:
                raise ExperimentError(f"--compare {spec!r}: {exc}") from None
            continue
        name = _KEYS.get(key)
        if name is None:
            known = ", ".join(sorted({"model", *_KEYS}))
            raise ExperimentError(f"--compare {spec!r}: unknown key {key!r} (known: {known})")
        changes[name] = _value(spec, key, name, value)
        if name == "n_threads" and "n_threads_batch" not in changes:
            changes["n_threads_batch"] = changes[name]  # as --threads: prefill and decode alike
    try:
        runtime = base.with_changes(**changes).validate()
    except SettingsError as exc:
        raise ExperimentError(f"--compare {spec!r}: {exc}") from None
    return Config(spec.strip() or "base", model, runtime)


def _value(spec: str, key: str, name: str, value: str) -> Any:
    if name == "flash_attn":
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise ExperimentError(f"--compare {spec!r}: {key} must be 1 or 0, got {value!r}")
    if name in ("kv_cache_type", "repack"):
        if name == "kv_cache_type" and value not in KV_CACHE_TYPES:
            choices = ", ".join(KV_CACHE_TYPES)
            raise ExperimentError(f"--compare {spec!r}: kv must be one of {choices}")
        return value
    try:
        return int(value)
    except ValueError:
        raise ExperimentError(f"--compare {spec!r}: {key} must be a whole number") from None


@dataclass
class SideResult:
    config: Config
    loaded: ev.ModelLoaded | None = None
    turns: list[TurnMetrics] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)

    def median(self, name: str) -> float | None:
        values = [v for m in self.turns if (v := getattr(m, name)) is not None]
        return float(statistics.median(values)) if values else None

    def to_dict(self) -> dict[str, Any]:
        loaded = self.loaded
        return {
            "label": self.config.label,
            "model_path": str(self.config.model),
            "model": loaded.model_name if loaded else None,
            "settings": loaded.settings if loaded else self.config.runtime.to_dict(),
            "n_threads": loaded.n_threads if loaded else None,
            "kv_bytes_total": loaded.kv_bytes_total if loaded else None,
            "turns": [m.to_dict() for m in self.turns],
            "medians": {name: self.median(name) for name in RATIO_FIELDS},
        }


def _ratio(value: float | int | None, reference: float | int | None) -> float | None:
    if value is None or reference is None or reference == 0:
        return None
    return float(value) / float(reference)


@dataclass
class ExperimentResult:
    prompts: list[str]
    sampling: SamplingSettings
    sides: list[SideResult]

    def turn_ratios(self, side: int) -> list[dict[str, float | None]]:
        """Per turn: this side's figure over the first side's, for each RATIO_FIELDS field."""
        first = self.sides[0]
        return [
            {name: _ratio(getattr(m, name), getattr(a, name)) for name in RATIO_FIELDS}
            for m, a in zip(self.sides[side].turns, first.turns)
        ]

    def median_ratios(self, side: int) -> dict[str, float | None]:
        first = self.sides[0]
        return {
            name: _ratio(self.sides[side].median(name), first.median(name)) for name in RATIO_FIELDS
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompts": self.prompts,
            "sampling": self.sampling.to_dict(),
            "order": "alternating: each prompt runs on every side before the next prompt",
            "sides": [side.to_dict() for side in self.sides],
            "ratios": [
                {
                    "side": side.config.label,
                    "versus": self.sides[0].config.label,
                    "medians": self.median_ratios(i),
                    "per_turn": self.turn_ratios(i),
                }
                for i, side in enumerate(self.sides)
                if i > 0
            ],
        }


# (side index, turn index from 0, the side's result so far) after each finished turn.
TurnCallback = Callable[[int, int, SideResult], None]


class _Runner:
    """One engine and session for one side, with its events on a queue."""

    def __init__(self, config: Config, store: Store) -> None:
        self.config = config
        self.events: queue.Queue[ev.EngineEvent] = queue.Queue()
        self.engine = LocalEngine()
        self.session = ChatSession(self.engine, store, self._deliver)
        self.conversation_id = store.create_conversation(f"experiment: {config.label}").id

    def _deliver(self, event: ev.EngineEvent) -> None:
        if not isinstance(event, ev.Token):  # only finished turns matter here
            self.events.put(event)

    def load(self) -> ev.ModelLoaded:
        self.engine.load(self.config.model, self.config.runtime)
        while True:
            event = self._next(LOAD_TIMEOUT_S, "loading")
            if isinstance(event, ev.ModelLoaded):
                return event
            if isinstance(event, ev.EngineError | ev.EngineCrashed):
                raise ExperimentError(f"{self.config.label}: {event.message}")

    def turn(self, prompt: str, sampling: SamplingSettings) -> tuple[TurnMetrics, str]:
        request_id = self.session.send(self.conversation_id, prompt, sampling)
        while True:
            event = self._next(TURN_TIMEOUT_S, "a turn")
            if event.request_id != request_id:
                continue
            if isinstance(event, ev.TurnFinished):
                return event.metrics, event.text

    def _next(self, timeout_s: float, what: str) -> ev.EngineEvent:
        try:
            return self.events.get(timeout=timeout_s)
        except queue.Empty:
            raise EngineTimeoutError(
                f"{self.config.label}: the engine sent nothing for {timeout_s:g} s during {what}"
            ) from None

    def close(self) -> None:
        self.engine.close()


def run_experiment(
    prompts: Sequence[str],
    configs: Sequence[Config],
    sampling: SamplingSettings,
    *,
    on_turn: TurnCallback | None = None,
    on_loaded: Callable[[int, ev.ModelLoaded], None] | None = None,
    cancel: threading.Event | None = None,
) -> ExperimentResult:
    """Load every configuration, then run the prompts in alternating rounds.

    Blocks until done (call it off the GUI thread). `cancel` set between turns
    ends the run early with what was measured so far.
    """
    if len(configs) < 2:
        raise ExperimentError("an experiment needs two configurations to compare")
    if not prompts:
        raise ExperimentError("an experiment needs at least one prompt")
    sampling = sampling.validate()
    if sampling.seed is None:
        sampling = sampling.with_changes(seed=0)  # the same draws on every side
    sides = [SideResult(config) for config in configs]
    # Measurements, not conversations: a scratch database, gone afterwards.
    with tempfile.TemporaryDirectory(prefix="glassbox-experiment-") as scratch:
        store = Store.open(Path(scratch) / "experiment.sqlite3")
        runners: list[_Runner] = []
        try:
            for index, side in enumerate(sides):
                runner = _Runner(side.config, store)
                runners.append(runner)
                side.loaded = runner.load()
                if on_loaded is not None:
                    on_loaded(index, side.loaded)
            for turn, prompt in enumerate(prompts):
                for index, (runner, side) in enumerate(zip(runners, sides)):
                    if cancel is not None and cancel.is_set():
                        return ExperimentResult(list(prompts), sampling, sides)
                    metrics, text = runner.turn(prompt, sampling)
                    side.turns.append(metrics)
                    side.texts.append(text)
                    if on_turn is not None:
                        on_turn(index, turn, side)
        finally:
            for runner in runners:
                runner.close()
            store.close()
    return ExperimentResult(list(prompts), sampling, sides)


def format_ratio_table(result: ExperimentResult) -> str:
    """Medians per side and their ratios to the first side, one row per compared figure."""
    labels = [side.config.label for side in result.sides]
    width = max(12, *(len(label) for label in labels))
    header = ["figure".ljust(16), *(label.rjust(width) for label in labels)]
    header += [f"ratio {i + 1}/1".rjust(11) for i in range(1, len(labels))]
    rows = ["  ".join(header)]
    for name, higher_better in RATIO_FIELDS.items():
        column = COLUMNS[name]
        cells = [f"{column.label} ({column.unit})".ljust(16)]
        cells += [column.format(side.median(name)).rjust(width) for side in result.sides]
        for i in range(1, len(result.sides)):
            ratio = result.median_ratios(i)[name]
            cells.append(("-" if ratio is None else f"{ratio:.2f}x").rjust(11))
        rows.append("  ".join(cells) + ("" if higher_better else "   (lower is better)"))
    return "\n".join(rows)
