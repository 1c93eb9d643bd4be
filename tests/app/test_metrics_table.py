"""The one per-turn metrics table that chat, bench and the demo print."""

from __future__ import annotations

from app.metrics import TurnMetrics
from app.metrics_columns import table_header, table_row
from app.metrics_table import MetricsTable, render_table

A = TurnMetrics(queue_ms=1.0, ttft_ms=120.0, prompt_tokens=30, output_tokens=8, stop_reason="eos")
B = TurnMetrics(
    queue_ms=2.0, ttft_ms=80.0, prompt_tokens=45, output_tokens=16, stop_reason="length"
)


def test_header_once_then_a_numbered_row_a_turn():
    lines = []
    table = MetricsTable(lines.append)
    table.add(A)
    table.add(B)
    assert lines == [table_header(), table_row(1, A), table_row(2, B)]
    assert lines[0].split()[0] == "turn"


def test_begin_shows_the_header_before_any_turn_and_only_once():
    lines = []
    table = MetricsTable(lines.append)
    table.begin()
    assert lines == [table_header()]
    table.add(A, label=7)
    assert lines == [table_header(), table_row(7, A)]


def test_repeat_header_puts_the_header_over_every_row():
    lines = []
    table = MetricsTable(lines.append, repeat_header=True)
    table.add(A)
    table.add(B)
    assert lines == [table_header(), table_row(1, A), table_header(), table_row(2, B)]


def test_render_table_is_the_same_table_at_once():
    assert render_table([A, B]).splitlines() == [table_header(), table_row(1, A), table_row(2, B)]
    assert render_table([]) == ""
