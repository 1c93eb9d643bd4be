"""CacheText: a new prompt reuses the token ids the KV cache holds for its start."""

from __future__ import annotations

from app.engine.cache_text import CacheText

PIECES = {1: b"<s>", 10: b"Hi", 11: b" the", 12: b"re", 13: b" there", 14: b"!"}


def _tokenize(text: bytes, add_bos: bool) -> list[int]:
    """A stand-in tokenizer that always cuts greedily (" there" in one piece)."""
    by_piece = {piece: token for token, piece in PIECES.items() if token != 1}
    out, i = ([1] if add_bos else []), 0
    while i < len(text):
        for size in range(len(text) - i, 0, -1):
            if text[i : i + size] in by_piece:
                out.append(by_piece[text[i : i + size]])
                i += size
                break
        else:
            out.append(ord(text[i : i + 1]))
            i += 1
    return out


def test_nothing_remembered_tokenizes_everything():
    assert CacheText().tokenize(b"Hi there", True, _tokenize) == [1, 10, 13]


def test_a_sampled_reply_keeps_its_own_token_ids():
    cache = CacheText()
    # The model wrote " the" "re" where the tokenizer would write " there".
    cache.record(b"Q:", [1, ord("Q"), ord(":")], [11, 12], PIECES.__getitem__)
    tokens = cache.tokenize(b"Q: there!", True, _tokenize)
    assert tokens == [1, ord("Q"), ord(":"), 11, 12, 14]
    assert _tokenize(b"Q: there!", True) == [1, ord("Q"), ord(":"), 13, 14]


def test_a_prompt_that_leaves_the_cached_text_part_way_reuses_up_to_the_last_whole_token():
    cache = CacheText()
    cache.record(b"Q:", [1, ord("Q"), ord(":")], [11, 12], PIECES.__getitem__)
    # " th" is the start of " the" but not all of it: only the prompt's ids are reused.
    assert cache.tokenize(b"Q: th!", True, _tokenize) == [1, ord("Q"), ord(":"), 32, 116, 104, 14]


def test_a_different_start_is_tokenized_afresh_and_forget_clears():
    cache = CacheText()
    cache.record(b"Q:", [1, ord("Q"), ord(":")], [11, 12], PIECES.__getitem__)
    assert cache.tokenize(b"Hi there", True, _tokenize) == [1, 10, 13]
    cache.forget()
    assert cache.tokens == []
    assert cache.tokenize(b"Q: there", True, _tokenize) == _tokenize(b"Q: there", True)
