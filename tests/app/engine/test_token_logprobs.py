"""Token probabilities computed in the decode loop (top_logprobs), on the bundled model.

At temperature 0 the greedy draw takes the most likely token of the distribution
after the repeat penalty, which is the one reported, so the chosen token must head
its own list every time, with the default penalty as without one; the figures
travel on the Token events and TurnFinished alike.
A request without top_logprobs installs no logits hook at all.
"""

from __future__ import annotations

import math
import multiprocessing
import pickle

import numpy as np
import pytest

from app.engine import events as ev
from app.engine import turn_runner
from app.engine.token_batch import ScoringBatcher, TokenBatch, TokenBatcher
from app.engine.token_logprobs import MAX_TOP_LOGPROBS, TokenLogprobs, _top_ids
from app.settings import RuntimeSettings, SamplingSettings

from helpers import run_turn

PROMPTS = [
    "Name three fruits.",
    "Write a short poem about the sea.",
    "What is 12 times 7? Explain.",
]
GREEDY = SamplingSettings(temperature=0.0, repeat_penalty=1.0, max_tokens=48, seed=0)
PENALISED = GREEDY.with_changes(repeat_penalty=SamplingSettings().repeat_penalty)


def _turn(engine, prompt: str, sampling: SamplingSettings, k: int) -> list[ev.EngineEvent]:
    rid = engine.submit([{"role": "user", "content": prompt}], sampling, top_logprobs=k)
    events = run_turn(engine, rid)
    assert isinstance(events[-1], ev.TurnFinished)
    assert events[-1].metrics.stop_reason in ("eos", "length", "stop")
    return events


@pytest.mark.parametrize("sampling", [GREEDY, PENALISED], ids=["penalty 1.0", "default penalty"])
@pytest.mark.parametrize("prompt", PROMPTS)
def test_at_temperature_zero_the_chosen_token_is_the_most_probable_every_time(
    loaded_engine, prompt, sampling
):
    engine, _ = loaded_engine
    events = _turn(engine, prompt, sampling, 5)
    finished = events[-1]
    streamed = [e for e in events if isinstance(e, ev.Token)]
    tokens = finished.tokens
    assert tokens is not None and len(tokens) == finished.metrics.output_tokens > 3
    assert [t["id"] for t in tokens] == [e.token_id for e in streamed]
    for token, event in zip(tokens, streamed, strict=True):
        assert set(token) == {"id", "text", "logprob", "top"}
        assert (event.logprob, event.top) == (token["logprob"], token["top"])  # same figures
        probs = [math.exp(a["logprob"]) for a in token["top"]]
        assert len(token["top"]) == 5
        assert all(0.0 <= p <= 1.0 for p in probs) and sum(probs) <= 1.0 + 1e-6
        assert probs == sorted(probs, reverse=True)
        assert token["top"][0]["id"] == token["id"], token
        assert token["logprob"] == token["top"][0]["logprob"] <= 0.0
        assert len({a["id"] for a in token["top"]}) == 5
    assert "".join(t["text"] for t in tokens).strip()


def test_sampled_tokens_get_their_own_probability_and_k_is_capped(loaded_engine):
    engine, _ = loaded_engine
    warm = SamplingSettings(temperature=1.5, top_k=0, top_p=1.0, min_p=0.0, max_tokens=32)
    finished = _turn(engine, PROMPTS[1], warm.with_changes(seed=11), 50)[-1]
    tokens = finished.tokens
    assert tokens is not None and tokens
    for token in tokens:
        assert len(token["top"]) == MAX_TOP_LOGPROBS  # 50 asked, 10 at most
        assert 0.0 <= math.exp(token["logprob"]) <= 1.0
        best = token["top"][0]["logprob"]
        assert token["logprob"] <= best + 1e-9  # nothing beats the head of the list
        listed = {a["id"]: a["logprob"] for a in token["top"]}
        if token["id"] in listed:
            assert listed[token["id"]] == pytest.approx(token["logprob"], abs=1e-6)


def test_without_top_logprobs_nothing_is_computed(loaded_engine):
    engine, _ = loaded_engine
    events = _turn(engine, PROMPTS[0], GREEDY, 0)
    assert events[-1].tokens is None
    tokens = [e for e in events if isinstance(e, ev.Token)]
    assert tokens and all(e.logprob is None and e.top is None for e in tokens)


class _Pipe:
    """Stands in for the worker's end of the pipe: keeps what the turn sends."""

    def __init__(self) -> None:
        self.sent: list[ev.EngineEvent] = []

    def send(self, event: ev.EngineEvent) -> None:
        self.sent.append(pickle.loads(pickle.dumps(event)))  # what crosses the pipe


@pytest.fixture(scope="module")
def in_process_model(bundled_model):
    """The worker's Loaded model in this process, to watch the decode loop itself."""
    from app.engine.worker import Loaded

    model = Loaded(str(bundled_model), RuntimeSettings(n_ctx=1024), use_extra_bufts=False)
    yield model
    model.llm.close()


def test_the_off_path_installs_no_hook_and_the_on_path_one(in_process_model, monkeypatch):
    hooks: list[object] = []
    calls: list[int] = []

    class WatchedChain(turn_runner.SamplerChain):
        def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            super().__init__(*args, **kwargs)
            hooks.append(self.logits_hook)

    real_call = TokenLogprobs.__call__

    def counted(self, logits, n_vocab):  # type: ignore[no-untyped-def]
        calls.append(n_vocab)
        real_call(self, logits, n_vocab)

    monkeypatch.setattr(turn_runner, "SamplerChain", WatchedChain)
    monkeypatch.setattr(TokenLogprobs, "__call__", counted)
    cancel = multiprocessing.get_context("spawn").Event()
    for k in (0, 3):
        pipe = _Pipe()
        request = {
            "request_id": k + 1,
            "messages": [{"role": "user", "content": PROMPTS[0]}],
            "sampling": GREEDY.with_changes(max_tokens=12).to_dict(),
            "submit_ns": 0,
            "top_logprobs": k,
        }
        turn_runner.run_turn(in_process_model, pipe, cancel, request)  # type: ignore[arg-type]
        finished = pipe.sent[-1]
        assert isinstance(finished, ev.TurnFinished)
        batches = [e for e in pipe.sent if isinstance(e, TokenBatch)]
        if k == 0:
            assert hooks == [None] and calls == []
            assert finished.tokens is None
            assert all(b.logprobs is None and b.tops is None for b in batches)
        else:
            assert isinstance(hooks[1], TokenLogprobs)
            assert len(calls) == finished.metrics.output_tokens == len(finished.tokens or [])
            unpacked = [t for b in batches for t in b.unpack()]
            assert [t.logprob for t in unpacked] == [t["logprob"] for t in finished.tokens or []]
            assert all(len(t.top or []) == 3 for t in unpacked)


def test_batches_carry_the_figures_and_unpack_them_onto_tokens():
    sent: list[TokenBatch] = []
    figures = {5: -0.1, 6: -2.5}
    tops = {t: [{"id": t, "text": str(t), "logprob": lp}] for t, lp in figures.items()}
    batcher = ScoringBatcher(
        TokenBatcher(sent.append, request_id=9), lambda t: (figures[t], tops[t]), str
    )
    batcher.add(5, "five", 1_000)
    batcher.add(6, "six", 1_001)  # within the frame: waits for the flush
    batcher.flush()
    assert [b.token_ids for b in sent] == [[5], [6]]
    tokens = [t for b in pickle.loads(pickle.dumps(sent)) for t in b.unpack()]
    assert [(t.index, t.token_id, t.text, t.logprob, t.top) for t in tokens] == [
        (0, 5, "five", -0.1, tops[5]),
        (1, 6, "six", -2.5, tops[6]),
    ]
    assert batcher.tokens == [
        {"id": 5, "text": "5", "logprob": -0.1, "top": tops[5]},
        {"id": 6, "text": "6", "logprob": -2.5, "top": tops[6]},
    ]


@pytest.mark.parametrize("scale", [0.05, 1.0, 4.0, 20.0])
def test_top_ids_match_a_full_sort(scale):
    rng = np.random.default_rng(int(scale * 100))
    shifted = (rng.standard_normal(49_152) * scale).astype(np.float32)
    shifted[123] = shifted[456] = shifted.max() + 1  # a tie at the top: lower id first
    shifted -= shifted.max()
    for k in (1, 3, 10):
        expected = np.argsort(-shifted, kind="stable")[:k]
        assert list(_top_ids(shifted, k)) == list(expected)


def test_the_repeat_penalty_lowers_drawn_tokens_as_llama_cpp_does():
    """Token 2 leads the raw logits; once drawn, the penalty (2.0) halves its logit and
    token 1 leads. Negative logits are multiplied; llama.cpp's buffer is not touched."""
    import ctypes

    raw = [1.0, 3.0, 4.0, -1.0, 0.0]
    buffer = (ctypes.c_float * len(raw))(*raw)
    scores = TokenLogprobs(3, str, repeat_penalty=2.0)
    scores(buffer, len(raw))
    logprob, top = scores.entry(2)
    assert [a["id"] for a in top] == [2, 1, 0]
    assert logprob == pytest.approx(4.0 - math.log(sum(math.exp(v) for v in raw)))
    scores(buffer, len(raw))
    scores.entry(3)
    scores(buffer, len(raw))
    _, top = scores.entry(1)
    penalised = [1.0, 3.0, 2.0, -2.0, 0.0]
    norm = math.log(sum(math.exp(v) for v in penalised))
    assert [a["id"] for a in top] == [1, 2, 0]
    assert [a["logprob"] for a in top] == pytest.approx([3.0 - norm, 2.0 - norm, 1.0 - norm])
    assert list(buffer) == raw
