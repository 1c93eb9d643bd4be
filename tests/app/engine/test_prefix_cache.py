"""The next turn's prompt reuses every KV cell the last turn left, on the real bundled model.

A sampled reply is often tokenized differently from how the tokenizer would cut
its text (" Pre" "f" "et" "cher" against " Pre" "fet" "cher"); the next prompt must
carry the ids the cache holds, or the prefix match stops at the first such word.
"""

from __future__ import annotations

from app.settings import SamplingSettings

from helpers import run_turn

# One conversation: each entry is a user message and sampling chosen for how its
# reply ends (eos, max_tokens, a stop string). Warm sampling with
# fixed seeds: the first reply writes "PreFill" as " Pre" "F" "ill", which the
# tokenizer would cut otherwise.
TURNS = [
    ("What is prefill in LLM inference?", SamplingSettings(temperature=1.0, seed=0, max_tokens=40)),
    ("Say hello in one short sentence.", SamplingSettings(temperature=0.0, max_tokens=160)),
    ("Say hello again.", SamplingSettings(temperature=0.0, max_tokens=80, stop=("ad",))),
    (
        "Why does prefill run faster than decode?",
        SamplingSettings(temperature=1.0, seed=2, max_tokens=40),
    ),
    ("Reply with just the word yes.", SamplingSettings(temperature=0.0, max_tokens=160)),
    ("Describe the sea at night.", SamplingSettings(temperature=1.0, seed=5, max_tokens=60)),
]


def test_each_turn_reuses_every_cell_the_turn_before_left(loaded_engine):
    engine, _ = loaded_engine
    history: list[dict[str, str]] = [{"role": "system", "content": "You are helpful."}]
    endings, previous = [], None
    for i, (text, sampling) in enumerate(TURNS):
        history.append({"role": "user", "content": text})
        finished = run_turn(engine, engine.submit(history, sampling))[-1]
        m = finished.metrics
        if previous is not None:
            assert m.prompt_tokens_cached == previous.kv_cells_used, (
                f"turn {i}: {m.prompt_tokens_cached} of {previous.kv_cells_used} "
                f"cells reused after a {previous.stop_reason} ending"
            )
        endings.append(m.stop_reason)
        history.append({"role": "assistant", "content": finished.text})
        previous = m
    assert {"eos", "length", "stop"} <= set(endings), endings


def test_a_stop_string_leaves_the_cache_with_the_reply_only(loaded_engine):
    engine, _ = loaded_engine
    question = [{"role": "user", "content": "Count from 1 to 20, separated by commas."}]
    sampling = SamplingSettings(temperature=0.0, max_tokens=80, stop=("\n5.",))
    first = run_turn(engine, engine.submit(question, sampling))[-1]
    assert first.metrics.stop_reason == "stop"
    follow_up = [
        *question,
        {"role": "assistant", "content": first.text},
        {"role": "user", "content": "Thanks."},
    ]
    second = run_turn(engine, engine.submit(follow_up, sampling.with_changes(max_tokens=4)))
    assert second[-1].metrics.prompt_tokens_cached == first.metrics.kv_cells_used
    # The stop string's tokens were evaluated, then dropped from the cache.
    assert first.metrics.kv_cells_used < first.metrics.prompt_tokens + first.metrics.output_tokens
