"""The prompt view's tokens match what the worker evaluated: counts add up to prompt_tokens."""

from __future__ import annotations

from app.engine import events as ev
from app.engine.prompt_tokenizer import prompt_tokens
from app.prompt_tokens import kept_messages
from app.settings import SamplingSettings

from helpers import run_turn

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi there"},
    {"role": "assistant", "content": "Hello! How can I help?"},
    {"role": "user", "content": "Name one colour."},
]


def test_prompt_tokens_add_up_to_the_turns_prompt_tokens(loaded_engine, bundled_model):
    engine, _loaded = loaded_engine
    sampling = SamplingSettings(temperature=0.0, max_tokens=4, seed=0)
    rid = engine.submit(MESSAGES, sampling)
    finished = run_turn(engine, rid)[-1]
    assert isinstance(finished, ev.TurnFinished)
    m = finished.metrics
    seen = prompt_tokens(str(bundled_model), MESSAGES)
    assert len(seen.tokens) == m.prompt_tokens
    counts = seen.counts()
    assert sum(counts.values()) == m.prompt_tokens
    assert counts["system"] > 0 and counts["user"] > 0 and counts["assistant"] > 0
    assert seen.chat_format == "template"
    specials = [t.text for t in seen.tokens if t.special]
    assert "<|im_start|>" in specials and "<|im_end|>" in specials
    cached, evaluated = seen.split(m.prompt_tokens_cached or 0)
    assert len(cached) + len(evaluated) == m.prompt_tokens
    assert len(evaluated) == m.prompt_tokens_evaluated


def test_dropped_messages_leave_the_system_prompt():
    kept = kept_messages(MESSAGES, 2)
    assert [m["role"] for m in kept] == ["system", "user"]
    assert kept[1]["content"] == "Name one colour."
