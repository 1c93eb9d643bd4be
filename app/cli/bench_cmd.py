"""`glassbox bench`: prompts as consecutive turns of one conversation, a table and a JSON file."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from app import bandwidth
from app.cli.bench_compare import add_compare_flag, run_compare
from app.cli.common import (
    add_common_flags,
    add_sampling_flags,
    sampling_from_args,
)
from app.cli.remote_session import add_endpoint_flags, describe_loaded, open_session
from app.diagnosis import diagnose_trace
from app.engine import events as ev
from app.errors import GlassboxError
from app.logprobs import TokenScorer
from app.metrics import TurnMetrics
from app.metrics_table import MetricsTable
from app.prompts_file import read_prompts
from app.storage.store import Store
from app.turn_trace import TraceRecorder


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "bench", help="run prompts as turns of one conversation, report metrics"
    )
    add_common_flags(parser)
    add_endpoint_flags(parser)
    add_sampling_flags(parser, max_tokens=128, seed=0, temperature=0.7)
    parser.add_argument(
        "--prompts", required=True, metavar="FILE", help="one prompt a line (# comments)"
    )
    parser.add_argument(
        "--json",
        metavar="OUT",
        help="write model, settings and turns to this file (default: the table only)",
    )
    parser.add_argument("--system", default="", help="system prompt (default: none)")
    parser.add_argument(
        "--top-logprobs",
        type=int,
        default=0,
        metavar="K",
        help="add each reply's tokens to the JSON with the model's K most likely "
        "alternatives (K up to 10), computed after the turns (app.logprobs)",
    )
    add_compare_flag(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.compare:
        return run_compare(args)  # an A/B run (app.experiments)
    prompts = read_prompts(args.prompts)
    sampling = sampling_from_args(args)
    # Bench turns are measurements, not conversations: keep them out of the history.
    with tempfile.TemporaryDirectory(prefix="glassbox-bench-") as scratch:
        store = Store.open(Path(scratch) / "bench.sqlite3")
        loaded = open_session(args, store, stream_tokens=args.top_logprobs > 0)
        prompts_sent: list[list[dict[str, str]]] = []  # each turn's history, for --top-logprobs
        try:
            print(describe_loaded(loaded.loaded), file=sys.stderr)
            conversation_id = store.create_conversation("bench", args.system).id
            table = MetricsTable(print)  # the table chat and the demo print too
            table.begin()
            turns: list[TurnMetrics] = []
            diagnoses: list[dict[str, Any]] = []  # why each turn was slow (app.diagnosis)
            recorder = TraceRecorder(lambda: [getattr(loaded.session.engine, "worker_pid", None)])
            bytes_per_s = bandwidth.measure().bytes_per_s
            for index, prompt in enumerate(prompts, start=1):
                metrics = _run_turn(loaded, conversation_id, prompt, sampling, recorder)
                turns.append(metrics)
                table.add(metrics, index)
                diagnosis = diagnose_trace(
                    recorder.finished[-1], loaded.loaded, recorder, bytes_per_s
                )
                print(f"turn {index} {diagnosis.line()}", file=sys.stderr)
                diagnoses.append(diagnosis.to_dict())
                if args.top_logprobs > 0:
                    history = loaded.session.history(conversation_id)
                    prompts_sent.append(history[:-1] if history else history)  # less the reply
        finally:
            loaded.close()
    turn_dicts: list[dict[str, Any]] = [m.to_dict() for m in turns]
    if args.top_logprobs > 0:
        _add_token_probabilities(args, loaded.loaded, recorder, prompts_sent, turn_dicts)
    if args.json:
        report: dict[str, Any] = {
            "model": {
                k: v
                for k, v in asdict(loaded.loaded).items()
                if k not in ("request_id", "settings")
            },
            "settings": {"runtime": loaded.loaded.settings, "sampling": sampling.to_dict()},
            "turns": turn_dicts,
            "diagnosis": diagnoses,  # one per turn, in order
        }
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}", file=sys.stderr)
    return 1 if any(m.stop_reason == "error" for m in turns) else 0


def _add_token_probabilities(
    args: argparse.Namespace,
    model: ev.ModelLoaded,
    recorder: TraceRecorder,
    prompts_sent: list[list[dict[str, str]]],
    turn_dicts: list[dict[str, Any]],
) -> None:
    """Each turn's "tokens": the model's probabilities for its reply (app.logprobs).

    Computed after every turn has run, in a process of its own, so the decode
    loop measured above is the same with --top-logprobs as without.
    """
    if model.backend == "remote":
        raise GlassboxError("--top-logprobs needs a local model (the probabilities are ours)")
    started = time.monotonic()
    n_tokens = 0
    with TokenScorer(model.model_path, n_ctx=model.n_ctx) as scorer:
        for turn, trace, messages in zip(turn_dicts, recorder.finished, prompts_sent, strict=True):
            turn["tokens"] = scorer.score(
                messages, trace.token_ids, args.top_logprobs, trace.dropped_messages
            )
            n_tokens += len(trace.token_ids)
    print(
        f"token probabilities: {n_tokens} tokens scored in {time.monotonic() - started:.1f} s "
        "after the turns, in a separate process; the decode figures above are unaffected",
        file=sys.stderr,
    )


def _run_turn(
    loaded: Any, conversation_id: int, prompt: str, sampling: Any, recorder: TraceRecorder
) -> TurnMetrics:
    request_id = loaded.session.send(conversation_id, prompt, sampling)
    while True:
        event = loaded.next_event()
        if event.request_id != request_id:
            continue
        recorder.on_event(event)
        if isinstance(event, ev.EngineError | ev.EngineCrashed):
            print(f"glassbox: {event.message}", file=sys.stderr)
        elif isinstance(event, ev.TurnFinished):
            metrics: TurnMetrics = event.metrics
            return metrics
