"""The inside-a-turn views fed with a turn built by hand (no engine), and their screenshots."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from app import bandwidth
from app.engine import events as ev
from app.metrics import TurnMetrics

SHOTS = Path(os.environ.get("GLASSBOX_SHOTS", "/tmp/shots"))


def finished_metrics(n_tokens: int = 40) -> TurnMetrics:
    return TurnMetrics(
        queue_ms=300.0,
        ttft_ms=1500.0,
        prefill_ms=1100.0,
        prompt_tokens=400,
        prompt_tokens_cached=100,
        prompt_tokens_evaluated=300,
        prefill_tok_s=272.0,
        output_tokens=n_tokens,
        decode_ms=390.0,
        decode_tok_s=(n_tokens - 1) / 0.39,
        kv_cells_used=440,
        kv_cells_total=2048,
        kv_fill=440 / 2048,
        kv_bytes_used=440 * 23040,
        kv_bytes_total=2048 * 23040,
        stop_reason="eos",
        total_ms=1900.0,
    )


def play_turn(tabs, dropped: int = 2) -> None:
    """TurnStarted, tokens 10 ms apart with one 60 ms stall, TurnFinished."""
    t0 = time.monotonic_ns() + 1_000_000_000  # sent well after the model loaded: no cold start
    started = ev.TurnStarted(
        request_id=7,
        t_ns=t0,
        queue_ms=300.0,
        prompt_tokens=400,
        prompt_tokens_cached=100,
        dropped_messages=dropped,
    )
    tabs.begin_live(started)
    first = t0 + 1_200_000_000  # first token 1.5 s after the submit (queue 0.3 s)
    times = [first + i * 10_000_000 + (50_000_000 if i >= 20 else 0) for i in range(40)]
    tabs.add_tokens(times[:20])
    tabs.add_tokens(times[20:])
    tabs.end_live(finished_metrics())


@pytest.fixture
def tabs(qtbot, bundled_model):
    from ui.internals.inside_tabs import InsideTabs

    widget = InsideTabs()
    qtbot.addWidget(widget)
    widget.resize(560, 360)
    widget.show()
    loaded = ev.ModelLoaded(
        model_path=str(bundled_model),
        model_name="SmolLM2",
        load_ms=120.0,
        n_ctx=2048,
        kv_cells_total=2048,
        kv_bytes_total=2048 * 23040,
        kv_buffer_mib_reported=45.0,
        model_size_bytes=96_600_000,
        settings={"kv_cache_type": "f16"},
    )
    widget.set_model_info(loaded)
    assert widget.tasks.pending() == 0  # nothing read until the KV tab is shown
    widget.setCurrentWidget(widget.kv_view)
    qtbot.waitUntil(lambda: "total =" in widget.kv_view.math.text(), timeout=10_000)
    widget.setCurrentIndex(0)
    yield widget
    widget.tasks.wait(30)


def shoot(widget, name: str) -> None:
    from PySide6.QtWidgets import QApplication

    QApplication.processEvents()  # the posted layout requests: labels take their new height
    SHOTS.mkdir(parents=True, exist_ok=True)
    assert widget.grab().save(str(SHOTS / f"inside-{name}.png"))


def test_views_fill_from_one_finished_turn(tabs, qtbot):
    play_turn(tabs)
    d = tabs.last_diagnosis
    assert d is not None and d.cause == "full_context"  # prefill dominated, messages dropped
    assert "full context" in tabs.diagnosis_view.verdict.text()
    timeline = tabs.timeline_view.timeline
    assert timeline is not None and len(timeline.token_ms) == 40
    assert [s.kind for s in timeline.segments] == ["queue", "template", "prefill", "decode"]
    assert timeline.first_token_ms == pytest.approx(1500.0)
    assert tabs.session_latency.itl().count == 39
    assert "inter-token" in tabs.latency_view.table.text()
    assert "440 / 2048" in tabs.kv_view.cells.format()
    assert "45.00 MiB" in tabs.kv_view.math.text()  # llama.cpp's figure beside ours
    assert "2 oldest messages" in tabs.kv_view.fill.text()
    for name, index in (("diagnosis", 0), ("timeline", 1), ("latency", 2), ("kv", 3)):
        tabs.setCurrentIndex(index)
        shoot(tabs, name)


def test_bandwidth_tab_measures_when_first_shown_and_shows_the_ceiling(tabs, qtbot):
    play_turn(tabs, dropped=0)
    tabs.setCurrentWidget(tabs.bandwidth_view)
    qtbot.waitUntil(lambda: tabs.bandwidth_bytes_s is not None, timeout=30_000)
    text = tabs.bandwidth_view.text.text()
    assert "compute-bound" in text and "bandwidth-bound" in text and "GB/s" in text
    assert "of the ceiling" in tabs.bandwidth_view.gauge.format()
    assert bandwidth.cached() is not None
    shoot(tabs, "bandwidth")


def test_every_new_view_has_a_tooltip(tabs):
    from PySide6.QtWidgets import QLabel, QProgressBar, QPushButton

    views = [tabs.timeline_view, tabs.latency_view.plot]
    views += tabs.findChildren(QLabel) + tabs.findChildren(QProgressBar)
    views += tabs.findChildren(QPushButton)
    missing = [w.accessibleName() or type(w).__name__ for w in views if not w.toolTip()]
    assert not missing
    assert all(tabs.tabToolTip(i) for i in range(tabs.count()))


class _NoModelEngine:
    model_info = None


def _demos(qtbot, engine):
    from PySide6.QtWidgets import QMainWindow

    from ui.chrome.demos_menu import DemosMenu
    from ui.internals.panel import InternalsPanel

    window = QMainWindow()
    qtbot.addWidget(window)
    panel = InternalsPanel()
    window.setCentralWidget(panel)
    demos = DemosMenu(engine, panel, window.statusBar(), window)
    window.menuBar().addMenu(demos.menu)
    window.resize(600, 1000)
    window.show()
    return window, panel, demos


def test_demos_menu_lists_every_scenario_and_needs_a_model(qtbot):
    from app.scenarios import SCENARIOS

    window, _panel, demos = _demos(qtbot, _NoModelEngine())
    titles = [a.text() for a in demos.menu.actions()]
    assert titles == [s.title for s in SCENARIOS.values()]
    assert all(a.toolTip() for a in demos.menu.actions())
    with qtbot.waitSignal(demos.demo_failed) as failed:
        assert demos.run("long-prompt") is False
    assert "load one first" in failed.args[0]
    assert "load one first" in window.statusBar().currentMessage()


def test_cold_start_demo_shows_the_load_on_the_timeline(qtbot, bundled_model):
    class Loaded:
        model_info = ev.ModelLoaded(model_path=str(bundled_model), settings={"n_ctx": 2048})

    window, panel, demos = _demos(qtbot, Loaded())
    with qtbot.waitSignal(demos.demo_finished, timeout=600_000) as done:
        assert demos.run("cold-start")
    result = done.args[0]
    timeline = panel.inside.timeline_view.timeline
    assert timeline is not None and timeline.segments[0].kind == "load"
    # A fast machine loads the small bundled model in under the "slow" wait: the turn is
    # then rightly "not slow"; whenever the load made it slow, the load is the cause.
    if result.focus.diagnosis.cause != "not_slow":
        assert result.focus.diagnosis.cause == "cold_start"
        assert panel.inside.currentWidget() is panel.inside.timeline_view
        assert "cold start" in panel.inside.diagnosis_view.verdict.text()
        assert "Cold start" in window.statusBar().currentMessage()
    demos.tasks.wait(30)
    shoot(window, "demo-cold-start")


def test_prompt_view_tokenizes_the_last_prompt_with_the_model(qtbot, bundled_model):
    from PySide6.QtWidgets import QMainWindow

    from ui.chrome.prompt_inspector import PromptInspector
    from ui.internals.panel import InternalsPanel

    history = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue."},  # the reply: not part of its prompt
    ]

    class Session:
        def history(self, conversation_id):
            assert conversation_id == 5
            return [dict(m) for m in history]

    class Controller:
        conversation_id = 5

    class Engine:
        model_info = ev.ModelLoaded(model_path=str(bundled_model))

    window = QMainWindow()
    qtbot.addWidget(window)
    panel = InternalsPanel()
    window.setCentralWidget(panel)
    inspector = PromptInspector(Session(), Controller(), Engine(), panel, window)
    window.resize(600, 1000)
    window.show()
    inside = panel.inside
    play_turn(inside, dropped=0)  # a finished turn: 100 of its prompt tokens were cached
    inside.setCurrentWidget(inside.prompt_view)
    view = inside.prompt_view
    view.button.click()
    qtbot.waitUntil(lambda: view.prompt is not None, timeout=300_000)
    counts = view.prompt.counts()
    assert counts["system"] and counts["user"] and counts["assistant"] and counts["template"]
    assert f"{sum(counts.values())} prompt tokens" in view.counts.text()
    assert "<|im_start|>" in view.tokens.toPlainText()
    assert "Blue" not in view.tokens.toPlainText()
    assert view.button.isEnabled()
    inspector.tasks.wait(30)
    shoot(inside, "prompt")


def _alt(i, text, logprob):
    return {"id": i, "text": text, "logprob": logprob}


def test_token_view_shades_lists_alternatives_and_asks_to_branch(qtbot):
    from PySide6.QtCore import QUrl

    from ui.internals.token_view import TokenView

    view = TokenView()
    qtbot.addWidget(view)
    view.resize(520, 320)
    view.show()
    tokens = [
        {"id": 10, "text": "Apple", "logprob": -0.05, "top": [_alt(10, "Apple", -0.05)]},
        {
            "id": 11,
            "text": ",",
            "logprob": -1.2,
            "top": [_alt(11, ",", -1.2), _alt(12, " and", -1.4), _alt(13, ".", -2.0)],
        },
    ]
    view.set_tokens(tokens, {"temperature": 0.7, "top_k": 40, "seed": 3})
    assert "Apple" in view.text.toPlainText()
    view._on_text_highlighted(QUrl("t:1"))
    assert "id 11" in view.last_tooltip and "' and'" in view.last_tooltip
    assert "temperature 0.7" in view.last_tooltip
    view._on_text_anchor_clicked(QUrl("t:1"))
    assert view.alternatives.count() == 3
    with qtbot.waitSignal(view.branch_requested) as asked:
        view._on_alternatives_item_clicked(view.alternatives.item(1))
    assert asked.args == [1, 12]
    view.set_branch(1, "Apple and pear.")
    assert "Apple and pear." in view.branch.text()
    shoot(view, "tokens")


def test_token_inspector_scores_the_reply_and_branches(qtbot, bundled_model):
    from PySide6.QtWidgets import QMainWindow

    from app.settings import SamplingSettings
    from ui.chrome.token_inspector import TokenInspector
    from ui.internals.panel import InternalsPanel

    history = [
        {"role": "user", "content": "Name three fruits."},
        {"role": "assistant", "content": "Apple, banana and cherry."},
    ]

    class Session:
        def history(self, conversation_id):
            return [dict(m) for m in history]

    class Controller:
        conversation_id = 1

    class Engine:
        model_info = ev.ModelLoaded(model_path=str(bundled_model), n_ctx=1024)

    window = QMainWindow()
    qtbot.addWidget(window)
    panel = InternalsPanel()
    window.setCentralWidget(panel)
    inspector = TokenInspector(
        Session(), Controller(), Engine(), panel, lambda: SamplingSettings(), window
    )
    window.show()
    view = panel.inside.token_view
    view.switch.setChecked(True)
    play_turn(panel.inside, dropped=0)
    qtbot.waitUntil(lambda: bool(view.tokens), timeout=300_000)
    assert "".join(t["text"] for t in view.tokens) == "Apple, banana and cherry."
    assert all(len(t["top"]) == 10 for t in view.tokens)
    view.select(1)
    view._on_alternatives_item_clicked(view.alternatives.item(1))
    qtbot.waitUntil(lambda: "Branch from token 2" in view.branch.text(), timeout=300_000)
    view.switch.setChecked(False)
    inspector.tasks.wait(60)
    assert inspector.scorer is None
