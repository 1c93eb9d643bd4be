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
    Raises ContextOverflowError when the newest message alone cannot fit.
    """
    system = [m for m in messages if m["role"] == "system"]
    rest = [m for m in messages if m["role"] != "system"]
    dropped = 0
    while True:
        kept = system + rest
        tokens = count_tokens(kept)
        if tokens + reserve <= n_ctx:
            return kept, dropped, tokens
        if len(rest) <= 1:
            if tokens < n_ctx:
                # It fits, just with less room for the reply than asked for.
                return kept, dropped, tokens
            raise ContextOverflowError(
                f"the message is {tokens} tokens but the context holds {n_ctx} tokens; "
                "shorten it or load the model with a larger context (--ctx)"
            )
        # Drop the oldest exchange: a user message and the reply that followed it.
        rest.pop(0)
        dropped += 1
        while len(rest) > 1 and rest[0]["role"] == "assistant":
            rest.pop(0)
            dropped += 1


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
