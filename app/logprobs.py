"""Token probabilities for a finished reply, after the fact, and branching from any of its tokens.

New replies get their probabilities from the decode loop itself when asked
(top_logprobs on the request, app.engine.token_logprobs); this module is for
the rest: a reply sent without them (the token view turned on afterwards, an
old conversation) and branching, which regenerates from a token. A child
process with the same model file evaluates the prompt and the reply's tokens
in one pass and reads the model's distribution at each position
(app.engine.logprob_worker), the same raw distribution the decode loop
reports. The batch kernels can differ from the one-token decode kernels in the
last bits, so near-ties may order differently than they did while decoding.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
from collections.abc import Sequence
from typing import Any

from app.engine.events import MAX_TOP_LOGPROBS
from app.engine.prompting import Message
from app.prompt_tokens import kept_messages

MAX_TOP = MAX_TOP_LOGPROBS
CHILD_TIMEOUT_S = 600.0


class TokenScorer:
    """A child process holding the model, for scoring and branching replies."""

    def __init__(self, model_path: str, n_ctx: int = 2048, n_threads: int | None = None) -> None:
        from app.engine import logprob_worker  # noqa: PLC0415 - the child's entry points

        self._worker = logprob_worker
        self._pool = concurrent.futures.ProcessPoolExecutor(
            1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=logprob_worker.init,
            initargs=(model_path, n_ctx, n_threads),
        )

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> TokenScorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def score(
        self,
        messages: Sequence[Message],
        reply_ids: Sequence[int],
        k: int,
        dropped_messages: int = 0,
    ) -> list[dict[str, Any]]:
        """Per reply token: {id, text, logprob, top: [{id, text, logprob}, ...]}, top k first."""
        k = max(0, min(MAX_TOP, k))
        kept = [dict(m) for m in kept_messages(messages, dropped_messages)]
        future = self._pool.submit(self._worker.score, kept, list(reply_ids), k)
        return list(future.result(timeout=CHILD_TIMEOUT_S))

    def score_text(
        self, messages: Sequence[Message], reply_text: str, k: int, dropped_messages: int = 0
    ) -> list[dict[str, Any]]:
        """score() for a stored reply, known by its text (the GUI keeps no token ids): its
        tokens as the tokenizer splits that text, usually the ids that were sampled."""
        k = max(0, min(MAX_TOP, k))
        kept = [dict(m) for m in kept_messages(messages, dropped_messages)]
        future = self._pool.submit(self._worker.score_text, kept, reply_text, k)
        return list(future.result(timeout=CHILD_TIMEOUT_S))

    def branch(
        self,
        messages: Sequence[Message],
        reply_ids: Sequence[int],
        at: int,
        forced: int,
        max_tokens: int = 128,
        dropped_messages: int = 0,
    ) -> dict[str, Any]:
        """The reply regenerated from token `at` with `forced` there: {ids, text, forced_at}."""
        kept = [dict(m) for m in kept_messages(messages, dropped_messages)]
        future = self._pool.submit(
            self._worker.branch, kept, list(reply_ids), at, forced, max_tokens
        )
        return dict(future.result(timeout=CHILD_TIMEOUT_S))
