"""A long conversation's per-turn plots: the newest turns drawn, at their real turn numbers."""

from __future__ import annotations

from app.metrics import TurnMetrics
from ui.internals.panel import PLOT_TURNS


def turns(count: int) -> list[tuple[int, TurnMetrics]]:
    return [
        (
            1000 + i,
            TurnMetrics(
                ttft_ms=40.0 + i % 9,
                queue_ms=1.0,
                prefill_tok_s=300.0,
                decode_tok_s=100.0 + i % 5,
                prompt_tokens_cached=10,
                prompt_tokens_evaluated=5,
                output_tokens=20,
                kv_cells_used=35,
                kv_cells_total=4096,
                kv_bytes_used=35 * 1024,
                kv_bytes_total=4096 * 1024,
                stop_reason="eos",
            ),
        )
        for i in range(count)
    ]


def test_a_long_history_plots_its_newest_turns_where_clicks_and_highlights_find_them(qtbot):
    from ui.internals.panel import InternalsPanel

    panel = InternalsPanel()
    qtbot.addWidget(panel)
    panel.resize(600, 900)
    panel.show()
    total = PLOT_TURNS + 300
    panel.set_turns(turns(total))
    panel.flush()
    first = total - PLOT_TURNS + 1
    for plot in panel.turn_plots():
        assert plot.n_turns == PLOT_TURNS and plot.first_turn == first
        label = plot.plotItem.getAxis("bottom").labelText
        assert f"the last {PLOT_TURNS} of {total}" in label
    xs = list(panel.rate_plot.decode.getData()[0])
    assert xs[0] == first and xs[-1] == total
    # The last turn's reply is message 1000 + total - 1: highlighted at its own turn number.
    assert panel.highlight_message(1000 + total - 1) == total
    region = panel.ttft_plot.highlight.getRegion()
    assert region[0] < total < region[1]
    # A point at turn `first` maps back to that turn (and so to its message).
    vb = panel.ttft_plot.plotItem.getViewBox()
    from PySide6.QtCore import QPointF

    scene = vb.mapViewToScene(QPointF(first, 10.0))
    assert panel.turn_at(panel.ttft_plot, scene) == first


def test_a_short_history_is_drawn_whole_from_turn_one(qtbot):
    from ui.internals.panel import InternalsPanel

    panel = InternalsPanel()
    qtbot.addWidget(panel)
    panel.set_turns(turns(5))
    panel.flush()
    for plot in panel.turn_plots():
        assert plot.first_turn == 1 and plot.n_turns == 5
        assert plot.plotItem.getAxis("bottom").labelText == "assistant turn"
