"""Token probabilities read in the decode loop, for requests that ask (top_logprobs > 0).

TokenLogprobs is the SamplerChain's logits hook: before each draw it reads the
position's logits straight from llama.cpp's buffer (a numpy view over the
ctypes pointer, no copy) and keeps what the chosen token will need: the
log-normaliser and the k most likely ids. After the draw, entry(token) gives
the chosen token's log-probability and the alternatives.

Which distribution: the model's raw one, log-softmax of the logits over the
whole vocabulary, before the repeat penalty, top-k, top-p, min-p and
temperature reshape it. That is what llama.cpp's server (n_probs, its default)
and OpenAI's API report as logprobs. So at temperature 0 without a repeat
penalty the chosen token is always the first alternative; with one, the
penalty can make greedy pick another, and with temperature the draw can.

Cost, only on requests that ask: one pass over the vocabulary for the
normaliser (max, exp, sum) and a threshold scan for the top k. For SmolLM2's
49,152 entries that is 60-80 us in a tight loop, but about 300 us a token in
the decode loop, where each llama_decode has just streamed the weights through
the caches and left numpy's code and data cold (measured: every numpy call
there is 3-10 times slower, with one decode thread as with two); on the bundled
model, which decodes a token in about 9 ms, that is 4-5% of the decode rate
(benchmarks/bench_logprobs.py), less on larger models. Requests that do not
ask install no hook. np.argpartition over the whole vocabulary would cost
0.4 ms even warm, so the top k is taken from the few tokens near the maximum
instead (see _top_ids).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from app.engine.events import MAX_TOP_LOGPROBS

# One alternative as every consumer sees it: {"id": int, "text": str, "logprob": float}.
Alternative = dict[str, Any]


def clamp_top(k: int) -> int:
    return max(0, min(MAX_TOP_LOGPROBS, int(k)))


def _top_ids(shifted: np.ndarray, k: int) -> np.ndarray:
    """The k largest entries' ids, most likely first (ties: lower id first, as greedy).

    shifted: the logits minus their maximum (all <= 0). Every one of the top k is
    at least the k-th largest, so once `gap` admits k entries they hold the top k;
    the gap starts small (most positions have a few tokens near the top) and grows.
    """
    gap = -0.5
    while True:
        ids = np.flatnonzero(shifted >= gap)
        if len(ids) >= k or len(ids) == len(shifted):
            break
        gap *= 4.0
    if len(ids) > k:
        values = shifted[ids]
        kth = np.partition(values, len(values) - k)[len(values) - k]
        ids = ids[values >= kth]  # ties with the k-th stay, so the lower id can win
    order = np.lexsort((ids, -shifted[ids]))
    return ids[order][:k]


class TokenLogprobs:
    """The logits hook of one turn (see the module docstring); entry() after each draw."""

    def __init__(self, k: int, text_of: Callable[[int], str]) -> None:
        self.k = clamp_top(k)
        self._text_of = text_of
        self._values: np.ndarray | None = None  # the last position's logits (a view)
        self._log_norm = 0.0
        self._top: list[Alternative] = []
        self._top_logprob: dict[int, float] = {}

    def __call__(self, logits: Any, n_vocab: int) -> None:
        values = np.ctypeslib.as_array(logits, shape=(n_vocab,))
        peak = values.max()
        shifted = values - peak
        # float32 sum: numpy sums pairwise, so the error stays near 1e-7 (twice as fast).
        log_sum = float(np.log(np.exp(shifted).sum()))
        self._values, self._log_norm = values, float(peak) + log_sum
        ids = _top_ids(shifted, self.k) if self.k else ()
        text_of = self._text_of
        self._top = [
            {"id": int(i), "text": text_of(int(i)), "logprob": float(shifted[i]) - log_sum}
            for i in ids
        ]
        self._top_logprob = {a["id"]: a["logprob"] for a in self._top}

    def entry(self, token: int) -> tuple[float, list[Alternative]]:
        """The drawn token's log-probability and the alternatives at its position.

        Called before the next llama_decode overwrites the logits buffer.
        """
        logprob = self._top_logprob.get(token)
        if logprob is None:
            assert self._values is not None, "entry() before the hook ran"
            logprob = float(self._values[token]) - self._log_norm
        return logprob, self._top
