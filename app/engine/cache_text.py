"""The text the KV cache holds, so the next prompt reuses the very token ids in it.

A sampled reply is rarely tokenized the way the tokenizer would cut its text:
the model may write " Pre" "f" "et" "cher" where tokenizing " Prefetcher"
gives " Pre" "fet" "cher". The next turn's prompt carries that reply as text,
and tokenizing it afresh then gives other ids from the first such word on, so
the KV cache's prefix match stops there and the rest of the reply is evaluated
again (seen: 59 of 108 cells reused).

CacheText remembers, for what the cache holds, the bytes each token stands for:
the whole prompt (its tokens came from tokenizing exactly those bytes) and each
reply token's piece. A new prompt that starts with some of those bytes takes
their token ids as they are and tokenizes only the rest. Both cuts are valid
tokenizations of the same text; this one is what the model has already seen.

Pure Python: the tokenizer and the token pieces are passed in.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence

Tokenize = Callable[[bytes, bool], list[int]]  # (text, add_bos) -> token ids


class CacheText:
    """Token ids with the bytes they stand for, at the cuts where both are known."""

    def __init__(self) -> None:
        self._data = b""
        self._tokens: list[int] = []
        # Ascending cuts: bytes [0, _byte_ends[i]) are exactly tokens [0, _token_ends[i]).
        self._byte_ends: list[int] = []
        self._token_ends: list[int] = []

    @property
    def tokens(self) -> list[int]:
        return self._tokens

    def record(
        self,
        prompt: bytes,
        prompt_tokens: Sequence[int],
        reply_tokens: Sequence[int],
        piece: Callable[[int], bytes],
    ) -> None:
        """What the cache holds after a turn: the prompt, then the reply tokens evaluated."""
        parts, byte_ends, token_ends = [prompt], [len(prompt)], [len(prompt_tokens)]
        size, count = len(prompt), len(prompt_tokens)
        for token in reply_tokens:
            data = piece(token)
            parts.append(data)
            size, count = size + len(data), count + 1
            byte_ends.append(size)
            token_ends.append(count)
        self._data = b"".join(parts)
        self._tokens = [*prompt_tokens, *reply_tokens]
        self._byte_ends, self._token_ends = byte_ends, token_ends

    def forget(self) -> None:
        """The cache was cleared or changed some other way: remember nothing."""
        self._data, self._tokens, self._byte_ends, self._token_ends = b"", [], [], []

    def tokenize(self, data: bytes, add_bos: bool, tokenize: Tokenize) -> list[int]:
        """Token ids for `data`: the remembered ids for its longest remembered start,
        the tokenizer's for the rest (all of it when nothing is remembered)."""
        common = _common_prefix(self._data, data)
        cut = bisect.bisect_right(self._byte_ends, common) - 1
        if cut < 0:
            return tokenize(data, add_bos)
        byte_end, token_end = self._byte_ends[cut], self._token_ends[cut]
        rest = data[byte_end:]
        return self._tokens[:token_end] + (tokenize(rest, False) if rest else [])


def _common_prefix(a: bytes, b: bytes) -> int:
    """Length of the common start of a and b (bisection on slices: C-speed compares)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo
