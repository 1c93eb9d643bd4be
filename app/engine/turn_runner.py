"""One chat turn in the worker: prompt preparation, streaming, metrics.

Runs in the worker process on a loaded model (the Loaded protocol below); it
never imports llama_cpp itself. The three steps are apart so each can be read
and changed alone: prepare_prompt() fits the history into the context and
tokenizes it, stream_reply() decodes (llama_decode and llama.cpp's sampler
chain: app.engine.native_decode, app.engine.sampler) and sends Token events,
batched per frame (app.engine.token_batch), until a stop, and turn_metrics()
turns the timestamps into the TurnMetrics record. A request with top_logprobs
above 0 also gets each token's probabilities, read in the decode loop
(app.engine.token_logprobs); one without installs nothing for them.
"""

from __future__ import annotations

import codecs
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as EventType
from typing import Any, Protocol

from app.engine import events as ev
from app.engine.cache_text import CacheText
from app.engine.native_decode import DecodeError, PrefillCancelled
from app.engine.prompting import Message, find_stop, fit_history, held_stop_prefix
from app.engine.sampler import SamplerChain
from app.engine.token_batch import ScoringBatcher, TokenBatcher
from app.engine.token_logprobs import TokenLogprobs, clamp_top
from app.errors import GlassboxError
from app.metrics import TurnMetrics, decode_figures, ns_to_ms, rate_per_s
from app.settings import SamplingSettings


class Loaded(Protocol):
    """What a turn needs of the loaded model (app.engine.worker.Loaded).

    Declared here rather than imported, so the worker imports this module and
    not the other way round.
    """

    # Read-only here (properties), which the worker's plain attributes satisfy.
    @property
    def llama_cpp(self) -> Any: ...  # the llama_cpp module, imported by the worker only
    @property
    def llm(self) -> Any: ...  # llama_cpp.Llama
    @property
    def model(self) -> Any: ...  # its _LlamaModel
    @property
    def vocab(self) -> Any: ...
    @property
    def native(self) -> Any: ...  # app.engine.native_decode.NativeDecoder
    @property
    def n_ctx(self) -> int: ...
    @property
    def n_vocab(self) -> int: ...
    @property
    def kv_cells_total(self) -> int: ...
    @property
    def kv_bytes_per_cell(self) -> int: ...
    @property
    def kv_bytes_total(self) -> int: ...
    @property
    def cache_text(self) -> CacheText: ...

    def render_chat(self, messages: Sequence[Message]) -> tuple[bytes, bool, tuple[str, ...]]: ...

    def tokenize_prompt(self, text: bytes, add_bos: bool) -> list[int]: ...

    def cached_prefix(self, tokens: list[int]) -> int: ...

    def kv_cells_used(self) -> int: ...


# Which decode loop serves turns: "native" (llama_decode and llama.cpp's sampler
# chain, app.engine.native_decode) or "generate" (llama-cpp-python's
# Llama.generate, the loop before it; the bench compares the two).
DECODE_LOOP_ENV = "GLASSBOX_DECODE_LOOP"
DECODE_LOOPS = ("native", "generate")


@dataclass
class PreparedPrompt:
    text: bytes  # the rendered prompt the tokens stand for
    tokens: list[int]
    stops: tuple[str, ...]  # the request's stop strings and the format's own
    cached: int  # prompt tokens the KV cache already holds
    dropped_messages: int


@dataclass
class StreamedReply:
    text: str = ""
    token_times: list[int] = field(default_factory=list)  # monotonic ns, one per token
    prefill_ns: int = 0
    stop_reason: str = "length"
    tokens: list[dict[str, Any]] | None = None  # per token, when top_logprobs was asked


def prepare_prompt(
    model: Loaded, messages: Sequence[Message], sampling: SamplingSettings
) -> PreparedPrompt:
    """Fit the history into the context (oldest messages go first) and tokenize it.

    Raises GlassboxError with a one-line reason when even the last message
    does not fit.
    """
    reserve = min(sampling.max_tokens, max(1, model.n_ctx // 4))
    holder: dict[str, Any] = {}

    def count(candidate: Sequence[Message]) -> int:
        text, add_bos, holder["stops"] = model.render_chat(candidate)
        holder["text"], holder["tokens"] = text, model.tokenize_prompt(text, add_bos)
        return len(holder["tokens"])

    _, dropped, _ = fit_history(list(messages), count, model.n_ctx, reserve)
    tokens: list[int] = holder["tokens"]
    stops = tuple(sampling.stop) + tuple(holder["stops"])
    return PreparedPrompt(holder["text"], tokens, stops, model.cached_prefix(tokens), dropped)


class _TextStream:
    """Turns sampled tokens into reply text and Token events.

    Text that may be the start of a stop string is held back, so the stream
    never shows what the final reply will not contain. Tokens go out through a
    TokenBatcher: batched when they come faster than a screen refreshes.
    """

    def __init__(
        self,
        reply: StreamedReply,
        stops: tuple[str, ...],
        batcher: TokenBatcher | ScoringBatcher,
    ):
        self.reply, self.stops, self.batcher = reply, stops, batcher
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.text = ""
        self._streamed = 0  # characters of text already sent in Token events

    def ends_turn(
        self,
        token: int,
        eog: bool,
        piece_of: Callable[[int], bytes],
        now: int,
        max_tokens: int,
        context_full: bool,
        cancel: EventType,
    ) -> bool:
        """One sampled token, whichever loop sampled it: recorded, and True when the
        turn stops here (the reason goes on the reply): end of text, a stop string,
        max tokens, a full context, or cancel."""
        reply = self.reply
        if eog:
            reply.stop_reason = "eos"
            return True
        if self.add(token, piece_of(token), now):
            return True
        if len(reply.token_times) >= max_tokens or context_full:
            reply.stop_reason = "length"
            return True
        if cancel.is_set():
            reply.stop_reason = "cancelled"
            return True
        return False

    def add(self, token: int, piece: bytes, now: int) -> bool:
        """Take one token; True when a stop string ended the reply."""
        self.reply.token_times.append(now)
        searched_from = len(self.text)
        text = self.text = self.text + self._decoder.decode(piece)
        stops = self.stops
        cut = find_stop(text, stops, searched_from) if stops else -1
        if cut >= 0:
            safe = cut
        elif stops:
            safe = len(text) - held_stop_prefix(text, stops)
        else:
            safe = len(text)
        self.batcher.add(token, text[self._streamed : safe], now)
        self._streamed = safe
        if cut >= 0:
            self.text, self.reply.stop_reason = text[:cut], "stop"
            return True
        return False

    def finish(self) -> None:
        self.batcher.flush()
        self.reply.text = self.text + self._decoder.decode(b"", final=True)


def decode_loop_name() -> str:
    """The decode loop in use: "native" (default) or "generate" (GLASSBOX_DECODE_LOOP)."""
    name = os.environ.get(DECODE_LOOP_ENV, "native")
    return name if name in DECODE_LOOPS else "native"


def stream_reply(
    model: Loaded,
    conn: Connection,
    cancel: EventType,
    request_id: int,
    prompt: PreparedPrompt,
    sampling: SamplingSettings,
    top_logprobs: int = 0,
) -> StreamedReply:
    """Decode until end of text, a stop string, max tokens, a full context or cancel.

    top_logprobs > 0: each token's log-probability and that many alternatives go
    with its Token event and onto reply.tokens (the native loop only; the
    "generate" comparison loop computes none).
    """
    reply = StreamedReply()
    plain = TokenBatcher(conn.send, request_id)
    batcher: TokenBatcher | ScoringBatcher = plain
    scores: TokenLogprobs | None = None
    native_loop = decode_loop_name() != "generate"
    if top_logprobs > 0 and native_loop:
        text_of = model.native.token_text
        scores = TokenLogprobs(top_logprobs, text_of, sampling.repeat_penalty)
        batcher = ScoringBatcher(plain, scores.entry, text_of)
        reply.tokens = batcher.tokens
    stream = _TextStream(reply, prompt.stops, batcher)
    seed = sampling.seed if sampling.seed is not None else random.getrandbits(32)
    try:
        if native_loop:
            _decode_native(model, cancel, prompt, sampling, seed, stream, scores)
        else:
            _decode_with_llama_generate(model, cancel, prompt, sampling, seed, stream)
    except BaseException:
        model.cache_text.forget()  # the cache was cleared or is unknown
        raise
    stream.finish()
    _settle_cache(model, prompt, reply)
    return reply


def _settle_cache(model: Loaded, prompt: PreparedPrompt, reply: StreamedReply) -> None:
    """Make what the KV cache holds match the reply the next prompt will carry.

    A stop string is not part of the reply, so its tokens leave the cache; then
    the cache text is recorded, so the next prompt reuses these token ids
    (app.engine.cache_text). A prefill stopped part-way holds a part of this
    prompt, which the cache text from before still describes: it stays.
    """
    native = model.native
    held = native.cached_tokens()
    n_prompt = len(prompt.tokens)
    if held[:n_prompt] != prompt.tokens:
        return
    reply_tokens = held[n_prompt:]
    if reply.stop_reason == "stop":
        kept_bytes, size, keep = len(reply.text.encode("utf-8")), 0, 0
        for token in reply_tokens:
            size += len(native.piece(token))
            if size > kept_bytes:
                break
            keep += 1
        native.truncate(n_prompt + keep)
        reply_tokens = reply_tokens[:keep]
    model.cache_text.record(prompt.text, prompt.tokens, reply_tokens, native.piece)


def _decode_native(
    model: Loaded,
    cancel: EventType,
    prompt: PreparedPrompt,
    sampling: SamplingSettings,
    seed: int,
    stream: _TextStream,
    scores: TokenLogprobs | None = None,
) -> None:
    """llama_decode on a reused batch, llama.cpp's sampler chain; no logits in Python
    unless `scores` is given (the request asked for top_logprobs): then it is the
    chain's logits hook, and the loop itself is the same."""
    reply, native = stream.reply, model.native
    is_eog, vocab, ctx = model.llama_cpp.llama_vocab_is_eog, native.vocab, native.ctx
    max_tokens, n_ctx = sampling.max_tokens, model.n_ctx
    prefill_started = time.monotonic_ns()
    with SamplerChain(model.llama_cpp, model.n_vocab, sampling, seed, scores) as chain:
        try:
            n_past = native.start_turn(prompt.tokens, prompt.cached, cancel.is_set)
        except PrefillCancelled:
            reply.stop_reason = "cancelled"
            return
        in_cache = list(prompt.tokens)
        if cancel.is_set():  # came after the prefill's last check: no token is sampled
            reply.stop_reason = "cancelled"
            native.finish_turn(in_cache)
            return
        try:
            while True:
                token = chain.sample(ctx)
                now = time.monotonic_ns()
                if not reply.prefill_ns:
                    reply.prefill_ns = now - prefill_started
                eog = is_eog(vocab, token)
                full = n_past >= n_ctx
                if stream.ends_turn(token, eog, native.piece, now, max_tokens, full, cancel):
                    break
                native.eval_token(token, n_past)
                in_cache.append(token)
                n_past += 1
        except DecodeError:
            raise  # the decoder has already forgotten the cache
        except BaseException:
            native.forget()  # a failure between the cache and the bookkeeping: start clean
            raise
        native.finish_turn(in_cache)


def _decode_with_llama_generate(
    model: Loaded,
    cancel: EventType,
    prompt: PreparedPrompt,
    sampling: SamplingSettings,
    seed: int,
    stream: _TextStream,
) -> None:
    """The previous loop, through Llama.generate: kept to compare against (the bench)."""
    reply, llm = stream.reply, model.llm
    llm.set_seed(seed)
    is_eog = model.llama_cpp.llama_vocab_is_eog
    vocab, detok = model.vocab, model.model.detokenize
    prefill_started = time.monotonic_ns()
    generator = llm.generate(
        prompt.tokens,
        top_k=sampling.top_k,
        top_p=sampling.top_p,
        min_p=sampling.min_p,
        temp=sampling.temperature,
        repeat_penalty=sampling.repeat_penalty,
    )
    for token in generator:
        now = time.monotonic_ns()
        if not reply.token_times and cancel.is_set():  # cancelled during the prefill
            reply.stop_reason = "cancelled"
            break
        if not reply.token_times and not reply.prefill_ns:
            reply.prefill_ns = now - prefill_started
        eog, full = is_eog(vocab, token), llm.n_tokens >= model.n_ctx
        if stream.ends_turn(
            token, eog, lambda t: detok([t]), now, sampling.max_tokens, full, cancel
        ):
            break
    generator.close()


def turn_metrics(
    model: Loaded, prompt: PreparedPrompt, reply: StreamedReply, queue_ms: float
) -> TurnMetrics:
    """The worker's part of TurnMetrics; the parent adds TTFT and total time."""
    cells_used = model.kv_cells_used()
    evaluated = len(prompt.tokens) - prompt.cached
    metrics = TurnMetrics(
        queue_ms=queue_ms,
        prefill_ms=ns_to_ms(reply.prefill_ns) if reply.prefill_ns else None,
        prompt_tokens=len(prompt.tokens),
        prompt_tokens_cached=prompt.cached,
        prompt_tokens_evaluated=evaluated,
        prefill_tok_s=rate_per_s(evaluated, reply.prefill_ns),
        output_tokens=len(reply.token_times),
        kv_cells_used=cells_used,
        kv_cells_total=model.kv_cells_total,
        kv_fill=cells_used / model.kv_cells_total,
        kv_bytes_used=cells_used * model.kv_bytes_per_cell,
        kv_bytes_total=model.kv_bytes_total,
        stop_reason=reply.stop_reason,
    )
    for name, value in decode_figures(reply.token_times).items():
        setattr(metrics, name, value)
    return metrics


def run_turn(model: Loaded, conn: Connection, cancel: EventType, request: dict[str, Any]) -> None:
    """Serve one "chat" command: TurnStarted, Tokens, then TurnFinished (or an error pair)."""
    request_id: int = request["request_id"]
    sampling = SamplingSettings.from_dict(request["sampling"])
    top_logprobs = clamp_top(request.get("top_logprobs", 0))
    started_ns = time.monotonic_ns()
    queue_ms = ns_to_ms(started_ns - request["submit_ns"])
    try:
        prompt = prepare_prompt(model, request["messages"], sampling)
    except GlassboxError as exc:
        for event in ev.failed_turn(
            request_id, str(exc), TurnMetrics(queue_ms=queue_ms, stop_reason="error")
        ):
            conn.send(event)
        return
    conn.send(
        ev.TurnStarted(
            request_id=request_id,
            t_ns=started_ns,
            queue_ms=queue_ms,
            prompt_tokens=len(prompt.tokens),
            prompt_tokens_cached=prompt.cached,
            dropped_messages=prompt.dropped_messages,
        )
    )
    reply = stream_reply(model, conn, cancel, request_id, prompt, sampling, top_logprobs)
    metrics = turn_metrics(model, prompt, reply, queue_ms)
    conn.send(
        ev.TurnFinished(
            request_id=request_id, text=reply.text, metrics=metrics, tokens=reply.tokens
        )
    )
