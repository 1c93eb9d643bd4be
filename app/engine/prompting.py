"""Prompt building that does not need llama.cpp: history trimming, plain format, stop strings.

The worker passes its tokenizer in as a function, so this module stays importable
(and testable) in the parent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from app.errors import ContextOverflowError

Message = dict[str, str]

PLAIN_ROLE_NAMES = {"system": "System", "user": "User", "assistant": "Assistant"}
PLAIN_STOP = ("\nUser:", "\nSystem:")


def plain_prompt(messages: Sequence[Message]) -> str:
    """Fallback for models whose GGUF carries no chat template."""
    parts = [f"{PLAIN_ROLE_NAMES.get(m['role'], m['role'])}: {m['content']}" for m in messages]
    parts.append("Assistant:")
    return "\n\n".join(parts)


def fit_history(
    messages: Sequence[Message],
    count_tokens: Callable[[Sequence[Message]], int],
    n_ctx: int,
    reserve: int,
) -> tuple[list[Message], int, int]:
    """Drop the oldest turns until the prompt plus `reserve` output tokens fit in n_ctx.

    System messages are kept. Returns (kept messages, number dropped, prompt tokens).
    Raises ContextOverflowError when the newest message alone cannot fit. The last
    call to count_tokens is always for the kept messages (the worker keeps the
    tokens of that call).

    The kept history starts at a user message (never an orphaned reply), or is the
    newest message alone. Fewer messages never take more tokens, so the first start
    that fits is found by bisection: a history of thousands of messages costs about
    a dozen tokenizations instead of one per dropped exchange.
    """
    system = [m for m in messages if m["role"] == "system"]
    rest = [m for m in messages if m["role"] != "system"]
    last = max(len(rest) - 1, 0)
    starts = sorted({0, last} | {i for i in range(1, last) if rest[i]["role"] != "assistant"})
    counted: dict[int, int] = {}
    last_counted = -1

    def tokens_from(start: int) -> int:
        nonlocal last_counted
        if start not in counted:
            counted[start] = count_tokens(system + rest[start:])
            last_counted = start
        return counted[start]

    lo, hi = 0, len(starts) - 1
    if tokens_from(starts[0]) + reserve > n_ctx:
        # Invariant: starts[lo] does not fit; find the first start that does.
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if tokens_from(starts[mid]) + reserve <= n_ctx:
                hi = mid
            else:
                lo = mid
        chosen = starts[hi]
        tokens = tokens_from(chosen)
        if tokens + reserve > n_ctx and tokens >= n_ctx:
            raise ContextOverflowError(
                f"the message is {tokens} tokens but the context holds {n_ctx} tokens; "
                "shorten it or load the model with a larger context (--ctx)"
            )
        # Otherwise it fits, perhaps with less room for the reply than asked for.
    else:
        chosen = starts[0]
    if last_counted != chosen:
        counted.pop(chosen)
        tokens_from(chosen)  # the caller keeps the tokens of the last call
    return system + rest[chosen:], chosen, counted[chosen]


def find_stop(text: str, stops: Sequence[str], search_from: int) -> int:
    """Index in text where the earliest stop string begins, or -1.

    Only the tail that could contain a new match (from search_from minus the
    longest stop length) is searched, so the per-token cost stays constant.
    """
    if not stops:
        return -1
    longest = max(len(s) for s in stops)
    start = max(0, search_from - longest + 1)
    hits = [i for i in (text.find(s, start) for s in stops) if i >= 0]
    return min(hits) if hits else -1


def held_stop_prefix(text: str, stops: Sequence[str]) -> int:
    """Length of the longest tail of text that is a proper prefix of a stop string.

    That tail may yet become a stop string, so it is not streamed until the
    next tokens decide.
    """
    longest = 0
    for stop in stops:
        for k in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:k]):
                longest = k
                break
    return longest
