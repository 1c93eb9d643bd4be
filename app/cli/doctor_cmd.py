"""`glassbox doctor`: what a user pastes into a bug report.

Each section says what llama.cpp and Glassbox see on this machine: the CPU
features, the build's backends, weight repacking and why, the usable cores and
the thread counts, a short decode check, and where the files are. The check
runs in the engine's worker process like a chat, so a crash there (llama.cpp
aborting, a kernel that faults on this CPU) is reported rather than fatal. Exit
status 0 when the model loaded and decoded, 1 otherwise.
"""

from __future__ import annotations

import argparse
import queue
import re
import time
from collections.abc import Callable

from app.cli.common import add_common_flags, resolve_model, runtime_from_args
from app.engine import events as ev
from app.engine.local import LocalEngine
from app.engine.thread_tuning import cgroup_cpu_limit, load_tuned, usable_cores
from app.machine import cpu_flags, cpu_model, llama_cpp_version
from app.paths import cache_dir, data_dir, logs_dir
from app.settings import SamplingSettings

CHECK_SECONDS = 2.0
LOAD_TIMEOUT_S = 120.0
CHECK_PROMPT = "Write a long story about a lighthouse keeper and the sea."
# The flags that decide which of llama.cpp's CPU kernels can run.
KERNEL_FLAGS = re.compile(r"^(avx\d*|avx512\w*|amx\w*|f16c|fma|sse4_2|avx_vnni|neon|sve\w*)$")

Print = Callable[[str], None]


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "doctor", help="what llama.cpp sees on this machine, and a 2-second decode check"
    )
    add_common_flags(parser)
    parser.set_defaults(run=run)


def _section(out: Print, title: str, rows: list[tuple[str, str]]) -> None:
    out(f"\n## {title}")
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        out(f"  {name.ljust(width)}  {value}")


def _backends(system_info: str) -> list[str]:
    """Backend names from llama_print_system_info ("CPU : AVX2 = 1 | ... CUDA : ...")."""
    return re.findall(r"(?:^|\|)\s*([A-Za-z][\w-]*)\s*:\s", system_info)


def _wait(events: queue.Queue[ev.EngineEvent], kinds: tuple[type, ...], timeout: float) -> list:
    seen: list[ev.EngineEvent] = []
    deadline = time.monotonic() + timeout
    while True:
        event = events.get(timeout=max(0.1, deadline - time.monotonic()))
        seen.append(event)
        if isinstance(event, kinds):
            return seen


def run(args: argparse.Namespace, out: Print = print) -> int:
    model = resolve_model(args)
    settings = runtime_from_args(args)
    flags = sorted(f for f in cpu_flags() if KERNEL_FLAGS.match(f))
    _section(
        out,
        "CPU",
        [
            ("model", cpu_model()),
            ("kernel flags", " ".join(flags) or "(not reported)"),
            ("AMX", "yes" if any(f.startswith("amx") for f in flags) else "no"),
        ],
    )
    events: queue.Queue[ev.EngineEvent] = queue.Queue()
    engine = LocalEngine(events.put)
    ok = False
    try:
        engine.load(model, settings)
        try:
            seen = _wait(events, (ev.ModelLoaded, ev.EngineError, ev.EngineCrashed), LOAD_TIMEOUT_S)
        except queue.Empty:
            seen = [ev.EngineError(message=f"the model did not load in {LOAD_TIMEOUT_S:.0f} s")]
        loaded = seen[-1]
        fallbacks = [e.note for e in seen if isinstance(e, ev.ModelLoadStarted) and e.note]
        if isinstance(loaded, ev.ModelLoaded):
            _report_build(out, loaded)
            _report_repack(out, loaded, engine, fallbacks)
            _report_threads(out, loaded, model)
            ok = _decode_check(out, engine, events)
        else:
            _report_failure(out, "loading the model", loaded, engine)
    finally:
        engine.close()
        _section(
            out,
            "Files",
            [("data", str(data_dir())), ("cache", str(cache_dir())), ("logs", str(logs_dir()))],
        )
    out(f"\nresult: {'ok' if ok else 'FAILED'}")
    return 0 if ok else 1


def _report_build(out: Print, loaded: ev.ModelLoaded) -> None:
    _section(
        out,
        "llama.cpp build",
        [
            ("llama-cpp-python", llama_cpp_version()),
            ("backends", ", ".join(_backends(loaded.system_info)) or "CPU"),
            ("GPU offload", "supported" if loaded.gpu_offload_supported else "not in this build"),
            ("running on", loaded.backend),
            ("system info", loaded.system_info),
        ],
    )


def _report_repack(
    out: Print, loaded: ev.ModelLoaded, engine: LocalEngine, fallbacks: list[str]
) -> None:
    extra = loaded.extra_buffers_mib
    used = ", ".join(f"{name} {mib:.1f} MiB" for name, mib in sorted(extra.items()))
    stored = engine.repack_memory.decision(loaded.model_path)
    if fallbacks:
        why = fallbacks[-1]
    elif loaded.repack_note:
        why = loaded.repack_note
    elif loaded.repack == "auto":
        why = "auto: repacking allowed; it has not crashed here with this model"
    else:
        why = f"set to {loaded.repack} by the user"
    _section(
        out,
        "Weight repacking",
        [
            ("mode", loaded.repack),
            ("allowed", "yes" if loaded.repack_used else "no"),
            ("extra buffers", used or "none (weights used as mapped from the file)"),
            ("decision", why),
            ("stored", f"off since {stored['decided']}" if stored else "nothing stored"),
        ],
    )


def _report_threads(out: Print, loaded: ev.ModelLoaded, model: object) -> None:
    limit = cgroup_cpu_limit()
    tuned = load_tuned(str(model))
    batch = loaded.settings.get("n_threads_batch") or loaded.n_threads
    rows = [
        ("usable cores", str(usable_cores())),
        ("cgroup CPU quota", f"{limit:g} CPUs" if limit is not None else "none"),
        (
            "tuned",
            f"{tuned.n_threads} decode / {tuned.n_threads_batch} prefill ({tuned.context})"
            if tuned is not None
            else "not measured yet: run `glassbox tune`",
        ),
        (
            "this run",
            f"{loaded.n_threads} decode / {batch} prefill ({loaded.threads_source or 'set'})",
        ),
    ]
    _section(out, "Threads", rows)


def _decode_check(out: Print, engine: LocalEngine, events: queue.Queue[ev.EngineEvent]) -> bool:
    sampling = SamplingSettings(temperature=0.0, max_tokens=4096, seed=0)
    request_id = engine.submit([{"role": "user", "content": CHECK_PROMPT}], sampling)
    first_token_at: float | None = None
    finished: ev.TurnFinished | None = None
    errors: list[str] = []
    deadline = time.monotonic() + LOAD_TIMEOUT_S
    while finished is None and time.monotonic() < deadline:
        try:
            event = events.get(timeout=0.1)
        except queue.Empty:
            event = None
        if isinstance(event, ev.Token) and first_token_at is None:
            first_token_at = time.monotonic()
        elif isinstance(event, ev.EngineError | ev.EngineCrashed):
            errors.append(event.message)
        elif isinstance(event, ev.TurnFinished) and event.request_id == request_id:
            finished = event
        if first_token_at is not None and time.monotonic() - first_token_at >= CHECK_SECONDS:
            engine.cancel(request_id)
    m = finished.metrics if finished is not None else None
    ok = m is not None and not errors and (m.output_tokens or 0) > 0
    rows = [("status", "ok" if ok else "failed")]
    if m is not None:
        rows += [
            ("output tokens", str(m.output_tokens)),
            ("decode", f"{m.decode_tok_s:.1f} tok/s" if m.decode_tok_s else "n/a"),
            ("prefill", f"{m.prefill_tok_s:.1f} tok/s" if m.prefill_tok_s else "n/a"),
            ("TTFT", f"{m.ttft_ms:.0f} ms" if m.ttft_ms is not None else "n/a"),
        ]
    rows += [("error", message) for message in errors]
    _section(out, f"Decode check ({CHECK_SECONDS:.0f} s)", rows)
    return ok


def _report_failure(out: Print, phase: str, event: ev.EngineEvent, engine: LocalEngine) -> None:
    message = getattr(event, "message", str(event))
    rows = [("status", f"failed while {phase}"), ("error", message)]
    rows += [("log", line) for line in engine.log_tail(8)]
    _section(out, "Engine", rows)
