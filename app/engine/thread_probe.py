"""The thread measurement itself, run inside the engine worker on the loaded model.

Imported only by app.engine.worker (and tests): it drives llama_cpp objects
it is handed, so it never imports llama_cpp itself. For each thread count it
clears the KV cache, times a prefill of a fixed prompt and a short greedy
decode through Llama.generate, the same path a chat turn takes, and sends
each decoded token on (a window streams it, so its own CPU use counts).
The parent (app.engine.thread_tuning) chooses and stores the result.
"""

from __future__ import annotations

import codecs
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as EventType
from typing import Any

from app.engine import events as ev
from app.engine.events import ThreadMeasurement
from app.engine.thread_tuning import best_per_count, choose_threads

# A fixed user message: the chat template around it brings the prompt to
# about 100 tokens on SmolLM2, enough for prefill's matrix kernels to dominate.
PROBE_PROMPT = (
    "You are helping me check how fast this computer runs a language model. "
    "Please write a calm, plain paragraph about a lighthouse keeper who spends a long "
    "winter on a small island, looks after the lamp every night, writes letters to a "
    "friend on the mainland, and watches the ships pass in the fog. Use simple words "
    "and describe the sea, the wind, the light and the quiet evenings."
)
DECODE_TOKENS = 40
ROUNDS = 2

Clock = Callable[[], int]  # nanoseconds, monotonic
Progress = Callable[..., None]  # (step, total, n_threads, phase, **rates_or_text)


@dataclass
class ProbeOutcome:
    rows: list[ThreadMeasurement] = field(default_factory=list)  # one per round and count
    cancelled: bool = False


def step_order(counts: Sequence[int], rounds: int) -> list[int]:
    """Rounds alternate ascending and descending (1 2 2 1): a machine that gets
    busier or calmer during the measurement then favours no count."""
    order: list[int] = []
    for index in range(rounds):
        order.extend(counts if index % 2 == 0 else list(reversed(counts)))
    return order


def probe_threads(
    llm: Any,
    llama_cpp: Any,
    prompt_tokens: Sequence[int],
    counts: Sequence[int],
    *,
    rounds: int = ROUNDS,
    decode_tokens: int = DECODE_TOKENS,
    clock: Clock = time.monotonic_ns,
    should_stop: Callable[[], bool] = lambda: False,
    on_progress: Progress | None = None,
) -> ProbeOutcome:
    """Measure each count and give the context back the threads it had.

    should_stop is checked between tokens, so a chat waiting behind the
    measurement starts within a token."""
    ctx = llm.ctx
    before = (int(llama_cpp.llama_n_threads(ctx)), int(llama_cpp.llama_n_threads_batch(ctx)))
    order = step_order(list(counts), rounds)
    outcome = ProbeOutcome()
    report = on_progress or (lambda *args, **kwargs: None)
    try:
        for step, n_threads in enumerate(order, start=1):
            if should_stop():
                outcome.cancelled = True
                break
            report(step, len(order), n_threads, "prefill")

            def on_text(text: str, step: int = step, n_threads: int = n_threads) -> None:
                report(step, len(order), n_threads, "decode", text=text)

            row = _measure(
                llm, llama_cpp, prompt_tokens, n_threads, decode_tokens, clock, should_stop, on_text
            )
            if row is None:
                outcome.cancelled = True
                break
            outcome.rows.append(row)
            report(
                step,
                len(order),
                n_threads,
                "measured",
                prefill_tok_s=row.prefill_tok_s,
                decode_tok_s=row.decode_tok_s,
            )
    finally:
        # The next chat turn must not reuse the probe's KV cache as its prefix.
        llm.reset()
        llm._ctx.kv_cache_clear()
        llama_cpp.llama_set_n_threads(ctx, *before)
    return outcome


def _measure(
    llm: Any,
    llama_cpp: Any,
    prompt_tokens: Sequence[int],
    n_threads: int,
    decode_tokens: int,
    clock: Clock,
    should_stop: Callable[[], bool],
    on_text: Callable[[str], None],
) -> ThreadMeasurement | None:
    """One prefill and decode at n_threads for both phases; None when stopped."""
    llama_cpp.llama_set_n_threads(llm.ctx, n_threads, n_threads)
    llm.reset()
    llm._ctx.kv_cache_clear()
    vocab = llm._model.vocab
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    started = clock()
    first = last = 0
    produced = 0
    # Greedy, so every count decodes the same tokens. An end-of-generation token
    # does not end the measurement: its cost is the same as any other token's.
    generator = llm.generate(list(prompt_tokens), temp=0.0, repeat_penalty=1.1)
    try:
        for token in generator:
            now = clock()
            produced += 1
            if produced == 1:
                first = now
            last = now
            if not llama_cpp.llama_vocab_is_eog(vocab, token):
                on_text(decoder.decode(llm.detokenize([token])))
            if produced >= decode_tokens:
                break
            if should_stop():
                return None
    finally:
        generator.close()
    prefill_ns, decode_ns = first - started, last - first
    return ThreadMeasurement(
        n_threads=n_threads,
        prefill_tok_s=len(prompt_tokens) * 1e9 / prefill_ns if prefill_ns > 0 else 0.0,
        decode_tok_s=(produced - 1) * 1e9 / decode_ns if decode_ns > 0 else 0.0,
        prompt_tokens=len(prompt_tokens),
        decode_tokens=produced,
    )


def run_tune(
    model: Any | None, conn: Connection, cancel: EventType, payload: dict[str, Any]
) -> None:
    """The worker's "tune" command: measure, choose, report; apply the choice to the
    loaded context when the parent says its settings left threads unset.

    payload: counts, rounds, decode_tokens, context, apply_decode, apply_batch.
    Always ends with one TuneFinished, so the parent's queue moves on.
    """
    context = str(payload.get("context", "headless"))
    if model is None:
        conn.send(ev.TuneFinished(context=context, error="no model is loaded"))
        return

    def progress(step: int, total: int, n_threads: int, phase: str, **extra: Any) -> None:
        conn.send(
            ev.TuneProgress(step=step, total=total, n_threads=n_threads, phase=phase, **extra)
        )

    try:
        tokens, _ = model.tokenize_chat([{"role": "user", "content": PROBE_PROMPT}])
        outcome = probe_threads(
            model.llm,
            model.llama_cpp,
            tokens,
            [int(n) for n in payload["counts"]],
            rounds=int(payload.get("rounds", ROUNDS)),
            decode_tokens=int(payload.get("decode_tokens", DECODE_TOKENS)),
            should_stop=cancel.is_set,
            on_progress=progress,
        )
    except Exception as exc:
        traceback.print_exc()
        conn.send(ev.TuneFinished(context=context, error=f"{type(exc).__name__}: {exc}"))
        return
    rows = best_per_count(outcome.rows)
    if outcome.cancelled or not rows:
        conn.send(ev.TuneFinished(rows=rows, context=context, cancelled=True))
        return
    decode, batch = choose_threads(rows)
    settings = model.settings
    final = (
        decode if payload.get("apply_decode") else settings.n_threads,
        batch if payload.get("apply_batch") else settings.n_threads_batch or settings.n_threads,
    )
    model.llama_cpp.llama_set_n_threads(model.llm.ctx, *final)
    model.settings = settings.with_changes(n_threads=final[0], n_threads_batch=final[1])
    conn.send(
        ev.TuneFinished(
            rows=rows,
            n_threads=decode,
            n_threads_batch=batch,
            context=context,
            applied=bool(payload.get("apply_decode") or payload.get("apply_batch")),
        )
    )
