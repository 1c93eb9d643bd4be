"""Local batched decode (app.engine.batched): N sequences in one llama_decode a step."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.engine import events as ev
from app.engine.batched import BatchedEngine
from app.settings import RuntimeSettings, SamplingSettings

TIMEOUT_S = 300.0
N_PARALLEL = 3
# llama.cpp's sums differ with the batch's make-up (which prompts share a step depends
# on when each arrives), so a near tie can flip: "Tell me about cats." went "... animals
# that" batched and "... animals with" alone at its 8th token. 6 tokens stay clear of it.
GREEDY = SamplingSettings(temperature=0.0, max_tokens=6)
PROMPTS = ("Tell me about cats.", "What is 2+2?", "Name three colors.")


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


@pytest.fixture(scope="module")
def batched(bundled_model: Path) -> Iterator[BatchedEngine]:
    # No prompt cache: "alone" then evaluates each prompt whole, as it was in the batch
    # (a prompt found in a slot's cells would be read from a one-token batch, whose sums
    # can differ in the last bits and flip a near tie).
    engine = loaded(bundled_model, BatchedEngine(N_PARALLEL, prompt_cache=False))
    yield engine
    engine.close()


def loaded(model: Path, engine: BatchedEngine) -> BatchedEngine:
    engine.load(model, RuntimeSettings(n_ctx=2048, n_threads=2, repack="off"))
    while True:
        event = engine.next_event(timeout=TIMEOUT_S)
        if isinstance(event, ev.ModelLoaded):
            return engine
        if isinstance(event, ev.EngineError):
            engine.close()
            pytest.fail(event.message)


def collect(engine: BatchedEngine, ids: list[int], on_event=None) -> list[ev.EngineEvent]:
    """Every event of these requests, in arrival order, until each has finished
    (on_event may add ids to the list as it goes)."""
    seen: list[ev.EngineEvent] = []
    done: set[int] = set()
    while any(rid not in done for rid in ids):
        event = engine.next_event(timeout=TIMEOUT_S)
        if on_event is not None:
            on_event(event)
        if event.request_id in ids:
            seen.append(event)
            if isinstance(event, ev.TurnFinished):
                done.add(event.request_id)  # type: ignore[arg-type]
    return seen


def finished(events: list[ev.EngineEvent], request_id: int) -> ev.TurnFinished:
    return next(e for e in events if isinstance(e, ev.TurnFinished) and e.request_id == request_id)


def test_greedy_batched_replies_equal_each_prompt_decoded_alone(batched: BatchedEngine) -> None:
    together = [batched.submit(ask(p), GREEDY) for p in PROMPTS]
    events = collect(batched, together)
    batched_texts = [finished(events, rid).text for rid in together]
    alone_texts = []
    for prompt in PROMPTS:
        rid = batched.submit(ask(prompt), GREEDY)
        alone_texts.append(finished(collect(batched, [rid]), rid).text)
    assert all(batched_texts)
    assert batched_texts == alone_texts


def test_metrics_invariants_per_request(batched: BatchedEngine) -> None:
    ids = [batched.submit(ask(p), GREEDY) for p in PROMPTS]
    events = collect(batched, ids)
    for rid in ids:
        tokens = [e for e in events if isinstance(e, ev.Token) and e.request_id == rid]
        m = finished(events, rid).metrics
        assert m.output_tokens == len(tokens) > 0
        assert [t.index for t in tokens] == list(range(len(tokens)))
        assert m.stop_reason in ("eos", "length")
        assert m.prompt_tokens == m.prompt_tokens_cached + m.prompt_tokens_evaluated
        assert m.prompt_tokens > 0 and m.prompt_tokens_evaluated >= 1
        assert m.queue_ms is not None and m.ttft_ms is not None and m.total_ms is not None
        assert 0 <= m.queue_ms <= m.ttft_ms <= m.total_ms
        assert m.kv_cells_total and 0 < m.kv_fill <= 1  # type: ignore[operator]
        assert m.kv_cells_used is not None and m.kv_cells_used >= m.prompt_tokens


def test_cancel_one_sequence_while_the_others_continue(batched: BatchedEngine) -> None:
    long = SamplingSettings(temperature=0.0, max_tokens=24)
    ids = [batched.submit(ask(p), long) for p in ("Write a poem about rain.", "Write a story.")]
    victim, other = ids

    def on_event(event: ev.EngineEvent) -> None:
        if isinstance(event, ev.Token) and event.request_id == victim and event.index == 1:
            batched.cancel(victim)

    events = collect(batched, ids, on_event)
    cancelled, kept = finished(events, victim), finished(events, other)
    assert cancelled.metrics.stop_reason == "cancelled" and cancelled.text
    assert kept.metrics.stop_reason in ("length", "eos")
    assert kept.metrics.output_tokens > cancelled.metrics.output_tokens  # type: ignore[operator]
    assert not [e for e in events if isinstance(e, ev.EngineError)]


def test_a_request_joins_the_running_batch(batched: BatchedEngine) -> None:
    first = batched.submit(
        ask("Write a story about a dragon."), SamplingSettings(temperature=0.0, max_tokens=24)
    )
    watched = [first]

    def on_event(event: ev.EngineEvent) -> None:
        if isinstance(event, ev.Token) and event.request_id == first and event.index == 2:
            watched.append(batched.submit(ask("What is 2+2?"), GREEDY))

    events = collect(batched, watched, on_event)
    joined = watched[1:]
    assert len(joined) == 1
    order = [(type(e).__name__, e.request_id) for e in events]
    # Continuous batching: it started (got a slot) while the first was still decoding.
    assert order.index(("TurnStarted", joined[0])) < order.index(("TurnFinished", first))
    assert finished(events, joined[0]).text
    assert finished(events, first).metrics.stop_reason in ("length", "eos")


def test_queue_time_is_the_wait_for_a_slot(batched: BatchedEngine) -> None:
    ids = [batched.submit(ask(f"Count to {n}."), GREEDY) for n in range(N_PARALLEL + 1)]
    events = collect(batched, ids)
    order = [(type(e).__name__, e.request_id) for e in events]
    last = ids[-1]
    # All slots were taken: the last one started only after another one finished.
    first_end = min(order.index(("TurnFinished", rid)) for rid in ids[:-1])
    assert order.index(("TurnStarted", last)) > first_end
    queued = next(e for e in events if isinstance(e, ev.RequestQueued) and e.request_id == last)
    assert queued.position >= 1
    assert (
        finished(events, last).metrics.queue_ms
        > max(  # type: ignore[operator]
            finished(events, rid).metrics.queue_ms
            for rid in ids[:-1]  # type: ignore[type-var]
        )
    )


def test_a_conversations_next_turn_reads_only_its_new_tokens(bundled_model: Path) -> None:
    """The slot keeps a finished request's cells; the next prompt that starts the same way
    evaluates only the rest (llama-server's prompt cache)."""
    with loaded(bundled_model, BatchedEngine(2)) as batched:
        _next_turn_reads_only_new_tokens(batched)


def _next_turn_reads_only_new_tokens(batched: BatchedEngine) -> None:
    question = [{"role": "user", "content": "Name a planet with rings."}]
    rid = batched.submit(question, GREEDY)
    first = finished(collect(batched, [rid]), rid)
    follow_up = [
        *question,
        {"role": "assistant", "content": first.text},
        {"role": "user", "content": "And one without?"},
    ]
    rid = batched.submit(follow_up, GREEDY)
    events = collect(batched, [rid])
    started = next(e for e in events if isinstance(e, ev.TurnStarted))
    m = finished(events, rid).metrics
    assert started.prompt_tokens_cached == m.prompt_tokens_cached
    assert m.prompt_tokens_cached >= first.metrics.prompt_tokens  # the whole first prompt
    assert m.prompt_tokens_evaluated == m.prompt_tokens - m.prompt_tokens_cached
    assert finished(events, rid).text
