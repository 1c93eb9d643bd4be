"""Token probabilities read in the decode loop, for requests that ask (top_logprobs > 0).

TokenLogprobs is the SamplerChain's logits hook: before each draw it reads the
position's logits straight from llama.cpp's buffer (a numpy view over the
ctypes pointer, no copy) and keeps what the chosen token will need: the
log-normaliser and the k most likely ids. After the draw, entry(token) gives
the chosen token's log-probability and the alternatives.

Which distribution: log-softmax over the whole vocabulary of the logits as the
sampler chain's first stage leaves them, the repeat penalty applied (over the
turn's last 64 drawn tokens, as app.engine.sampler configures llama.cpp), and
before top-k, top-p, min-p and temperature. Greedy decoding takes the maximum
of exactly these, so at temperature 0 the chosen token heads its list every
time, penalty or not (the issue's promise). With a penalty of 1.0 it is the
model's raw distribution, which llama.cpp's server and OpenAI's API report; a
penalty only lowers the tokens already drawn, and the tooltip names it. With a
temperature the later stages reshape it and the draw may take another token.

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

from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from app.engine.events import MAX_TOP_LOGPROBS
from app.engine.sampler import PENALTY_LAST_N

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

    def __init__(self, k: int, text_of: Callable[[int], str], repeat_penalty: float = 1.0) -> None:
        self.k = clamp_top(k)
        self._text_of = text_of
        self._penalty = float(repeat_penalty)
        # The penalties stage's window: the turn's last PENALTY_LAST_N drawn tokens.
        self._recent: deque[int] = deque(maxlen=PENALTY_LAST_N)
        self._shifted: np.ndarray | None = None  # the last position's logits less their peak
        self._log_sum = 0.0
        self._top: list[Alternative] = []
        self._top_logprob: dict[int, float] = {}

    def __call__(self, logits: Any, n_vocab: int) -> None:
        values = np.ctypeslib.as_array(logits, shape=(n_vocab,))
        if self._penalty != 1.0 and self._recent:
            # llama.cpp's penalties stage, in float32 as it computes it: each token in the
            # window once, a positive logit divided by the penalty, the others multiplied.
            # On a copy: llama.cpp's buffer is what the sampler is about to read.
            values = values.copy()
            ids = np.fromiter(set(self._recent), dtype=np.int64)
            raw = values[ids]
            penalty = np.float32(self._penalty)
            values[ids] = np.where(raw > 0, raw / penalty, raw * penalty)
        shifted = values - values.max()  # a new array either way
        # float32 sum: numpy sums pairwise, so the error stays near 1e-7 (twice as fast).
        log_sum = float(np.log(np.exp(shifted).sum()))
        self._shifted, self._log_sum = shifted, log_sum
        ids_top = _top_ids(shifted, self.k) if self.k else ()
        text_of = self._text_of
        self._top = [
            {"id": int(i), "text": text_of(int(i)), "logprob": float(shifted[i]) - log_sum}
            for i in ids_top
        ]
        self._top_logprob = {a["id"]: a["logprob"] for a in self._top}

    def entry(self, token: int) -> tuple[float, list[Alternative]]:
        """The drawn token's log-probability and the alternatives at its position.

        Called once per draw, after it (the token joins the penalty's window).
        """
        self._recent.append(token)
        logprob = self._top_logprob.get(token)
        if logprob is None:
            assert self._shifted is not None, "entry() before the hook ran"
            logprob = float(self._shifted[token]) - self._log_sum
        return logprob, self._top
