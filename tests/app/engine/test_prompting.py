"""Prompt helpers that need no model: trimming, stop strings, held-back text."""

from __future__ import annotations

import pytest

from app.engine.prompting import find_stop, fit_history, held_stop_prefix, plain_prompt
from app.errors import ContextOverflowError


@pytest.mark.parametrize(
    ("text", "stops", "held"),
    [
        ("Hello", (), 0),
        ("Hello\nUs", ("\nUser:",), 3),
        ("Hello\n", ("\nUser:",), 1),
        ("Hello\nUser", ("\nUser:", "\nSystem:"), 5),
        ("Hello", ("\nUser:",), 0),
        ("ab", ("abc", "b"), 2),  # "b" alone is a whole stop, found by find_stop instead
    ],
)
def test_held_stop_prefix(text, stops, held):
    assert held_stop_prefix(text, stops) == held


def test_find_stop_searches_only_the_new_tail():
    text = "one, two, three"
    assert find_stop(text, (", t",), 0) == 3
    assert find_stop(text, ("three",), len("one, two, th")) == 10
    assert find_stop(text, ("zzz",), 0) == -1


def _count(messages):
    return sum(len(m["content"].split()) + 2 for m in messages)


def test_fit_history_drops_oldest_exchanges_and_keeps_system():
    history = [{"role": "system", "content": "be brief"}]
    for i in range(5):
        history += [
            {"role": "user", "content": f"q{i} " * 10},
            {"role": "assistant", "content": f"a{i} " * 10},
        ]
    history.append({"role": "user", "content": "last"})
    kept, dropped, tokens = fit_history(history, _count, n_ctx=60, reserve=10)
    assert kept[0]["role"] == "system" and kept[-1]["content"] == "last"
    assert dropped > 0 and tokens + 10 <= 60
    assert kept[1]["role"] == "user"  # never starts with an orphaned reply


def test_fit_history_refuses_one_message_longer_than_the_context():
    with pytest.raises(
        ContextOverflowError, match="the message is 102 tokens but the context holds 50"
    ):
        fit_history([{"role": "user", "content": "w " * 100}], _count, n_ctx=50, reserve=5)


def test_plain_prompt_ends_ready_for_the_reply():
    prompt = plain_prompt([{"role": "system", "content": "S"}, {"role": "user", "content": "U"}])
    assert prompt == "System: S\n\nUser: U\n\nAssistant:"
