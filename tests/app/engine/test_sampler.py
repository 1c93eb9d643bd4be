"""llama.cpp's sampler chain in the decode loop: its stages, determinism at
temperature 0, and the same replies as Llama.generate for the same seed."""

from __future__ import annotations

import pytest

from app.engine import events as ev
from app.engine.sampler import SamplerChain
from app.engine.turn_runner import DECODE_LOOP_ENV
from app.settings import SamplingSettings

from helpers import load_engine, run_turn

STORY = [{"role": "user", "content": "Tell me a short story about a fox."}]


@pytest.fixture
def llama_cpp():
    # Imported in this process on purpose, to build a chain directly; at module level
    # it would land in sys.modules at collection, where tests check the app never
    # imports it outside its worker.
    import llama_cpp as module

    return module


def test_chain_stages_follow_the_settings(llama_cpp):
    greedy = SamplerChain(llama_cpp, 1000, SamplingSettings(temperature=0.0), seed=1)
    sampled = SamplerChain(llama_cpp, 1000, SamplingSettings(temperature=0.7), seed=1)
    try:
        assert greedy.names == ["penalties", "greedy"]
        assert sampled.names == ["penalties", "top_k", "top_p", "min_p", "temp", "dist"]
    finally:
        greedy.close()
        sampled.close()
        sampled.close()  # closing twice is harmless


def _reply(engine, sampling: SamplingSettings) -> ev.TurnFinished:
    finished = run_turn(engine, engine.submit(STORY, sampling))[-1]
    assert isinstance(finished, ev.TurnFinished)
    assert finished.metrics.stop_reason in ("eos", "length")
    return finished


def test_temperature_zero_is_deterministic_whatever_the_seed(loaded_engine):
    engine, _ = loaded_engine
    greedy = SamplingSettings(temperature=0.0, max_tokens=40)
    replies = [_reply(engine, greedy.with_changes(seed=seed)).text for seed in (1, 2, 99)]
    assert replies[0]
    assert replies[0] == replies[1] == replies[2]


@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_native_loop_matches_llama_generate(bundled_model, loaded_engine, monkeypatch, temperature):
    """Same chain, same seed: the reply does not depend on which loop decoded it."""
    sampling = SamplingSettings(temperature=temperature, seed=4321, max_tokens=40)
    native = _reply(loaded_engine[0], sampling)
    monkeypatch.setenv(DECODE_LOOP_ENV, "generate")  # read by the worker it spawns
    engine, _ = load_engine(bundled_model)
    try:
        generated = _reply(engine, sampling)
    finally:
        engine.close()
    assert native.text == generated.text
    assert native.metrics.output_tokens == generated.metrics.output_tokens
