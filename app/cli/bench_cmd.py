"""`glassbox bench`: prompts as consecutive turns of one conversation, a table and a JSON file."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
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
        "alternatives (K up to 10), computed in the decode loop as each token is drawn "
        "(the model's distribution after the repeat penalty, before top-k, top-p, min-p and "
        "temperature)",
    )
    add_compare_flag(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.compare:
        return run_compare(args)  # an A/B run (app.experiments)
    if not 0 <= args.top_logprobs <= ev.MAX_TOP_LOGPROBS:
        raise GlassboxError(
            f"--top-logprobs must be 0 to {ev.MAX_TOP_LOGPROBS}, got {args.top_logprobs}"
        )
    prompts = read_prompts(args.prompts)
    sampling = sampling_from_args(args)
    # Bench turns are measurements, not conversations: keep them out of the history.
    with tempfile.TemporaryDirectory(prefix="glassbox-bench-") as scratch:
        store = Store.open(Path(scratch) / "bench.sqlite3")
        # Token events are not needed: a turn's tokens (and probabilities) come on TurnFinished.
        loaded = open_session(args, store, stream_tokens=False)
        token_lists: list[list[dict[str, Any]] | None] = []  # per turn, with --top-logprobs
        try:
            print(describe_loaded(loaded.loaded), file=sys.stderr)
            if args.top_logprobs > 0:
                _ask_for_token_probabilities(loaded, args.top_logprobs)
            conversation_id = store.create_conversation("bench", args.system).id
            table = MetricsTable(print)  # the table chat and the demo print too
            table.begin()
            turns: list[TurnMetrics] = []
            diagnoses: list[dict[str, Any]] = []  # why each turn was slow (app.diagnosis)
            recorder = TraceRecorder(lambda: [getattr(loaded.session.engine, "worker_pid", None)])
            bytes_per_s = bandwidth.measure().bytes_per_s
            for index, prompt in enumerate(prompts, start=1):
                finished = _run_turn(loaded, conversation_id, prompt, sampling, recorder)
                metrics = finished.metrics
                turns.append(metrics)
                token_lists.append(finished.tokens)
                table.add(metrics, index)
                diagnosis = diagnose_trace(
                    recorder.finished[-1], loaded.loaded, recorder, bytes_per_s
                )
                print(f"turn {index} {diagnosis.line()}", file=sys.stderr)
                diagnoses.append(diagnosis.to_dict())
        finally:
            loaded.close()
    turn_dicts: list[dict[str, Any]] = [m.to_dict() for m in turns]
    if args.top_logprobs > 0:
        _add_token_probabilities(sampling, token_lists, turn_dicts)
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
        if args.top_logprobs > 0:
            report["token_probabilities"] = {"top": args.top_logprobs, "distribution": DISTRIBUTION}
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}", file=sys.stderr)
    return 1 if any(m.stop_reason == "error" for m in turns) else 0


def _ask_for_token_probabilities(loaded: Any, k: int) -> None:
    """New turns compute each token's probabilities in the engine's decode loop."""
    engine = loaded.session.engine
    if loaded.loaded.backend == "remote" or not getattr(type(engine), "takes_top_logprobs", False):
        raise GlassboxError("--top-logprobs needs a local model (the probabilities are ours)")
    loaded.session.top_logprobs = k


# What the "logprob" figures are, said in the JSON next to them.
DISTRIBUTION = (
    "after the repeat penalty: log-softmax over the whole vocabulary of the model's logits "
    "with the sampler's repeat penalty applied (the model's raw distribution when it is 1.0), "
    "read in the decode loop before top-k, top-p, min-p and temperature reshape it; greedy "
    "decoding takes its most probable token"
)


def _add_token_probabilities(
    sampling: Any,
    token_lists: list[list[dict[str, Any]] | None],
    turn_dicts: list[dict[str, Any]],
) -> None:
    """Each turn's "tokens": {id, text, logprob, top} per token, as the decode loop read
    them (app.engine.token_logprobs): the distribution after the repeat penalty, before the
    other sampler settings, so at temperature 0 the chosen token is the most probable one
    every time; the line on stderr counts it."""
    n_tokens = n_first = 0
    for turn, tokens in zip(turn_dicts, token_lists, strict=True):
        if tokens is None:
            if turn.get("stop_reason") == "error":
                tokens = []
            else:
                raise GlassboxError("the engine did not compute token probabilities for a turn")
        turn["tokens"] = tokens
        n_tokens += len(tokens)
        n_first += sum(1 for t in tokens if t["top"] and t["top"][0]["id"] == t["id"])
    line = f"token probabilities: {n_tokens} tokens, computed in the decode loop"
    if sampling.temperature == 0:
        line += f"; the chosen token was the most probable at {n_first} of {n_tokens}"
    print(line, file=sys.stderr)


def _run_turn(
    loaded: Any, conversation_id: int, prompt: str, sampling: Any, recorder: TraceRecorder
) -> ev.TurnFinished:
    request_id = loaded.session.send(conversation_id, prompt, sampling)
    while True:
        event = loaded.next_event()
        if event.request_id != request_id:
            continue
        recorder.on_event(event)
        if isinstance(event, ev.EngineError | ev.EngineCrashed):
            print(f"glassbox: {event.message}", file=sys.stderr)
        elif isinstance(event, ev.TurnFinished):
            return event
