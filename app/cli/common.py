"""What the model-loading commands share: flags to settings, model lookup, a loaded session."""

from __future__ import annotations

import argparse
import queue
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from app.engine import events as ev
from app.engine.switching import EngineSwitch
from app.errors import EngineTimeoutError, GlassboxError
from app.models.fit_check import estimate_vs_loaded, format_memory_rows
from app.models.resolve import resolve_model_path
from app.session import ChatSession
from app.settings import (
    MAX_PARALLEL_SEQUENCES,
    REPACK_MODES,
    RuntimeSettings,
    SamplingSettings,
)
from app.storage.store import Store

LOAD_TIMEOUT_S = 600.0
EVENT_TIMEOUT_S = 600.0  # the longest wait for the next event of a running turn
EVENT_POLL_S = 0.1


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's help ends with its default, except where the default is None
    or a switch's False (the help text then says what happens without it)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default is None or action.default is False or "default" in text:
            return text
        if action.default in ("", [], ()):  # nothing to show: the text says what then
            return text
        return super()._get_help_string(action)


def use_help_format(parser: argparse.ArgumentParser) -> None:
    """HelpFormatter for this parser and every subcommand's parser below it."""
    parser.formatter_class = HelpFormatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                use_help_format(child)


def add_common_flags(parser: argparse.ArgumentParser) -> None:
    """--model, --ctx, --gpu-layers, --threads: shared by every command that loads a model."""
    base = RuntimeSettings()
    parser.add_argument("--model", metavar="PATH", help="GGUF file (default: the bundled model)")
    parser.add_argument(
        "--ctx",
        type=int,
        metavar="N",
        help=f"context size in tokens, n_ctx (default: {base.n_ctx})",
    )
    parser.add_argument(
        "--gpu-layers",
        type=int,
        metavar="N",
        help=f"layers to offload to the GPU, -1: all (default: {base.n_gpu_layers})",
    )
    parser.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="CPU threads for decode and prefill (default: measured by `glassbox tune`, "
        "else every usable core)",
    )
    parser.add_argument(
        "--parallel",
        type=int,
        metavar="N",
        help=f"requests decoded together, 1..{MAX_PARALLEL_SEQUENCES} (batched decode; they "
        f"share the context, n_ctx / N each; default: {base.n_parallel}, one at a time)",
    )
    parser.add_argument(
        "--repack",
        choices=REPACK_MODES,
        help="let llama.cpp repack weights for this CPU (AMX, ...): auto (default) falls "
        "back to off if its kernels crash, on, off",
    )


def add_sampling_flags(parser: argparse.ArgumentParser, **defaults: object) -> None:
    base = SamplingSettings()
    parser.add_argument(
        "--temperature",
        type=float,
        default=defaults.get("temperature", base.temperature),
        help="sampling temperature; 0 always picks the likeliest token",
    )
    parser.add_argument(
        "--top-k", type=int, default=base.top_k, help="sample among the k likeliest tokens (0: off)"
    )
    parser.add_argument(
        "--top-p",
        type=float,
        default=base.top_p,
        help="sample among the likeliest tokens that together hold this probability",
    )
    parser.add_argument(
        "--min-p",
        type=float,
        default=base.min_p,
        help="drop tokens less likely than this fraction of the likeliest one",
    )
    parser.add_argument(
        "--repeat-penalty",
        type=float,
        default=base.repeat_penalty,
        help="make recently used tokens less likely (1: off)",
    )
    seed = defaults.get("seed", base.seed)
    parser.add_argument(
        "--seed",
        type=int,
        default=seed,
        help="random seed, for repeatable replies"
        + (" (default: a new one each time)" if seed is None else ""),
    )
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=defaults.get("max_tokens", base.max_tokens),
        help="the longest reply, in tokens",
    )
    parser.add_argument(
        "--stop",
        action="append",
        default=[],
        metavar="TEXT",
        help="end the reply at this text, repeatable (default: only the model's own end)",
    )


def sampling_from_args(args: argparse.Namespace) -> SamplingSettings:
    return SamplingSettings(
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        min_p=args.min_p,
        repeat_penalty=args.repeat_penalty,
        seed=args.seed,
        max_tokens=args.max_tokens,
        stop=tuple(args.stop),
    ).validate()


def runtime_from_args(
    args: argparse.Namespace, base: RuntimeSettings | None = None
) -> RuntimeSettings:
    """The common flags (--ctx, --gpu-layers, --threads, --parallel, --repack) over base
    (or the defaults)."""
    flags = (
        ("n_ctx", "ctx"),
        ("n_gpu_layers", "gpu_layers"),
        ("n_threads", "threads"),
        ("repack", "repack"),
        ("n_parallel", "parallel"),
    )
    changes = {
        field: getattr(args, flag) for field, flag in flags if getattr(args, flag, None) is not None
    }
    if args_threads := getattr(args, "threads", None):
        changes["n_threads_batch"] = args_threads  # --threads N: prefill and decode alike
    return (base or RuntimeSettings()).with_changes(**changes).validate()


def resolve_model(args: argparse.Namespace) -> Path:
    """--model, else the bundled model; validated here so errors come before any loading."""
    return resolve_model_path(getattr(args, "model", None))


@dataclass
class LoadedSession:
    session: ChatSession
    events: queue.Queue[ev.EngineEvent]
    loaded: ev.ModelLoaded
    event_timeout_s: float = EVENT_TIMEOUT_S

    def next_event(self) -> ev.EngineEvent:
        """The engine's next event; EngineTimeoutError when it sends none for a long time."""
        try:
            return self.events.get(timeout=self.event_timeout_s)
        except queue.Empty:
            raise EngineTimeoutError(
                f"the engine sent nothing for {self.event_timeout_s:g} s and looks stuck; "
                "try again, or a smaller model or --max-tokens"
            ) from None

    def close(self) -> None:
        self.session.engine.close()
        self.session.store.close()


def open_session(
    args: argparse.Namespace, store: Store, *, stream_tokens: bool = True
) -> LoadedSession:
    """Start the engine, load the model and wait, showing progress on a terminal.

    stream_tokens=False keeps Token events out of the queue: a caller that only
    wants the finished turn (bench) then is not woken once per token, which on
    a 2-core machine costs the decode threads a few percent.
    """
    model = resolve_model(args)
    settings = runtime_from_args(args)
    events: queue.Queue[ev.EngineEvent] = queue.Queue()

    def deliver(event: ev.EngineEvent) -> None:
        if stream_tokens or not isinstance(event, ev.Token):
            events.put(event)

    engine = EngineSwitch()  # LocalEngine, or BatchedEngine with --parallel N > 1
    session = ChatSession(engine, store, deliver)
    engine.load(model, settings)
    started = time.monotonic()
    fraction = 0.0
    show = sys.stderr.isatty()
    try:
        while True:
            try:
                event = events.get(timeout=EVENT_POLL_S)
            except queue.Empty:
                elapsed = time.monotonic() - started
                if elapsed > LOAD_TIMEOUT_S:
                    raise GlassboxError(
                        f"loading {model.name} took over {LOAD_TIMEOUT_S:.0f} s"
                    ) from None
                if show:
                    print(
                        f"\rloading {model.name} ... {fraction:4.0%} {elapsed:5.1f} s",
                        end="",
                        file=sys.stderr,
                    )
                continue
            if isinstance(event, ev.ModelLoadProgress):
                fraction = event.fraction
                continue
            if isinstance(event, ev.ModelLoaded):
                break
            if isinstance(event, ev.EngineError | ev.EngineCrashed):
                raise GlassboxError(event.message)
    except BaseException:
        engine.close()
        raise
    finally:
        if show:
            print("\r\033[K", end="", file=sys.stderr)
    return LoadedSession(session, events, event)


def describe_loaded(loaded: ev.ModelLoaded) -> str:
    """What was loaded and how, the memory estimate next to llama.cpp's figures, and
    what happened to weight repacking when there is something to say."""
    lines = [_describe_model(loaded), format_memory_rows(estimate_vs_loaded(loaded))]
    if loaded.repack_note:
        lines.append(loaded.repack_note)
    if loaded.chat_template_note:
        lines.append(loaded.chat_template_note)
    if loaded.context_note:
        lines.append(f"warning: {loaded.context_note}")
    return "\n".join(lines)


def _describe_model(loaded: ev.ModelLoaded) -> str:
    offload = (
        f"GPU {loaded.n_layers_offloaded}/{loaded.n_layers} layers"
        if loaded.n_layers_offloaded
        else "CPU"
    )
    template = "own chat template" if loaded.has_chat_template else "plain prompt (no template)"
    parallel = int(loaded.settings.get("n_parallel") or 1)
    sequences = f" | {parallel} parallel sequences (batched decode)" if parallel > 1 else ""
    return (
        f"{loaded.model_name} | {offload}{sequences} | n_ctx {loaded.n_ctx} | "
        f"{_describe_threads(loaded)} | KV {loaded.kv_bytes_total / 2**20:.1f} MiB | "
        f"{template} | loaded in {loaded.load_ms:.0f} ms"
    )


def _describe_threads(loaded: ev.ModelLoaded) -> str:
    """ "2 threads (tuned)", or "1 decode / 2 prefill threads (explicit)"."""
    batch = loaded.settings.get("n_threads_batch") or loaded.n_threads
    counts = (
        f"{loaded.n_threads} threads"
        if batch == loaded.n_threads
        else f"{loaded.n_threads} decode / {batch} prefill threads"
    )
    return f"{counts} ({loaded.threads_source})" if loaded.threads_source else counts
