"""Token events batched across the process boundary: one pipe message per ~frame,
one Token event per token for listeners, in order."""

from __future__ import annotations

from app.engine import events as ev
from app.engine.local import LocalEngine
from app.engine.token_batch import FLUSH_INTERVAL_NS, TokenBatch, TokenBatcher
from app.settings import SamplingSettings

from helpers import load_engine, run_turn

MS = 1_000_000


def test_first_token_goes_at_once_and_fast_tokens_wait_for_the_interval():
    sent: list[TokenBatch] = []
    batcher = TokenBatcher(sent.append, request_id=7)
    start = 10_000 * MS
    batcher.add(11, "a", start)
    assert [b.token_ids for b in sent] == [[11]]  # time to first token is not delayed
    for i in range(1, 6):  # five more, 5 ms apart: faster than a frame
        batcher.add(11 + i, "b", start + i * 5 * MS)
    assert len(sent) == 1
    batcher.add(20, "c", start + FLUSH_INTERVAL_NS)  # a frame after the last send
    assert [b.token_ids for b in sent] == [[11], [12, 13, 14, 15, 16, 20]]
    batcher.add(21, "d", start + FLUSH_INTERVAL_NS + MS)
    batcher.flush()  # the turn's end sends what is left
    batcher.flush()  # and nothing twice
    assert [b.first_index for b in sent] == [0, 1, 7]
    assert all(b.request_id == 7 for b in sent)


def test_slow_tokens_go_one_by_one():
    sent: list[TokenBatch] = []
    batcher = TokenBatcher(sent.append, request_id=1)
    for i in range(4):
        batcher.add(i, str(i), (1 + i) * 2 * FLUSH_INTERVAL_NS)
    assert [b.token_ids for b in sent] == [[0], [1], [2], [3]]


def test_unpack_gives_the_tokens_in_order():
    batch = TokenBatch(
        request_id=3, first_index=5, token_ids=[1, 2, 3], texts=["x", "", "z"], t_ns=[10, 20, 30]
    )
    assert batch.unpack() == [
        ev.Token(request_id=3, index=5, token_id=1, text="x", t_ns=10),
        ev.Token(request_id=3, index=6, token_id=2, text="", t_ns=20),
        ev.Token(request_id=3, index=7, token_id=3, text="z", t_ns=30),
    ]


class RecordingEngine(LocalEngine):
    """Keeps what came over the pipe, before it is unpacked."""

    def __init__(self) -> None:
        super().__init__()
        self.raw: list[ev.EngineEvent] = []
        self._unpacking = False

    def _on_message(self, worker, event):  # type: ignore[no-untyped-def]
        if self._unpacking:  # a Token made from a batch, not a message
            super()._on_message(worker, event)
            return
        self.raw.append(event)
        self._unpacking = True
        try:
            super()._on_message(worker, event)
        finally:
            self._unpacking = False


def test_listeners_see_one_token_event_per_token_in_order(bundled_model, monkeypatch):
    monkeypatch.setattr("helpers.LocalEngine", RecordingEngine)
    engine, _ = load_engine(bundled_model)
    try:
        story = [{"role": "user", "content": "Write a story about a cat."}]
        events = run_turn(engine, engine.submit(story, SamplingSettings(seed=3, max_tokens=60)))
    finally:
        engine.close()
    tokens = [e for e in events if isinstance(e, ev.Token)]
    finished = events[-1]
    assert isinstance(finished, ev.TurnFinished)
    assert len(tokens) == finished.metrics.output_tokens > 0
    assert [t.index for t in tokens] == list(range(len(tokens)))
    assert "".join(t.text for t in tokens) == finished.text
    # Over the pipe the tokens travelled as batches (never as bare Token events)...
    assert isinstance(engine, RecordingEngine)
    batches = [e for e in engine.raw if isinstance(e, TokenBatch)]
    assert not any(isinstance(e, ev.Token) for e in engine.raw)
    assert batches[0].token_ids == [tokens[0].token_id]  # the first token alone, at once
    # ...which unpack into exactly the events the listener saw.
    assert [t for b in batches for t in b.unpack()] == tokens
