"""GuiThreadCollector collects the oldest generation that is due, as its docstring says."""

from __future__ import annotations

import gc

import pytest

from ui.infra import gc_policy


@pytest.mark.parametrize(
    ("counts", "collected"),
    [((701, 0, 0), 0), ((701, 11, 0), 1), ((701, 11, 11), 2), ((0, 11, 11), 2), ((0, 0, 0), None)],
)
def test_collects_the_oldest_generation_due(qtbot, monkeypatch, counts, collected):
    calls: list[int] = []
    monkeypatch.setattr(gc, "get_threshold", lambda: (700, 10, 10))
    monkeypatch.setattr(gc, "get_count", lambda: counts)
    monkeypatch.setattr(gc, "collect", lambda generation=2: calls.append(generation) or 0)
    gc_policy.GuiThreadCollector()._on_timer_timeout()
    assert calls == ([] if collected is None else [collected])


def test_docstring_describes_what_the_code_does():
    doc = gc_policy.__doc__ or ""
    assert "oldest generation that is due" in doc and "youngest" not in doc
