"""One chat turn in the worker: prompt preparation, streaming, metrics.

Runs in the worker process on a loaded model (app.engine.worker.Loaded); it
never imports llama_cpp itself. The three steps are apart so each can be read
and changed alone: prepare_prompt() fits the history into the context and
tokenizes it, stream_reply() decodes and sends Token events until a stop, and
turn_metrics() turns the timestamps into the TurnMetrics record.
"""

from __future__ import annotations

import codecs
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as EventType
from typing import TYPE_CHECKING, Any

from app.engine import events as ev
from app.engine.prompting import Message, find_stop, fit_history, held_stop_prefix
from app.errors import GlassboxError
from app.metrics import TurnMetrics, decode_figures, ns_to_ms, rate_per_s
from app.settings import SamplingSettings

if TYPE_CHECKING:
    from app.engine.worker import Loaded


@dataclass
class PreparedPrompt:
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
        holder["tokens"], holder["stops"] = model.tokenize_chat(candidate)
        return len(holder["tokens"])

    _, dropped, _ = fit_history(list(messages), count, model.n_ctx, reserve)
    tokens: list[int] = holder["tokens"]
    stops = tuple(sampling.stop) + tuple(holder["stops"])
    return PreparedPrompt(tokens, stops, model.cached_prefix(tokens), dropped)


def stream_reply(
    model: Loaded,
    conn: Connection,
    cancel: EventType,
    request_id: int,
    prompt: PreparedPrompt,
    sampling: SamplingSettings,
) -> StreamedReply:
    """Decode until end of text, a stop string, max tokens, a full context or cancel.

    Text that may be the start of a stop string is held back, so the stream
    never shows what the final reply will not contain.
    """
    llm = model.llm
    llm.set_seed(sampling.seed if sampling.seed is not None else random.getrandbits(32))
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    is_eog = model.llama_cpp.llama_vocab_is_eog
    vocab, detok = model.vocab, model.model.detokenize
    reply = StreamedReply()
    streamed = 0  # characters of text already sent in Token events
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
        if not reply.token_times and not reply.prefill_ns:
            reply.prefill_ns = now - prefill_started
        if is_eog(vocab, token):
            reply.stop_reason = "eos"
            break
        reply.token_times.append(now)
        searched_from = len(reply.text)
        reply.text += decoder.decode(detok([token]))
        cut = find_stop(reply.text, prompt.stops, searched_from)
        safe = cut if cut >= 0 else len(reply.text) - held_stop_prefix(reply.text, prompt.stops)
        conn.send(
            ev.Token(
                request_id=request_id,
                index=len(reply.token_times) - 1,
                token_id=token,
                text=reply.text[streamed:safe],
                t_ns=now,
            )
        )
        streamed = safe
        if cut >= 0:
            reply.text, reply.stop_reason = reply.text[:cut], "stop"
            break
        if len(reply.token_times) >= sampling.max_tokens or llm.n_tokens >= model.n_ctx:
            reply.stop_reason = "length"
            break
        if cancel.is_set():
            reply.stop_reason = "cancelled"
            break
    generator.close()
    reply.text += decoder.decode(b"", final=True)
    return reply


def turn_metrics(
    model: Loaded, prompt: PreparedPrompt, reply: StreamedReply, queue_ms: float
) -> TurnMetrics:
    """The worker's part of TurnMetrics; the parent adds TTFT and total time."""
    cells_used = model.kv_cells_used()
    evaluated = len(prompt.tokens) - prompt.cached
    metrics = TurnMetrics(
        queue_ms=queue_ms,
        prefill_ms=ns_to_ms(reply.prefill_ns),
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
    reply = stream_reply(model, conn, cancel, request_id, prompt, sampling)
    metrics = turn_metrics(model, prompt, reply, queue_ms)
    conn.send(ev.TurnFinished(request_id=request_id, text=reply.text, metrics=metrics))
