"""The prompt view's tokenizer (app.prompt_tokens): the model's vocabulary only, no weights.

prompt_tokens() runs in the caller's process and starts a child process; the
functions that use llama_cpp run only in that child (never in the GUI or
CLI process), and in app.engine.logprob_worker's.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
from collections.abc import Sequence
from typing import Any

from app.engine.chat_template import TemplateError, checked_template
from app.engine.prompting import Message, plain_prompt
from app.prompt_tokens import (
    TEMPLATE_ROLE,
    PromptToken,
    PromptTokens,
    kept_messages,
    role_of_offsets,
)

CHILD_TIMEOUT_S = 120.0


def _render(template: Any, messages: Sequence[Message], generation: bool) -> str | None:
    if template is None:
        return None
    try:
        return str(template.render(messages, add_generation_prompt=generation))
    except TemplateError:
        return None  # the worker falls back to the plain format for this conversation


def quiet_llama(model_path: str, **kwargs: Any) -> Any:
    """llama_cpp.Llama(model_path, **kwargs) without llama.cpp's log on stderr.

    llama.cpp prints a context warning even with verbose=False; this child's
    stderr is the caller's terminal, and nothing it prints here is for the user.
    """
    from app.engine.worker import llama_cpp_module  # noqa: PLC0415 - a worker-side import

    llama_cpp = llama_cpp_module()

    devnull = os.open(os.devnull, os.O_WRONLY)
    saved = os.dup(2)
    os.dup2(devnull, 2)
    try:
        return llama_cpp.Llama(model_path=model_path, verbose=False, **kwargs)
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def tokenize_conversation(model_path: str, messages: list[Message]) -> PromptTokens:
    return tokenize_with(quiet_llama(model_path, vocab_only=True), messages)


def tokenize_with(llm: Any, messages: list[Message]) -> PromptTokens:
    """The conversation rendered and tokenized as the worker does it, on a loaded Llama."""
    from app.engine.worker import llama_cpp_module  # noqa: PLC0415 - a worker-side import

    llama_cpp = llama_cpp_module()

    model = llm._model
    template = None
    source = llm.metadata.get("tokenizer.chat_template")
    if source:
        eos, bos = model.token_eos(), model.token_bos()
        template, _note = checked_template(
            source,
            bos_token=model.token_get_text(bos) if bos != -1 else "",
            eos_token=model.token_get_text(eos) if eos != -1 else "",
        )
    text = _render(template, messages, True)
    if text is not None:
        add_bos, chat_format = False, "template"
        prefixes = [_render(template, messages[: k + 1], False) or "" for k in range(len(messages))]
    else:
        text, add_bos, chat_format = plain_prompt(messages), True, "plain"
        prefixes = [
            plain_prompt(messages[: k + 1]).rsplit("\n\nAssistant:", 1)[0]
            for k in range(len(messages))
        ]
    data = text.encode("utf-8")
    # Where each message's rendering ends in the full text (bytes).
    boundaries: list[tuple[int, str]] = []
    for message, prefix in zip(messages, prefixes, strict=True):
        raw = prefix.encode("utf-8")
        common = 0
        for a, b in zip(raw, data):
            if a != b:
                break
            common += 1
        boundaries.append((common, message["role"]))
    ids = llm.tokenize(data, add_bos=add_bos, special=True)
    vocab = model.vocab
    out = PromptTokens(chat_format=chat_format)
    offset = 0
    for token in ids:
        piece = llm.detokenize([token], special=True)
        control = bool(llama_cpp.llama_vocab_is_control(vocab, token))
        text_piece = piece.decode("utf-8", errors="replace")
        in_text = data.startswith(piece, offset) if piece else False
        role = role_of_offsets(boundaries, offset) if in_text else TEMPLATE_ROLE
        if in_text:
            offset += len(piece)
        out.tokens.append(PromptToken(int(token), text_piece, control, role))
    return out


def prompt_tokens(
    model_path: str, messages: Sequence[Message], dropped_messages: int = 0
) -> PromptTokens:
    """Tokenize the conversation as the worker did, in a child process (see module doc)."""
    kept = [dict(m) for m in kept_messages(messages, dropped_messages)]
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        future = pool.submit(tokenize_conversation, model_path, kept)
        return future.result(timeout=CHILD_TIMEOUT_S)
