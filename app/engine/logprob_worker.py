"""Child-process side of app.logprobs: the model's own probabilities for a reply's tokens.

Loads the model once (app.logprobs starts this in its own process), evaluates
prompt + reply in one pass with logits for every position, and reads, for each
reply token, the log-probability the model gave it and the top-k alternatives:
log-softmax of the raw logits, before any sampler setting. It also regenerates
a reply from a point with a chosen token forced there (branching), greedily.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from app.engine.prompt_tokenizer import quiet_llama, tokenize_with
from app.engine.prompting import Message

_llm: Any = None


def init(model_path: str, n_ctx: int, n_threads: int | None) -> None:
    global _llm
    _llm = quiet_llama(model_path, n_ctx=n_ctx, logits_all=True, n_threads=n_threads)


def _text(token: int) -> str:
    return bytes(_llm.detokenize([token], special=True)).decode("utf-8", errors="replace")


def _eval(tokens: list[int]) -> np.ndarray:
    """Logits (n_tokens x n_vocab) of every position after evaluating tokens afresh."""
    _llm.reset()
    _llm.eval(tokens)
    return np.asarray(_llm.scores[: len(tokens)], dtype=np.float64)


def prompt_ids(messages: list[Message]) -> list[int]:
    return [t.id for t in tokenize_with(_llm, messages).tokens]


def score(messages: list[Message], reply: list[int], k: int) -> list[dict[str, Any]]:
    """One entry per reply token: {id, text, logprob, top: [{id, text, logprob}, ...]}."""
    prompt = prompt_ids(messages)
    if not reply:
        return []
    logits = _eval(prompt + reply)
    out = []
    for i, token in enumerate(reply):
        row = logits[len(prompt) - 1 + i]
        shifted = row - row.max()
        logprobs = shifted - np.log(np.exp(shifted).sum())
        top: list[int] = []
        if k > 0:
            top = [int(t) for t in np.argpartition(-logprobs, min(k, len(logprobs) - 1))[:k]]
        ranked = sorted(top, key=lambda t: -logprobs[t])
        out.append(
            {
                "id": int(token),
                "text": _text(int(token)),
                "logprob": float(logprobs[token]),
                "top": [{"id": t, "text": _text(t), "logprob": float(logprobs[t])} for t in ranked],
            }
        )
    return out


def score_text(messages: list[Message], reply_text: str, k: int) -> list[dict[str, Any]]:
    """score() for a reply known by its text: its tokens as the tokenizer splits it."""
    ids = _llm.tokenize(reply_text.encode("utf-8"), add_bos=False, special=False)
    return score(messages, [int(t) for t in ids], k)


def branch(
    messages: list[Message], reply: list[int], at: int, forced: int, max_tokens: int
) -> dict[str, Any]:
    """The reply's first `at` tokens, then `forced`, then greedy decoding to the end."""
    from app.engine.worker import llama_cpp_module  # noqa: PLC0415 - a worker-side import

    llama_cpp = llama_cpp_module()

    vocab = _llm._model.vocab
    tokens = prompt_ids(messages) + reply[:at] + [forced]
    generated = [forced]
    _llm.reset()
    _llm.eval(tokens)
    while len(generated) < max_tokens:
        nxt = int(np.argmax(_llm.scores[_llm.n_tokens - 1]))
        if llama_cpp.llama_vocab_is_eog(vocab, nxt) or _llm.n_tokens >= _llm.n_ctx():
            break
        generated.append(nxt)
        _llm.eval([nxt])
    ids = reply[:at] + generated
    text = bytes(_llm.detokenize(ids, special=False)).decode("utf-8", errors="replace")
    return {"ids": ids, "text": text, "forced_at": at}
