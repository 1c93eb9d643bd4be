"""The decode loop's llama.cpp calls, made directly: llama_decode on one reused batch.

Llama.generate adds Python work around every token (its batch is refilled
through a generic path, its token history kept in numpy, its sampler looked up
through wrappers). Here a turn is: drop the KV cells past the reused prefix,
evaluate the new prompt tokens in n_batch chunks, then one llama_decode per
token on the same llama_batch, whose fields are written in place.

Prefill can be stopped part-way: while it runs, llama.cpp's abort callback
asks the cancel flag between graph nodes (many times a second), and a stopped
prefill keeps the chunks it finished. The callback is removed before the first
decode step, so the per-token loop pays nothing for it.

The KV prefix bookkeeping stays on the Llama object (n_tokens, input_ids,
_requires_eval), so Loaded.cached_prefix, the thread measurement and any use
of Llama.generate see the same cache state as this loop leaves behind.

The llama_cpp module is passed in, never imported: only the worker process
loads llama.cpp.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Sequence
from typing import Any

PIECE_BUFFER_BYTES = 128

# llama_decode's return value when the abort callback stopped it.
DECODE_ABORTED = 2


class DecodeError(RuntimeError):
    pass


class PrefillCancelled(Exception):  # noqa: N818 - a stop, not an error
    """Cancel stopped the prefill; the cache keeps the chunks evaluated before it."""


class NativeDecoder:
    """Direct llama_decode / token-to-piece calls on a loaded Llama's context."""

    def __init__(self, llama_cpp: Any, llm: Any) -> None:
        self._lc = lc = llama_cpp
        self._llm = llm
        self.ctx = llm.ctx
        self.vocab = llm._model.vocab
        self.n_batch = int(llm.n_batch)
        self._memory = lc.llama_get_memory(self.ctx)
        # Llama's own batch (n_batch tokens, one sequence), reused: allocated once per load.
        self._batch = batch = llm._batch.batch
        self._token, self._pos, self._logits = batch.token, batch.pos, batch.logits
        self._n_seq_id, self._seq_id = batch.n_seq_id, batch.seq_id
        self._decode = lc.llama_decode
        self._bos = int(llm._model.token_bos())
        self._piece_buffer = ctypes.create_string_buffer(PIECE_BUFFER_BYTES)
        self._pieces: dict[int, bytes] = {}  # token id -> its bytes; bounded by the vocabulary
        self._texts: dict[int, str] = {}  # token id -> its text, special tokens spelled out
        self._should_stop: Callable[[], bool] = lambda: False
        # One ctypes callback per load, kept alive here while llama.cpp holds its address.
        self._abort_callback = lc.ggml_abort_callback(lambda _data: self._should_stop())
        self._no_abort_callback = lc.ggml_abort_callback()  # NULL: llama.cpp asks nothing

    # -- KV cache and evaluation ---------------------------------------------------------

    def start_turn(
        self, tokens: Sequence[int], cached: int, should_stop: Callable[[], bool] | None = None
    ) -> int:
        """Make the KV cache hold `tokens`, reusing the first `cached` ones.

        `cached` comes from Loaded.cached_prefix: equal to len(tokens) means the
        cache holds exactly this prompt with its logits still live, so nothing
        is evaluated. Returns the number of positions now in the cache.
        should_stop: asked while the prompt is evaluated; when it says True,
        the prefill stops within a graph node or so and PrefillCancelled is raised.
        """
        if cached >= len(tokens):
            return len(tokens)
        if not self._lc.llama_memory_seq_rm(self._memory, -1, cached, -1):
            cached = 0
            self._lc.llama_memory_clear(self._memory, True)
        self._llm.n_tokens = cached  # what the cache holds until the prefill is done
        if should_stop is not None:
            self._should_stop = should_stop
            self._lc.llama_set_abort_callback(self.ctx, self._abort_callback, None)
        try:
            for start in range(cached, len(tokens), self.n_batch):
                if self._eval_chunk(tokens[start : start + self.n_batch], start) == DECODE_ABORTED:
                    self._keep_prompt(tokens, start)
                    raise PrefillCancelled
        except PrefillCancelled:
            raise
        except BaseException:
            self.forget()
            raise
        finally:
            if should_stop is not None:
                self._lc.llama_set_abort_callback(self.ctx, self._no_abort_callback, None)
                self._should_stop = lambda: False
        return len(tokens)

    def _keep_prompt(self, tokens: Sequence[int], end: int) -> None:
        """After a stopped prefill: the cache holds tokens[:end] (the finished
        chunks; llama.cpp may have kept part of the stopped one, which goes)."""
        self._lc.llama_memory_seq_rm(self._memory, -1, end, -1)
        self.finish_turn(tokens[:end])
        self._llm._requires_eval = True  # no logits for the last position kept

    def _eval_chunk(self, chunk: Sequence[int], n_past: int) -> int:
        """Evaluate prompt tokens; 0, or DECODE_ABORTED when the abort callback stopped it."""
        token, pos, logits = self._token, self._pos, self._logits
        n_seq_id, seq_id = self._n_seq_id, self._seq_id
        for i, t in enumerate(chunk):
            token[i] = t
            pos[i] = n_past + i
            n_seq_id[i] = 1
            seq_id[i][0] = 0
            logits[i] = 0
        logits[len(chunk) - 1] = 1
        self._batch.n_tokens = len(chunk)
        rc = self._decode(self.ctx, self._batch)
        if rc not in (0, DECODE_ABORTED):
            raise DecodeError(f"llama_decode returned {rc} on {len(chunk)} prompt tokens")
        return int(rc)

    def eval_token(self, token_id: int, n_past: int) -> None:
        """Evaluate one sampled token at position n_past (the decode step)."""
        self._token[0] = token_id
        self._pos[0] = n_past
        self._n_seq_id[0] = 1
        self._seq_id[0][0] = 0
        self._logits[0] = 1
        self._batch.n_tokens = 1
        rc = self._decode(self.ctx, self._batch)
        if rc != 0:
            self.forget()
            raise DecodeError(f"llama_decode returned {rc} at position {n_past}")

    def finish_turn(self, in_cache: Sequence[int]) -> None:
        """Record what the KV cache now holds (prompt and evaluated reply tokens)
        where Llama keeps it, so the next turn's prefix match sees it."""
        llm = self._llm
        n = len(in_cache)
        llm.input_ids[:n] = in_cache
        llm.n_tokens = n
        llm._requires_eval = False  # the last position's logits are live

    def cached_tokens(self) -> list[int]:
        """The token ids the KV cache holds, in order."""
        llm = self._llm
        return [int(t) for t in llm.input_ids[: llm.n_tokens]]

    def truncate(self, n: int) -> None:
        """Keep only the first n cells (a reply cut before its stop string)."""
        llm = self._llm
        if n >= llm.n_tokens:
            return
        if not self._lc.llama_memory_seq_rm(self._memory, -1, n, -1):
            self.forget()
            return
        llm.n_tokens = n
        llm._requires_eval = True  # the live logits were for a position now gone

    def forget(self) -> None:
        """After a failed evaluation the cache state is unknown: start from empty."""
        self._llm.n_tokens = 0
        self._lc.llama_memory_clear(self._memory, True)

    # -- text -----------------------------------------------------------------------------

    def piece(self, token_id: int) -> bytes:
        """The token's bytes, as Llama.detokenize([token_id]) gives them (cached per id)."""
        cached = self._pieces.get(token_id)
        if cached is not None:
            return cached
        buf = self._piece_buffer
        n = self._lc.llama_token_to_piece(self.vocab, token_id, buf, len(buf), 0, False)
        if n < 0:  # longer than the buffer: -n bytes are needed
            buf = ctypes.create_string_buffer(-n)
            n = self._lc.llama_token_to_piece(self.vocab, token_id, buf, len(buf), 0, False)
        data = buf.raw[:n]
        if token_id == self._bos and data[:1] == b" ":
            data = data[1:]
        self._pieces[token_id] = data
        return data

    def token_text(self, token_id: int) -> str:
        """The token as text for people, special tokens spelled out ("<|im_end|>", where
        piece() gives b""): what token probabilities name the alternatives by."""
        cached = self._texts.get(token_id)
        if cached is not None:
            return cached
        buf = self._piece_buffer
        n = self._lc.llama_token_to_piece(self.vocab, token_id, buf, len(buf), 0, True)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = self._lc.llama_token_to_piece(self.vocab, token_id, buf, len(buf), 0, True)
        text = buf.raw[:n].decode("utf-8", errors="replace")
        self._texts[token_id] = text
        return text
