"""Token events batched across the process boundary.

A small model decodes a token every few milliseconds, far faster than a
screen refreshes. Sending each as its own pipe message costs a pickle and a
write in the worker, and a read and a wake-up in the parent, per token. The
worker therefore sends a TokenBatch: every token decoded since the last send,
at most one message per FLUSH_INTERVAL_NS (about 30 Hz), and always the first
token of a turn at once (time to first token is measured on its arrival).
When tokens come slower than that, each goes alone, as before.

The parent (LocalEngine) unpacks a batch into the same Token events, in order,
so listeners never see a batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.engine import events as ev

FLUSH_INTERVAL_NS = 33_000_000  # about one frame at 30 Hz


@dataclass
class TokenBatch(ev.EngineEvent):
    """Consecutive tokens of one turn, as parallel lists (cheaper to pickle than Tokens)."""

    first_index: int = 0
    token_ids: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    t_ns: list[int] = field(default_factory=list)
    # Set only for requests that asked for top_logprobs: per token, Token.logprob / Token.top.
    logprobs: list[float] | None = None
    tops: list[list[dict[str, Any]]] | None = None

    def unpack(self) -> list[ev.Token]:
        rid, first = self.request_id, self.first_index
        tokens = [
            ev.Token(request_id=rid, index=first + i, token_id=token, text=text, t_ns=t)
            for i, (token, text, t) in enumerate(zip(self.token_ids, self.texts, self.t_ns))
        ]
        if self.logprobs is not None and self.tops is not None:
            for token, logprob, top in zip(tokens, self.logprobs, self.tops, strict=True):
                token.logprob, token.top = logprob, top
        return tokens


class TokenBatcher:
    """Collects a turn's tokens in the worker and sends them in batches.

    add() once per token; flush() before the turn's TurnFinished.
    """

    def __init__(
        self,
        send: Callable[[ev.EngineEvent], None],
        request_id: int,
        interval_ns: int = FLUSH_INTERVAL_NS,
    ) -> None:
        self._send, self._request_id, self._interval = send, request_id, interval_ns
        self._next_index = 0
        self._last_sent = -interval_ns  # so the first token goes at once
        self._ids: list[int] = []
        self._texts: list[str] = []
        self._times: list[int] = []
        # Filled by add_scored() only; a turn uses add() or add_scored() throughout.
        self._logprobs: list[float] = []
        self._tops: list[list[dict[str, Any]]] = []

    def add_scored(
        self, token_id: int, text: str, t_ns: int, logprob: float, top: list[dict[str, Any]]
    ) -> None:
        """add() for a request that asked for top_logprobs: the token's figures go with it."""
        self._logprobs.append(logprob)
        self._tops.append(top)
        self.add(token_id, text, t_ns)

    def add(self, token_id: int, text: str, t_ns: int) -> None:
        self._ids.append(token_id)
        self._texts.append(text)
        self._times.append(t_ns)
        if t_ns - self._last_sent >= self._interval:
            self.flush(t_ns)

    def flush(self, now_ns: int | None = None) -> None:
        if not self._ids:
            return
        batch = TokenBatch(
            request_id=self._request_id,
            first_index=self._next_index,
            token_ids=self._ids,
            texts=self._texts,
            t_ns=self._times,
        )
        if self._logprobs:
            batch.logprobs, batch.tops = self._logprobs, self._tops
            self._logprobs, self._tops = [], []
        self._next_index += len(self._ids)
        self._ids, self._texts, self._times = [], [], []
        self._send(batch)
        self._last_sent = now_ns if now_ns is not None else batch.t_ns[-1]


class ScoringBatcher:
    """Stands in for a TokenBatcher on a request that asked for top_logprobs.

    The text stream calls add() right after each draw, as it would on a plain
    batcher; this one asks `score` (TokenLogprobs.entry) for the token's figures,
    keeps the token's record in `tokens` and sends the figures with the token.
    A request that did not ask gets the plain TokenBatcher: no call more per token.
    """

    def __init__(
        self,
        batcher: TokenBatcher,
        score: Callable[[int], tuple[float, list[dict[str, Any]]]],
        text_of: Callable[[int], str],
    ) -> None:
        self._batcher, self._score, self._text_of = batcher, score, text_of
        self.tokens: list[dict[str, Any]] = []  # {id, text, logprob, top}, one per token

    def add(self, token_id: int, text: str, t_ns: int) -> None:
        logprob, top = self._score(token_id)
        self.tokens.append(
            {"id": token_id, "text": self._text_of(token_id), "logprob": logprob, "top": top}
        )
        self._batcher.add_scored(token_id, text, t_ns, logprob, top)

    def flush(self, now_ns: int | None = None) -> None:
        self._batcher.flush(now_ns)
