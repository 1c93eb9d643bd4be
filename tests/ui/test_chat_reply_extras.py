"""Under and inside a reply: its figures line, the token-limit mark, and Copy on each code block."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from app.metrics import TurnMetrics
from ui.chat.reply_stats import stats_line

CODE_REPLY = (
    "Here:\n\n```python\ndef double(x):\n    return x * 2\n```\n\nThen:\n\n```\nplain text\n```\n"
)


@pytest.fixture
def chat(qtbot):
    from ui.chat.chat_view import ChatView

    view = ChatView()
    qtbot.addWidget(view)
    view.resize(640, 500)
    view.show()
    return view


def message(id_, role, content, metrics=None):
    return SimpleNamespace(
        id=id_, role=role, content=content, partial=False, stop_reason=None, metrics=metrics
    )


def test_stats_line_names_tokens_rate_ttft_and_the_stop_in_words():
    line = stats_line(
        TurnMetrics(output_tokens=124, decode_tok_s=96.12, ttft_ms=48.4, stop_reason="eos")
    )
    assert line == "124 tokens · 96.1 tok/s · TTFT 48 ms · finished"
    assert stats_line(TurnMetrics(output_tokens=1, stop_reason="length")).startswith("1 token ·")
    # A turn that stopped before any token has no rate to show.
    assert stats_line(TurnMetrics(output_tokens=0, decode_tok_s=0.0, stop_reason="cancelled")) == (
        "0 tokens · stopped"
    )


def test_a_stored_reply_shows_its_figures_and_a_cut_one_is_marked(qtbot, chat):
    cut = TurnMetrics(output_tokens=64, decode_tok_s=90.0, ttft_ms=30.0, stop_reason="length")
    done = TurnMetrics(output_tokens=12, decode_tok_s=99.0, ttft_ms=20.0, stop_reason="eos")
    chat.show_messages(
        [
            message(1, "user", "a"),
            message(2, "assistant", "long", cut),
            message(3, "user", "b"),
            message(4, "assistant", "short", done),
        ]
    )
    qtbot.waitUntil(lambda: len(chat.message_widgets()) == 4, timeout=5000)
    first, last = chat.message_widgets()[1], chat.message_widgets()[3]
    assert first.stats() == "64 tokens · 90.0 tok/s · TTFT 30 ms · cut at the token limit"
    assert first.cut_at_limit and "token limit" in first.status()
    assert last.stats().endswith("finished") and not last.cut_at_limit
    assert chat.message_widgets()[0].stats() == ""  # the user's own messages have none


def test_a_streamed_reply_gets_its_figures_when_the_turn_ends(qtbot, chat):
    key = object()
    reply = chat.add_request(key, "hi")
    chat.append_reply_text(key, "Hello")
    assert reply.stats() == ""
    chat.finish_turn(
        key,
        "Hello there",
        partial=False,
        reason="eos",
        metrics=TurnMetrics(output_tokens=3, decode_tok_s=50.0, ttft_ms=10.0, stop_reason="eos"),
    )
    assert reply.stats() == "3 tokens · 50.0 tok/s · TTFT 10 ms · finished"


def test_each_code_block_has_a_copy_button_that_copies_only_its_code(qtbot, chat):
    from PySide6.QtGui import QGuiApplication

    chat.show_messages([message(1, "user", "code please"), message(2, "assistant", CODE_REPLY)])
    qtbot.waitUntil(lambda: len(chat.message_widgets()) == 2, timeout=5000)
    body = chat.message_widgets()[1].body
    qtbot.waitUntil(lambda: len(body.code_copy.buttons()) == 2, timeout=5000)
    first, second = body.code_copy.buttons()
    assert first.y() < second.y()  # each button sits at its own block
    with qtbot.waitSignal(body.code_copy.copied, timeout=1000):
        first.click()
    assert QGuiApplication.clipboard().text() == "def double(x):\n    return x * 2"
    second.click()
    assert QGuiApplication.clipboard().text() == "plain text"
    # Prose has no button.
    assert chat.message_widgets()[0].body.code_copy.buttons() == []


def test_clicking_the_figures_line_selects_the_turn(qtbot, chat):
    from PySide6.QtCore import Qt

    done = TurnMetrics(output_tokens=12, decode_tok_s=99.0, ttft_ms=20.0, stop_reason="eos")
    chat.show_messages([message(1, "user", "a"), message(2, "assistant", "b", done)])
    qtbot.waitUntil(lambda: len(chat.message_widgets()) == 2, timeout=5000)
    reply = chat.message_widgets()[1]
    with qtbot.waitSignal(chat.message_selected, timeout=1000) as selected:
        qtbot.mouseClick(reply._stats_label, Qt.MouseButton.LeftButton)
    assert selected.args == [2] and reply.is_selected()


def test_a_streaming_reply_grows_in_steps_and_fits_exactly_at_the_end(qtbot, chat):
    from ui.chat.markdown_view import GROW_STEP_PX

    key = object()
    reply = chat.add_request(key, "tell me")
    heights = set()
    for i in range(40):
        chat.append_reply_text(key, f"word{i} " * 6 + ("\n\n" if i % 5 == 4 else ""))
        chat._frame.run_now()
        heights.add(reply.body.height())
    assert all(h % GROW_STEP_PX == 0 for h in heights) and len(heights) > 1
    chat.finish_turn(key, None, partial=False, reason="eos")
    document = reply.body.document()
    assert abs(reply.body.height() - document.size().height()) < GROW_STEP_PX / 2


def test_code_blocks_follow_a_live_theme_switch(qtbot, chat):
    from PySide6.QtWidgets import QApplication

    from ui.infra import theme

    app = QApplication.instance()
    chat.show_messages([message(1, "user", "code"), message(2, "assistant", CODE_REPLY)])
    qtbot.waitUntil(lambda: len(chat.message_widgets()) == 2, timeout=5000)
    body = chat.message_widgets()[1].body

    def code_background() -> str:
        block = body.document().begin()
        while block.isValid() and not block.text().startswith("def double"):
            block = block.next()
        return block.blockFormat().background().color().name()

    theme.apply_theme(app, "light")
    light = code_background()
    try:
        theme.apply_theme(app, "dark")
        qtbot.waitUntil(lambda: code_background() != light, timeout=5000)
        assert body._highlighter.style_name == "monokai"
    finally:
        theme.apply_theme(app, "light")
    qtbot.waitUntil(lambda: code_background() == light, timeout=5000)


def test_a_reply_that_never_started_says_so_in_full(qtbot, chat):
    key = object()
    reply = chat.add_request(key, "hi")
    chat.finish_turn(key, None, partial=True, reason="engine crashed before it started")
    assert reply.status() == "⚠ engine crashed before it started: no reply"
    assert reply._status_label.toolTip() == reply.status()


def test_a_stored_reply_cancelled_before_its_first_token_says_so(qtbot, chat):
    empty = message(2, "assistant", "")
    empty.partial, empty.stop_reason = True, "cancelled"
    chat.show_messages([message(1, "user", "a long prompt"), empty])
    qtbot.waitUntil(lambda: len(chat.message_widgets()) == 2, timeout=5000)
    assert chat.message_widgets()[1].status() == "⚠ cancelled before it started: no reply"
