"""The batched worker process: up to N chat requests decoded together, one llama_decode a step.

Each request gets a sequence id (a "slot") in one llama.cpp context whose
n_seq_max is N. Every step builds one llama_batch from:
- one token for each sequence that is decoding (its last sampled token), and
- a chunk of prompt tokens for sequences still in prefill (at most
  PREFILL_CHUNK a step, so running sequences keep streaming while a long
  prompt is read: chunked prefill);
then samples, for each sequence whose logits came back, with that request's
own sampler chain at its index in the batch. A request that arrives while
others decode takes a free slot at the next step (continuous batching); with
no slot free it waits, and its queue time is that wait. Cancel, stop strings,
max tokens and TurnMetrics are per request.

A finished request's KV cells stay in its slot, as llama-server's prompt cache:
a new request takes the free slot whose tokens share the longest prefix with
its prompt, the cells after that prefix are removed (llama_memory_seq_rm) and
only the rest of the prompt is evaluated. The next turn of a conversation
therefore reads only its new messages, as on LocalEngine.

Imported only in the child process (it loads llama.cpp); the parent is
app.engine.batched.
"""

from __future__ import annotations

import codecs
import collections
import ctypes
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from app.engine import events as ev
from app.engine.prompting import find_stop, fit_history, held_stop_prefix
from app.engine.sampler import SamplerChain
from app.engine.worker import Loaded
from app.errors import GlassboxError
from app.metrics import TurnMetrics, decode_figures, ns_to_ms, rate_per_s
from app.settings import SamplingSettings

PREFILL_CHUNK = 128  # prompt tokens a sequence may add to one step's batch
PIECE_BYTES = 64


class BatchSampler(SamplerChain):
    """A request's own chain, sampling at its row of the step's batch."""

    def sample_at(self, ctx: Any, index: int) -> int:
        return int(self._sample(self._chain, ctx, index))


@dataclass
class SlotRequest:
    request_id: int
    seq_id: int
    sampling: SamplingSettings
    submit_ns: int
    slot_ns: int
    prompt: list[int]
    stops: tuple[str, ...]
    chain: BatchSampler
    max_tokens: int
    prefilled: int = 0  # prompt tokens evaluated so far
    pending: int | None = None  # the sampled token not yet evaluated
    n_past: int = 0
    cached: int = 0  # prompt tokens found in the slot's cells already
    evaluated: list[int] = field(default_factory=list)  # the slot's tokens, position order
    prefill_done_ns: int | None = None
    token_times: list[int] = field(default_factory=list)
    text: str = ""
    streamed: int = 0  # characters of text sent as Token events
    decoder: Any = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace"))
    cancelled: bool = False


class BatchRunner:
    """The decode loop over all slots; commands come in between steps."""

    def __init__(
        self, loaded: Loaded, n_parallel: int, conn: Connection, prompt_cache: bool = True
    ) -> None:
        self.model, self.conn, self.n_parallel = loaded, conn, n_parallel
        lc = self.lc = loaded.llama_cpp
        self.ctx = loaded.llm.ctx
        self.vocab = loaded.vocab
        self.memory = lc.llama_get_memory(self.ctx)
        self.n_batch = int(loaded.llm.n_batch)
        self.n_ctx_seq = loaded.n_ctx // n_parallel  # each slot's share of the context
        self.batch = lc.llama_batch_init(self.n_batch, 0, 1)
        self.free = collections.deque(range(n_parallel))
        self.kept: dict[int, list[int]] = {seq: [] for seq in range(n_parallel)}  # idle slots
        self.prompt_cache = prompt_cache
        self.active: dict[int, SlotRequest] = {}  # seq id -> its request
        self.waiting: collections.deque[dict[str, Any]] = collections.deque()
        self.cancels: set[int] = set()
        self.closed = False
        self.piece_buffer = ctypes.create_string_buffer(PIECE_BYTES)
        self.pieces: dict[int, bytes] = {}

    def close(self) -> None:
        for seq in list(self.active.values()):
            seq.chain.close()
        self.lc.llama_batch_free(self.batch)

    # -- commands ------------------------------------------------------------------

    def handle(self, command: str, payload: Any) -> None:
        if command == "chat":
            self.waiting.append(payload)
        elif command == "cancel":
            self.cancels.add(int(payload))
        elif command == "close":
            self.closed = True

    def busy(self) -> bool:
        return bool(self.active or self.waiting)

    # -- one step ------------------------------------------------------------------

    def step(self) -> None:
        self._apply_cancels()
        self._admit()
        if not self.active:
            return
        rows = self._fill_batch()
        rc = self.lc.llama_decode(self.ctx, self.batch)
        if rc != 0:
            message = f"llama_decode returned {rc} for a batch of {self.batch.n_tokens} tokens"
            for seq in list(self.active.values()):
                self._finish(seq, "error", message)
            return
        now = time.monotonic_ns()
        for index, seq in rows:
            self._sample(seq, index, now)

    def _apply_cancels(self) -> None:
        if not self.cancels:
            return
        for payload in list(self.waiting):
            if payload["request_id"] in self.cancels:
                self.waiting.remove(payload)
                self.cancels.discard(payload["request_id"])
                queue_ms = ns_to_ms(time.monotonic_ns() - payload["submit_ns"])
                metrics = TurnMetrics(queue_ms=queue_ms, stop_reason="cancelled")
                self.conn.send(ev.TurnFinished(request_id=payload["request_id"], metrics=metrics))
        for seq in list(self.active.values()):
            if seq.request_id in self.cancels:
                self.cancels.discard(seq.request_id)
                self._finish(seq, "cancelled")
        self.cancels.clear()  # ids of requests that had ended already

    def _admit(self) -> None:
        while self.free and self.waiting:
            payload = self.waiting.popleft()
            try:
                seq = self._start(payload)
            except GlassboxError as exc:
                for event in ev.failed_turn(payload["request_id"], str(exc)):
                    self.conn.send(event)
                continue
            self.active[seq.seq_id] = seq

    def _take_slot(self, prompt: list[int]) -> tuple[int, int]:
        """(the free slot sharing the longest prefix with the prompt, that prefix's length).
        Its cells after the prefix are removed; one prompt token is always evaluated, for
        the logits of the first reply token."""
        shared = {
            s: _common_prefix(self.kept[s], prompt) if self.prompt_cache else 0 for s in self.free
        }
        seq_id = max(self.free, key=lambda s: shared[s])  # the first of equals: least recent
        self.free.remove(seq_id)
        cached = min(shared[seq_id], len(prompt) - 1)
        if cached <= 0 or not self.lc.llama_memory_seq_rm(self.memory, seq_id, cached, -1):
            cached = 0  # nothing shared, or cells this memory cannot cut: start empty
            self.lc.llama_memory_seq_rm(self.memory, seq_id, -1, -1)
        self.kept[seq_id] = []
        return seq_id, cached

    def _start(self, payload: dict[str, Any]) -> SlotRequest:
        sampling = SamplingSettings.from_dict(payload["sampling"])
        model = self.model

        def count(messages: Any) -> int:
            text, add_bos, _ = model.render_chat(messages)
            return len(model.llm.tokenize(text, add_bos=add_bos, special=True))

        reserve = min(sampling.max_tokens, self.n_ctx_seq // 2)
        kept, dropped, _ = fit_history(payload["messages"], count, self.n_ctx_seq, reserve)
        text, add_bos, stops = model.render_chat(kept)
        prompt = model.llm.tokenize(text, add_bos=add_bos, special=True)
        if not prompt:
            raise GlassboxError("the prompt is empty")
        seq_id, cached = self._take_slot(prompt)
        now = time.monotonic_ns()
        seed = sampling.seed if sampling.seed is not None else now & 0xFFFFFFFF
        chain = BatchSampler(self.lc, model.n_vocab, sampling, seed)
        seq = SlotRequest(
            request_id=payload["request_id"],
            seq_id=seq_id,
            sampling=sampling,
            submit_ns=payload["submit_ns"],
            slot_ns=now,
            prompt=prompt,
            stops=tuple(sampling.stop) + tuple(stops),
            chain=chain,
            max_tokens=max(1, min(sampling.max_tokens, self.n_ctx_seq - len(prompt))),
            prefilled=cached,
            n_past=cached,
            cached=cached,
            evaluated=prompt[:cached],
        )
        self.conn.send(
            ev.TurnStarted(
                request_id=seq.request_id,
                t_ns=now,
                queue_ms=ns_to_ms(now - seq.submit_ns),  # only the wait for a slot
                prompt_tokens=len(prompt),
                prompt_tokens_cached=cached,
                dropped_messages=dropped,
            )
        )
        return seq

    def _fill_batch(self) -> list[tuple[int, SlotRequest]]:
        """This step's rows; returns (batch index, sequence) for the rows with logits.
        Decoding sequences go first: one token each always fits (n_batch >= n_parallel)."""
        batch = self.batch
        rows: list[tuple[int, SlotRequest]] = []
        n = 0

        def add(token: int, pos: int, seq_id: int, logits: bool) -> None:
            nonlocal n
            batch.token[n] = token
            batch.pos[n] = pos
            batch.n_seq_id[n] = 1
            batch.seq_id[n][0] = seq_id
            batch.logits[n] = logits
            n += 1

        for seq in self.active.values():
            if seq.pending is not None:
                rows.append((n, seq))
                add(seq.pending, seq.n_past, seq.seq_id, True)
                seq.evaluated.append(seq.pending)
                seq.n_past += 1
                seq.pending = None
        for seq in self.active.values():
            left = len(seq.prompt) - seq.prefilled
            room = self.n_batch - n
            if left <= 0 or room <= 0:
                continue
            take = min(left, room, PREFILL_CHUNK)
            for i in range(take):
                last = seq.prefilled + i == len(seq.prompt) - 1
                if last:
                    rows.append((n, seq))
                add(seq.prompt[seq.prefilled + i], seq.n_past, seq.seq_id, last)
                seq.n_past += 1
            seq.evaluated.extend(seq.prompt[seq.prefilled : seq.prefilled + take])
            seq.prefilled += take
        batch.n_tokens = n
        return rows

    # -- after the step --------------------------------------------------------------

    def _piece(self, token: int) -> bytes:
        """The token's bytes (llama_token_to_piece returns their length; the buffer
        beyond it is padding), cached per token id."""
        piece = self.pieces.get(token)
        if piece is None:
            n = self.lc.llama_token_to_piece(
                self.vocab, token, self.piece_buffer, PIECE_BYTES, 0, False
            )
            if n < 0:  # a longer piece: ask again with room for it
                buffer = ctypes.create_string_buffer(-n)
                n = self.lc.llama_token_to_piece(self.vocab, token, buffer, -n, 0, False)
                piece = buffer.raw[:n]
            else:
                piece = self.piece_buffer.raw[:n]
            self.pieces[token] = piece
        return piece

    def _sample(self, seq: SlotRequest, index: int, now: int) -> None:
        if seq.prefill_done_ns is None:
            seq.prefill_done_ns = now
        token = seq.chain.sample_at(self.ctx, index)
        if self.lc.llama_vocab_is_eog(self.vocab, token):
            self._finish(seq, "eos")
            return
        seq.token_times.append(now)
        seq.text += seq.decoder.decode(self._piece(token))
        stop_at = find_stop(seq.text, seq.stops, seq.streamed)
        if stop_at >= 0:
            seq.text = seq.text[:stop_at]
            self._stream(seq, token, now, hold=0)
            self._finish(seq, "stop")
            return
        self._stream(seq, token, now, hold=held_stop_prefix(seq.text, seq.stops))
        if len(seq.token_times) >= seq.max_tokens:
            self._finish(seq, "length")
            return
        seq.pending = token

    def _stream(self, seq: SlotRequest, token: int, now: int, hold: int) -> None:
        certain = len(seq.text) - hold
        piece = seq.text[seq.streamed : certain] if certain > seq.streamed else ""
        seq.streamed = max(seq.streamed, certain)
        index = len(seq.token_times) - 1
        self.conn.send(
            ev.Token(request_id=seq.request_id, index=index, token_id=token, text=piece, t_ns=now)
        )

    def _finish(self, seq: SlotRequest, reason: str, error: str | None = None) -> None:
        now = time.monotonic_ns()
        # Every slot's cells as the turn ends: the running ones' (this one's too), and
        # those the idle slots keep for a next prompt.
        used = sum(s.n_past for s in self.active.values()) + sum(
            len(self.kept[s]) for s in self.free
        )
        self.active.pop(seq.seq_id, None)
        if error or not self.prompt_cache:  # after a failed decode its cells are unknown
            self.lc.llama_memory_seq_rm(self.memory, seq.seq_id, -1, -1)
        else:  # kept for the next request that starts the same way
            self.kept[seq.seq_id] = seq.evaluated
        self.free.append(seq.seq_id)
        seq.chain.close()
        model = self.model
        prefill_ns = (seq.prefill_done_ns or now) - seq.slot_ns
        metrics = TurnMetrics(
            queue_ms=ns_to_ms(seq.slot_ns - seq.submit_ns),
            ttft_ms=ns_to_ms(seq.token_times[0] - seq.submit_ns) if seq.token_times else None,
            prefill_ms=ns_to_ms(prefill_ns) if seq.prefill_done_ns else None,
            prompt_tokens=len(seq.prompt),
            prompt_tokens_cached=seq.cached,
            prompt_tokens_evaluated=seq.prefilled - seq.cached,
            prefill_tok_s=(
                rate_per_s(seq.prefilled - seq.cached, prefill_ns) if seq.prefill_done_ns else None
            ),
            output_tokens=len(seq.token_times),
            kv_cells_used=used,
            kv_cells_total=model.kv_cells_total,
            kv_fill=used / max(1, model.kv_cells_total),
            kv_bytes_used=used * model.kv_bytes_per_cell,
            kv_bytes_total=model.kv_bytes_total,
            stop_reason="error" if error else reason,
            total_ms=ns_to_ms(now - seq.submit_ns),
        )
        if seq.token_times:
            for name, value in decode_figures(seq.token_times).items():
                setattr(metrics, name, value)
        if error:
            self.conn.send(ev.EngineError(request_id=seq.request_id, message=error))
        text = seq.text + seq.decoder.decode(b"", final=True)
        self.conn.send(ev.TurnFinished(request_id=seq.request_id, text=text, metrics=metrics))


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n
