"""Replay of stored turns on the bundled model: greedy and seeded turns come out the same."""

from __future__ import annotations

import pytest
from recorded_chat import record_conversation

from app.cli.main import main
from app.replay import ReplayError, plan_replay, run_replay
from app.settings import SamplingSettings
from app.storage.store import Store


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("GLASSBOX_HOME", str(tmp_path))
    return tmp_path


def test_replay_at_temperature_0_reproduces_the_tokens(home, bundled_model, capsys):
    conversation_id = record_conversation(bundled_model, home / "glassbox.sqlite3")
    with Store.open() as store:
        stored = [m for m in store.messages(conversation_id) if m.role == "assistant"]
    capsys.readouterr()
    assert main(["replay", str(conversation_id), "2"]) == 0
    captured = capsys.readouterr()
    assert captured.out == stored[1].content + "\n"
    assert "reproduced: turn 2 came out the same" in captured.err
    assert f"({stored[1].metrics.output_tokens} tokens)" in captured.err


def test_replay_with_the_recorded_seed_reproduces_a_sampled_turn(home, bundled_model):
    # No seed given: the session draws one and stores it with the turn.
    sampled = SamplingSettings(temperature=0.9, top_k=0, top_p=1.0, min_p=0.0, max_tokens=24)
    conversation_id = record_conversation(
        bundled_model, home / "glassbox.sqlite3", prompts=("Tell me a story.",), sampling=sampled
    )
    with Store.open() as store:
        plan = plan_replay(store, conversation_id, "last")
    assert plan.sampling.seed is not None and plan.sampling.temperature == 0.9
    assert plan.model_path == bundled_model and plan.runtime.n_ctx == 1024
    result = run_replay(plan)
    assert result.reproduced, (result.text, plan.message.content)
    assert result.metrics.output_tokens == plan.message.metrics.output_tokens
    # The same settings with another seed is a different draw, and replay says so.
    other = run_replay(
        plan.__class__(
            **{**plan.__dict__, "sampling": plan.sampling.with_changes(seed=plan.sampling.seed ^ 1)}
        )
    )
    if not other.reproduced:
        assert other.first_difference is not None
        assert other.summary().startswith("not reproduced: turn 1 differs from character")


def test_replay_of_a_turn_that_does_not_exist_is_one_line(home, bundled_model, capsys):
    with Store.open() as store:
        conversation_id = store.create_conversation().id
        store.add_message(conversation_id, "user", "hello")
    assert main(["replay", str(conversation_id), "1"]) == 1
    assert capsys.readouterr().err.strip() == (
        f"glassbox: conversation {conversation_id} has no reply to replay"
    )
    assert main(["replay", "77", "1"]) == 1
    assert "no conversation with id 77" in capsys.readouterr().err
    with Store.open() as store:
        store.add_message(conversation_id, "assistant", "hi")  # never finished: no settings
        with pytest.raises(ReplayError, match="turn must be a number from 1 or 'last'"):
            plan_replay(store, conversation_id, "first")
        with pytest.raises(ReplayError, match="turn 5 does not exist: the conversation has 1"):
            plan_replay(store, conversation_id, "5")
        with pytest.raises(ReplayError, match="turn 1 has no recorded settings"):
            plan_replay(store, conversation_id, "1")
