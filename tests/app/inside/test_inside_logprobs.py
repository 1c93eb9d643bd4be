"""Top-k token probabilities of a real reply, and branching from one of its tokens."""

from __future__ import annotations

import math

import pytest

from app.engine import events as ev
from app.logprobs import TokenScorer
from app.settings import SamplingSettings

from helpers import run_turn

MESSAGES = [{"role": "user", "content": "Name three fruits."}]


@pytest.fixture(scope="module")
def scored(loaded_engine, bundled_model):
    engine, loaded = loaded_engine
    sampling = SamplingSettings(temperature=0.0, repeat_penalty=1.0, max_tokens=16, seed=0)
    rid = engine.submit(MESSAGES, sampling)
    events = run_turn(engine, rid)
    reply = [e.token_id for e in events if isinstance(e, ev.Token)]
    finished = events[-1]
    assert isinstance(finished, ev.TurnFinished) and finished.metrics.stop_reason != "error"
    scorer = TokenScorer(str(bundled_model), n_ctx=loaded.n_ctx)
    yield scorer, reply, scorer.score(MESSAGES, reply, 5)
    scorer.close()


def test_at_temperature_zero_the_chosen_token_is_the_most_probable(scored):
    _scorer, reply, tokens = scored
    assert [t["id"] for t in tokens] == reply and len(reply) > 3
    for t in tokens:
        probs = [math.exp(a["logprob"]) for a in t["top"]]
        assert len(t["top"]) == 5
        assert all(0.0 <= p <= 1.0 for p in probs)
        assert probs == sorted(probs, reverse=True)
        assert t["top"][0]["id"] == t["id"], t
        assert t["logprob"] == pytest.approx(t["top"][0]["logprob"])


def test_branching_forces_the_token_and_continues_from_it(scored):
    scorer, reply, tokens = scored
    at = 1
    alternative = tokens[at]["top"][1]["id"]  # the second most likely token there
    branch = scorer.branch(MESSAGES, reply, at, alternative, max_tokens=8)
    assert branch["ids"][:at] == reply[:at]
    assert branch["ids"][at] == alternative
    assert len(branch["ids"]) > at + 1  # it went on after the forced token
    assert branch["text"]


def test_bench_top_logprobs_adds_tokens_from_the_decode_loop_to_each_turn(tmp_path):
    import json
    import subprocess
    import sys

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Name three fruits.\nWrite a haiku about rain.\n")
    out = tmp_path / "bench.json"
    args = ["bench", "--prompts", str(prompts), "--max-tokens", "24", "--temperature", "0"]
    args += ["--repeat-penalty", "1.0", "--top-logprobs", "3", "--json", str(out)]
    result = subprocess.run(
        [sys.executable, "-m", "app.cli.main", *args], capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["token_probabilities"]["top"] == 3
    assert report["token_probabilities"]["distribution"].startswith("after the repeat penalty")
    turns = report["turns"]
    assert len(turns) == 2
    n_tokens = 0
    for turn in turns:
        assert len(turn["tokens"]) == turn["output_tokens"] > 0
        for token in turn["tokens"]:
            assert set(token) == {"id", "text", "logprob", "top"}
            assert len(token["top"]) == 3 and token["top"][0]["id"] == token["id"]
            assert set(token["top"][0]) == {"id", "text", "logprob"}
            probs = [math.exp(a["logprob"]) for a in token["top"]]
            assert probs == sorted(probs, reverse=True) and all(0 <= p <= 1 for p in probs)
        n_tokens += len(turn["tokens"])
    # Computed as the turns ran (no scoring pass after them), and said so.
    assert "computed in the decode loop" in result.stderr
    assert f"the most probable at {n_tokens} of {n_tokens}" in result.stderr
    assert "scored" not in result.stderr


def test_bench_refuses_more_than_ten_alternatives(tmp_path):
    import subprocess
    import sys

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Hi\n")
    args = ["bench", "--prompts", str(prompts), "--top-logprobs", "11"]
    result = subprocess.run(
        [sys.executable, "-m", "app.cli.main", *args], capture_output=True, text=True, timeout=300
    )
    assert result.returncode != 0
    assert "--top-logprobs must be 0 to 10, got 11" in result.stderr
