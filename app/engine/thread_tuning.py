"""Threads tuned per machine: usable cores, the choice from a measurement, its cache.

Parent side only (no llama_cpp import): the measurement itself runs in the
worker (app.engine.thread_probe). The best thread counts depend on the CPU,
how many cores this process may use, the llama.cpp build and the model, and,
when a window streams beside the decode, on the window's own CPU use; so a
measured result is stored per CPU model, usable cores, llama-cpp-python
version, model file and context ("window" or "headless").
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from app.atomic_file import write_json_atomic
from app.engine.events import ModelLoaded, ThreadMeasurement, TuneFinished
from app.machine import cpu_model, llama_cpp_version, model_file_key
from app.paths import cache_dir
from app.settings import RuntimeSettings

CACHE_FILE = "tuned_threads.json"
CACHE_VERSION = 1
# Where the measurement ran: beside a streaming window, or without one.
CONTEXTS = ("window", "headless")

# Where the thread counts of a load came from (ModelLoaded.threads_source).
SOURCE_EXPLICIT = "explicit"  # --threads or a Settings value
SOURCE_TUNED = "tuned"  # a stored measurement for this machine and model
SOURCE_DEFAULT = "default"  # no measurement yet: every usable core

CGROUP_ROOT = Path("/sys/fs/cgroup")
SELF_CGROUP = Path("/proc/self/cgroup")


# -- usable cores ------------------------------------------------------------------


def parse_cpu_max(text: str) -> float | None:
    """cgroup v2 cpu.max ("max 100000" or "200000 100000") as CPUs; None: no limit."""
    parts = text.split()
    if not parts or parts[0] == "max":
        return None
    try:
        quota = int(parts[0])
        period = int(parts[1]) if len(parts) > 1 else 100_000
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def parse_cfs_quota(quota_text: str, period_text: str) -> float | None:
    """cgroup v1 cpu.cfs_quota_us / cpu.cfs_period_us as CPUs; -1 (None): no limit."""
    try:
        quota, period = int(quota_text.strip()), int(period_text.strip())
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def cgroup_cpu_limit(root: Path = CGROUP_ROOT, self_cgroup: Path = SELF_CGROUP) -> float | None:
    """The tightest CPU quota on this process's cgroup and its ancestors, in CPUs.

    A container usually sees its own cgroup mounted at the root; on a host the
    process's cgroup (from /proc/self/cgroup) sits below it, and a parent's
    quota limits it as well, so every level up to the root is read.
    """
    limits: list[float] = []
    v2_path, v1_path = "/", "/"
    for line in (_read(self_cgroup) or "").splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and not controllers:
            v2_path = path or "/"
        elif "cpu" in controllers.split(","):
            v1_path = path or "/"
    for folder in _with_ancestors(root, v2_path):
        text = _read(folder / "cpu.max")
        if text is not None and (limit := parse_cpu_max(text)) is not None:
            limits.append(limit)
    for mount in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
        for folder in _with_ancestors(root / mount, v1_path):
            quota, period = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
            if quota is not None and period is not None:
                limit = parse_cfs_quota(quota, period)
                if limit is not None:
                    limits.append(limit)
    return min(limits) if limits else None


def _with_ancestors(root: Path, path: str) -> list[Path]:
    parts = [p for p in path.strip("/").split("/") if p and p != ".."]
    return [root.joinpath(*parts[:depth]) for depth in range(len(parts), -1, -1)]


def usable_cores(affinity: set[int] | None = None, cpu_limit: float | None = -1.0) -> int:
    """CPUs this process may run on (affinity), capped by the cgroup CPU quota.

    A quota of 1.5 CPUs still lets 2 threads run at once part of the time, so
    the cap rounds up; the measurement then says whether the second one helps.
    cpu_limit=-1 (the default) reads the cgroup files; None means no quota.
    """
    if affinity is None:
        try:
            affinity = os.sched_getaffinity(0)
        except AttributeError:  # not Linux
            affinity = set(range(os.cpu_count() or 1))
    cores = max(1, len(affinity))
    if cpu_limit is not None and cpu_limit < 0:
        cpu_limit = cgroup_cpu_limit()
    if cpu_limit is not None:
        cores = min(cores, max(1, math.ceil(cpu_limit)))
    return cores


def candidate_counts(usable: int) -> list[int]:
    """Thread counts to measure: every count up to 8, then a sparser ladder.

    On a big machine measuring all of 1..64 would take minutes; decode stops
    scaling long before that, so steps of a quarter of the range are enough.
    """
    if usable <= 8:
        return list(range(1, usable + 1))
    step = max(1, usable // 4)
    return sorted({1, 2, 4, 6, 8, *range(8, usable, step), usable})


# -- the choice ------------------------------------------------------------------


def choose_threads(rows: list[ThreadMeasurement]) -> tuple[int, int]:
    """(decode threads, prefill threads): the fastest measured count for each.

    A tie goes to fewer threads, which leaves a core to the window and to
    everything else on the machine.
    """
    if not rows:
        raise ValueError("no measurements to choose from")
    decode = max(rows, key=lambda r: (r.decode_tok_s, -r.n_threads)).n_threads
    prefill = max(rows, key=lambda r: (r.prefill_tok_s, -r.n_threads)).n_threads
    return decode, prefill


def best_per_count(rows: list[ThreadMeasurement]) -> list[ThreadMeasurement]:
    """One row per thread count, the best of its rounds for each phase.

    Interference on a shared machine only ever slows a round down, so the best
    round is the closest to what the count can do.
    """
    best: dict[int, ThreadMeasurement] = {}
    for row in rows:
        seen = best.get(row.n_threads)
        if seen is None:
            best[row.n_threads] = replace(row)
        else:
            seen.prefill_tok_s = max(seen.prefill_tok_s, row.prefill_tok_s)
            seen.decode_tok_s = max(seen.decode_tok_s, row.decode_tok_s)
    return [best[n] for n in sorted(best)]


# -- the cache ---------------------------------------------------------------------


@dataclass
class TunedThreads:
    n_threads: int  # decode
    n_threads_batch: int  # prefill
    rows: list[ThreadMeasurement] = field(default_factory=list)
    context: str = "headless"
    measured_at: float = 0.0  # time.time()
    key: dict[str, Any] = field(default_factory=dict)
    # Cores' worth of CPU other programs used during the measurement, when that was
    # more than app.engine.cpu_activity.BUSY_CORES: such a result is used until a
    # quieter measurement replaces it (the window measures again at its next start).
    busy_cores: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TunedThreads:
        rows = [ThreadMeasurement(**r) for r in data.get("rows", [])]
        return cls(
            n_threads=int(data["n_threads"]),
            n_threads_batch=int(data["n_threads_batch"]),
            rows=rows,
            context=str(data.get("context", "headless")),
            measured_at=float(data.get("measured_at", 0.0)),
            key=dict(data.get("key", {})),
            busy_cores=data.get("busy_cores"),
        )


def machine_key(model_path: str | Path, usable: int | None = None) -> dict[str, Any]:
    """What a measurement depends on (app.machine names the CPU, build and file)."""
    return {
        "cpu": cpu_model(),
        "usable_cores": usable if usable is not None else usable_cores(),
        "llama_cpp_python": llama_cpp_version(),
        "model": model_file_key(model_path),
    }


def _key_text(key: dict[str, Any], context: str) -> str:
    return json.dumps({**key, "context": context}, sort_keys=True)


def cache_path() -> Path:
    return cache_dir() / CACHE_FILE


def _read_entries() -> dict[str, Any]:
    try:
        raw = json.loads(cache_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(raw, dict) or raw.get("version") != CACHE_VERSION:
        return {}
    entries = raw.get("entries")
    return entries if isinstance(entries, dict) else {}


def load_tuned(
    model_path: str | Path, context: str = "headless", *, key: dict[str, Any] | None = None
) -> TunedThreads | None:
    """The stored measurement for this machine and model: this context's, else the other's.

    A headless result is a better start for the window than every core, and
    the reverse, until the window's own measurement replaces it.
    """
    key = key if key is not None else machine_key(model_path)
    entries = _read_entries()
    for wanted in (context, *(c for c in CONTEXTS if c != context)):
        data = entries.get(_key_text(key, wanted))
        if isinstance(data, dict):
            try:
                return TunedThreads.from_dict(data)
            except (KeyError, TypeError, ValueError):
                continue
    return None


def store_tuned(model_path: str | Path, result: TunedThreads) -> Path:
    """Add or replace this machine and model's entry. The file is replaced atomically,
    so another Glassbox process reads the old file or the new one, never half."""
    if not result.key:
        result.key = machine_key(model_path)
    if not result.measured_at:
        result.measured_at = time.time()
    entries = _read_entries()
    entries[_key_text(result.key, result.context)] = result.to_dict()
    target = cache_path()
    write_json_atomic(target, {"version": CACHE_VERSION, "entries": entries}, indent=1)
    return target


# -- applying it to a load ---------------------------------------------------------


def resolve_threads(
    settings: RuntimeSettings, model_path: str | Path, context: str = "headless"
) -> tuple[RuntimeSettings, str]:
    """Settings with both thread counts filled in, and where they came from.

    An explicit value always wins over a tuned one; n_threads_batch alone
    unset means "the same as n_threads", as before. With no value and no
    measurement, every usable core decodes and prefills.
    """
    if settings.n_threads is not None:
        batch = settings.n_threads_batch or settings.n_threads
        return settings.with_changes(n_threads_batch=batch), SOURCE_EXPLICIT
    tuned = load_tuned(model_path, context)
    if tuned is not None:
        decode, batch, source = tuned.n_threads, tuned.n_threads_batch, SOURCE_TUNED
    else:
        cores = usable_cores()
        decode, batch, source = cores, cores, SOURCE_DEFAULT
    if settings.n_threads_batch is not None:
        batch = settings.n_threads_batch
    return settings.with_changes(n_threads=decode, n_threads_batch=batch), source


def record_result(
    event: TuneFinished,
    model_path: str | Path,
    info: ModelLoaded | None,
    apply_decode: bool,
    apply_batch: bool,
    busy_cores: float | None = None,
) -> ModelLoaded | None:
    """Store a completed measurement (noting where, or why not, on the event).

    A measurement taken while other programs used busy_cores of CPU is stored
    (it says more about this machine now than no measurement), marked so, and
    never over a quieter one of the same context.

    Returns the loaded model's record with the new counts when the worker
    applied them (its settings left threads unset), else None.
    """
    if event.n_threads is None or event.n_threads_batch is None:
        return None
    result = TunedThreads(
        n_threads=event.n_threads,
        n_threads_batch=event.n_threads_batch,
        rows=list(event.rows),
        context=event.context,
        busy_cores=busy_cores,
    )
    earlier = load_tuned(model_path, event.context)
    keep_earlier = (
        busy_cores is not None
        and earlier is not None
        and earlier.context == event.context
        and earlier.busy_cores is None
    )
    if busy_cores is not None:
        event.busy_note = f"other programs used {busy_cores:.1f} cores meanwhile; " + (
            "the earlier, quieter measurement stays stored"
            if keep_earlier
            else "stored until a quieter measurement replaces it"
        )
    if not keep_earlier:
        try:
            event.stored_in = str(store_tuned(model_path, result))
        except OSError as exc:
            event.error = f"measured, but could not store the result: {exc}"
    if not event.applied or info is None:
        return None
    settings = dict(info.settings)
    if apply_decode:
        settings["n_threads"] = event.n_threads
    if apply_batch:
        settings["n_threads_batch"] = event.n_threads_batch
    return replace(
        info, n_threads=settings["n_threads"], settings=settings, threads_source=SOURCE_TUNED
    )
