"""The window measures threads after a model's first load here, streaming in the chat;
Settings > Threads shows the table and measures again; a message stops a measurement."""

from __future__ import annotations

import pytest

from app.engine import events as ev
from app.engine.thread_tuning import CACHE_FILE, load_tuned


@pytest.fixture
def autotune(tmp_path, monkeypatch):
    # Set before the window fixture loads the model (fixtures run in argument order).
    monkeypatch.setenv("GLASSBOX_AUTOTUNE", "1")
    monkeypatch.setenv("GLASSBOX_CACHE", str(tmp_path / "cache"))
    from ui.chrome.thread_tuner import ThreadTuner

    # A small measurement: on a busy shared machine the full one can take minutes.
    small = {"counts": [1, 2], "rounds": 1, "decode_tokens": 8}
    monkeypatch.setattr(ThreadTuner, "tune_options", small)
    return tmp_path / "cache"


def test_window_measures_threads_and_a_message_stops_a_measurement(
    qtbot, autotune, window, model_path
):
    from ui.chrome.thread_tuner import BUBBLE_KEY, describe_result

    tuner = window.tuner
    streamed: list[str] = []
    window.bridge.event_received.connect(
        lambda e: (
            streamed.append(e.text)
            if isinstance(e, ev.TuneProgress) and e.phase == "decode"
            else None
        )
    )
    if tuner.last_result is None:
        with qtbot.waitSignal(tuner.tuning_finished, timeout=300_000):
            pass
    result = tuner.last_result
    assert result is not None and not result.cancelled and not result.error
    assert result.context == "window" and result.applied
    assert len(result.rows) >= 1 and "".join(streamed).strip()
    assert window.chat.reply_widget(BUBBLE_KEY) is None  # the bubble went away
    stored = load_tuned(model_path, "window")
    assert stored is not None and stored.context == "window"
    assert (autotune / CACHE_FILE).is_file()
    if result.busy_note:  # other programs kept the cores busy: stored, marked, said
        assert stored.busy_cores is not None and result.busy_note in describe_result(result)
    info = window.engine.model_info
    assert info.threads_source == "tuned" and info.n_threads == result.n_threads

    dialog = window.open_settings()
    page = dialog.tabs.widget(dialog.tabs.count() - 1)
    if stored is not None:  # the page shows what is stored
        qtbot.waitUntil(lambda: page.table.rowCount() == len(stored.rows), timeout=60_000)
        assert "Chosen:" in page.chosen.text()

    # Measure again from Settings, then send a message: the measurement stops
    # and the message is answered.
    # Long enough that the message surely arrives before it ends by itself.
    tuner.tune_options = {"counts": [1, 2], "rounds": 2, "decode_tokens": 400}
    with qtbot.waitSignal(tuner.tuning_started, timeout=10_000):
        page.measure_button.click()
    dialog.reject()
    seen = len(streamed)
    qtbot.waitUntil(lambda: len(streamed) > seen, timeout=60_000)  # decoding now
    assert window.chat.reply_widget(BUBBLE_KEY) is not None
    replies: list = []
    window.controller.reply_finished.connect(replies.append)
    with qtbot.waitSignals(
        [tuner.tuning_finished, window.controller.reply_finished], timeout=300_000
    ):
        window.controller.send("Say hello.")
    cancelled = tuner.last_result
    assert cancelled.cancelled and not tuner.running
    finished = replies[-1]
    assert finished.metrics.stop_reason in ("eos", "length")
    assert finished.metrics.output_tokens > 0
    assert window.chat.reply_widget(BUBBLE_KEY) is None
