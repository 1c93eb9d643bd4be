"""`glassbox replay CONVERSATION TURN`: run a stored turn again and say if it came out the same."""

from __future__ import annotations

import argparse
import sys

from app.export.document import resolve_conversation
from app.metrics_columns import format_metrics_line
from app.replay import plan_replay, run_replay
from app.storage.store import Store

EXIT_DIFFERENT = 3  # ran fine, but the reply came out different


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "replay",
        help="run a stored turn again with its recorded model, settings, seed and prompt",
        description="Exit status: 0 when the reply is reproduced token for token, "
        f"{EXIT_DIFFERENT} when it differs, 1 on an error.",
    )
    parser.add_argument(
        "conversation", metavar="CONVERSATION", help="a conversation id or 'latest'"
    )
    parser.add_argument("turn", metavar="TURN", help="assistant turn number (from 1) or 'last'")
    parser.add_argument(
        "--model", metavar="PATH", help="use this GGUF instead of the recorded model file"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    with Store.open() as store:
        conversation = resolve_conversation(store, args.conversation)
        plan = plan_replay(store, conversation.id, args.turn, args.model)
    sampling = plan.sampling
    print(
        f"replaying turn {plan.turn} of conversation {conversation.id} on "
        f"{plan.model_path.name} (temperature {sampling.temperature:g}, seed {sampling.seed})",
        file=sys.stderr,
    )
    if plan.lead_in:
        print(
            f"turns {plan.turn - len(plan.lead_in)}-{plan.turn - 1} run first: the original turn "
            "found their tokens in the KV cache",
            file=sys.stderr,
        )
    result = run_replay(plan)
    print(result.text)
    print(format_metrics_line(result.metrics), file=sys.stderr)
    print(result.summary(), file=sys.stderr)
    return 0 if result.reproduced else EXIT_DIFFERENT
