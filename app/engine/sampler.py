"""llama.cpp's own sampler chain for one turn, built from SamplingSettings.

Sampling runs inside llama.cpp (llama_sampler_sample on the context): the
logits never cross into Python. The llama_cpp module is passed in, never
imported, so only the worker process loads llama.cpp.

The chain is the one llama-cpp-python's Llama.generate builds (penalties over
the last 64 sampled tokens, top-k, top-p, min-p, temperature, then a seeded
draw; penalties and greedy at temperature 0), so a seed gives the same reply
through either path. typical-p is left out: Llama.generate's default of 1.0
makes it a no-op.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.settings import SamplingSettings

# Llama.generate's window for the repeat penalty (Llama(last_n_tokens_size=64)).
PENALTY_LAST_N = 64

# Called with the logits of the last evaluated token (a ctypes float pointer of
# n_vocab entries) before each draw, only when installed: the way to show token
# probabilities without paying for them on every turn (app.engine.token_logprobs
# is the one the decode loop installs, for requests that ask).
LogitsHook = Callable[[Any, int], None]


class SamplerChain:
    """One llama_sampler chain; free it with close() (or use it as a context manager)."""

    def __init__(
        self,
        llama_cpp: Any,
        n_vocab: int,
        sampling: SamplingSettings,
        seed: int,
        logits_hook: LogitsHook | None = None,
    ) -> None:
        lc = self._lc = llama_cpp
        self.n_vocab = n_vocab
        self.logits_hook = logits_hook
        params = lc.llama_sampler_chain_default_params()
        params.no_perf = True
        self._chain = lc.llama_sampler_chain_init(params)
        self.names: list[str] = []  # the stages, in order (for tests and the log)

        def add(name: str, stage: Any) -> None:
            lc.llama_sampler_chain_add(self._chain, stage)  # the chain owns it from here
            self.names.append(name)

        # Like Llama.generate, penalties always come first, even at 1.0 (a no-op there).
        add(
            "penalties",
            lc.llama_sampler_init_penalties(
                n_vocab, PENALTY_LAST_N, sampling.repeat_penalty, 0.0, 0.0
            ),
        )
        if sampling.temperature == 0:
            add("greedy", lc.llama_sampler_init_greedy())
        else:
            add("top_k", lc.llama_sampler_init_top_k(sampling.top_k))
            add("top_p", lc.llama_sampler_init_top_p(sampling.top_p, 1))
            add("min_p", lc.llama_sampler_init_min_p(sampling.min_p, 1))
            add("temp", lc.llama_sampler_init_temp(sampling.temperature))
            add("dist", lc.llama_sampler_init_dist(seed & 0xFFFFFFFF))
        self._sample = lc.llama_sampler_sample

    def sample(self, ctx: Any) -> int:
        """Draw the next token from the last evaluated position (and accept it)."""
        if self.logits_hook is not None:
            self.logits_hook(self._lc.llama_get_logits_ith(ctx, -1), self.n_vocab)
        return int(self._sample(self._chain, ctx, -1))

    def close(self) -> None:
        if self._chain is not None:
            self._lc.llama_sampler_free(self._chain)
            self._chain = None

    def __enter__(self) -> SamplerChain:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
