"""The internals panel's plot details (issue 10, item 4): legends off the data, empty states,
the KV unit, the live strip's range, the readout's spacing, tooltips in the readout's units."""

from __future__ import annotations

import dataclasses
import html
import re

import pytest

from tests.ui.test_views import metrics


@pytest.fixture
def panel(qtbot):
    from ui.internals.panel import InternalsPanel

    widget = InternalsPanel()
    qtbot.addWidget(widget)
    widget.resize(560, 900)
    widget.show()
    return widget


def plain(text: str) -> str:
    """Rich text as a reader gets it: tags dropped, entities decoded, spaces folded."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", "", text)).replace("\xa0", " "))


def test_empty_plots_show_a_message_instead_of_axes(panel):
    panel.flush()
    for plot in panel.turn_plots():
        assert plot.empty.shown and plot.empty.item.isVisible()
        assert not plot.plotItem.getAxis("left").style["showValues"]
        assert plot.plotItem.getAxis("left").grid is False  # no grid lines of nothing
    for strip in (panel.tokens_plot, panel.itl_plot):
        assert strip.empty_shown  # the live strip draws its message, no axes (test_strip_plot)
    assert "No turn yet" in panel.readout_text()  # the sentence, wrapped (test_readout_view)
    panel.set_turns([(10, metrics(0))])
    panel.flush()
    for plot in panel.turn_plots():
        assert not plot.empty.shown and not plot.empty.item.isVisible()
        assert plot.plotItem.getAxis("left").style["showValues"]
        assert plot.plotItem.getAxis("left").grid


def test_legends_are_in_the_titles_and_the_last_bar_is_in_view(panel):
    panel.set_turns([(10 + i, metrics(i)) for i in range(3)])
    panel.flush()
    for plot in panel.turn_plots():
        assert plot.plotItem.legend is None
    ttft = panel.ttft_plot
    assert "queue" in ttft.title_html() and "prefill" in ttft.title_html()
    top = max(
        q + r for q, r in zip(ttft.queue_bars.opts["height"], ttft.prefill_bars.opts["height"])
    )
    assert ttft.plotItem.getViewBox().viewRange()[1][1] >= top
    rate = panel.rate_plot
    assert "prefill" in rate.title_html() and "decode" in rate.title_html()
    _xs, ys = rate.prefill.getData()
    assert rate.plotItem.getViewBox().viewRange()[1][1] > max(ys)


def test_kv_right_axis_keeps_its_unit_once_there_is_data(panel):
    panel.set_turns([(10 + i, metrics(i)) for i in range(2)])
    panel.flush()
    kv = panel.kv_plot
    assert kv.plotItem.getAxis("right").labelText == "MiB"
    assert "cells" in kv.title_html()  # the title now says how full it is, not the unit
    assert kv.mib_axis.tickStrings([100.0], 1.0, 1.0)[0] != ""


def test_live_strip_x_axis_ends_at_the_data_when_the_turn_ends(panel):
    t0 = 1_000_000_000
    stamps = [t0 + i * 9_000_000 for i in range(1, 12)]  # 11 tokens, 9 ms apart
    panel.begin_live(None)
    panel.add_tokens(stamps)
    panel.flush()
    streaming_top = panel.itl_plot.tops()[0]
    assert streaming_top <= 2 * len(stamps) + 1e-9  # while it streams: at least half filled
    panel.end_live(metrics(0))
    panel.flush()
    x_top = panel.tokens_plot.tops()[0]
    assert x_top == pytest.approx((stamps[-1] - stamps[0]) / 1e6)
    itl_top = panel.itl_plot.tops()[0]
    assert itl_top == pytest.approx(len(stamps))  # the last inter-token gap is token 11


def test_readout_separates_labels_from_figures(panel):
    m = dataclasses.replace(metrics(0), decode_tok_s=38.3)
    panel.set_turns([(10, m)])
    panel.flush()
    text = plain(panel.readout_text())
    assert "decode 38.3 tok/s" in text and "TTFT 120 ms" in text


def test_hover_tooltip_uses_labels_mib_and_percent(panel):
    m = dataclasses.replace(metrics(1), kv_bytes_used=2_810_880, kv_fill=0.05)
    panel.set_turns([(10, m)])
    panel.flush()
    from ui.internals.panel import metrics_tooltip

    text = plain(metrics_tooltip(1, m))
    assert "kv_bytes_used" not in text and "2810880" not in text
    assert "KV used 2.7 MiB" in text and "KV fill 5.0%" in text
    assert "decode 121.0 tok/s" in text


def test_a_crashed_turn_draws_no_kv_bar_as_the_readout_shows_none(panel):
    crashed = dataclasses.replace(
        metrics(1),
        kv_cells_used=None,
        kv_fill=None,
        kv_bytes_used=None,
        stop_reason="crashed",
        decode_tok_s=None,
    )
    panel.set_turns([(10, metrics(0)), (11, crashed)])
    panel.flush()
    kv = panel.kv_plot
    heights = [
        list(item.opts["height"])[1] for item in (kv.cached, kv.evaluated, kv.output)
    ]  # turn 2
    assert heights == [0.0, 0.0, 0.0]
    assert "KV not known" in plain(panel.readout_text())
