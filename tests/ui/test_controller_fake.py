"""The window's controllers on FakeEngine: turn logic in milliseconds, no model.

What needs the real model and worker (metrics, the KV cache, a real crash) is in
test_main_window.py; here FakeEngine's scripted events (real timings) drive the
same window.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.engine.fake import FakeEngine, FakeReply, scripted
from app.settings import SamplingSettings
from tests.ui.conftest import open_window

TIMEOUT = 10_000
LONG = FakeReply(tokens=[f" w{i}" for i in range(400)])
CRASHING = FakeReply(tokens=["Half", " a", " reply"], crash_after=2)


@pytest.fixture
def fake_window(qtbot, glassbox_home) -> Iterator:
    engine = FakeEngine(
        script=scripted({"long please": LONG, "crash please": CRASHING}),
        token_interval_s=0.003,
    )
    sampling = SamplingSettings(temperature=0.0, max_tokens=1000)
    win = open_window(qtbot, "fake.gguf", sampling, engine, n_threads=1, timeout_ms=TIMEOUT)
    yield win
    win.close()


def _replies(win):
    return [w for w in win.chat.message_widgets() if w.role == "assistant"]


def _stored_reply(win, conversation_id):
    """The last reply once its turn ended (its row exists, empty, from the send on)."""
    messages = win.store.messages(conversation_id)
    last = messages[-1] if messages else None
    return last if last is not None and last.role == "assistant" and last.stop_reason else None


def test_a_reply_streams_and_is_stored(qtbot, fake_window):
    win = fake_window
    with qtbot.waitSignal(win.controller.turns_reloaded, timeout=TIMEOUT):
        win.controller.send("hello there")
    stored = _stored_reply(win, win.controller.conversation_id)
    assert stored.content == "You said: hello there" and not stored.partial
    assert _replies(win)[-1].text() == stored.content
    assert win.status.state() == "ready"


def test_stop_keeps_a_partial_reply_and_stop_before_the_send_lands_cancels_it(qtbot, fake_window):
    win = fake_window
    with qtbot.waitSignal(win.bridge.tokens_received, timeout=TIMEOUT):
        win.controller.send("long please")
    win.controller.stop()
    cid = win.controller.conversation_id
    qtbot.waitUntil(lambda: _stored_reply(win, cid) is not None and not win.controller.busy())
    stored = _stored_reply(win, cid)
    assert stored.partial and stored.stop_reason == "cancelled" and stored.content

    # Stop at once, before the background send reaches the engine: nothing is answered.
    before = len(win.store.messages(cid))
    win.controller.send("hello again")
    win.controller.stop()
    qtbot.waitUntil(lambda: not win.controller.busy(), timeout=TIMEOUT)
    roles = [m.role for m in win.store.messages(cid)[before:]]
    assert "assistant" not in roles or win.store.messages(cid)[-1].stop_reason == "cancelled"


def test_two_quick_sends_answer_in_order(qtbot, fake_window):
    win = fake_window
    win.controller.send("first")
    win.controller.send("second")
    cid = win.controller.conversation_id
    qtbot.waitUntil(
        lambda: (
            [m.content for m in win.store.messages(cid) if m.role == "assistant"]
            == ["You said: first", "You said: second"]
        ),
        timeout=TIMEOUT,
    )
    qtbot.waitUntil(
        lambda: [w.text() for w in _replies(win)] == ["You said: first", "You said: second"],
        timeout=TIMEOUT,
    )


def test_a_crash_keeps_the_partial_reply_and_shows_the_banner(qtbot, fake_window):
    win = fake_window
    cid = win.controller.conversation_id
    win.controller.send("crash please")
    qtbot.waitUntil(lambda: _stored_reply(win, cid) is not None, timeout=TIMEOUT)
    stored = _stored_reply(win, cid)
    assert stored.partial and stored.stop_reason == "error" and stored.content == "Half a"
    qtbot.waitUntil(lambda: win.banner.isVisible(), timeout=TIMEOUT)


def test_reopening_mid_stream_shows_each_token_once(qtbot, fake_window):
    win = fake_window
    first = win.controller.conversation_id
    with qtbot.waitSignal(win.bridge.tokens_received, timeout=TIMEOUT):
        win.controller.send("long please")
    with qtbot.waitSignal(win.controller.conversation_opened, timeout=TIMEOUT):
        win.controller.new_conversation()
    with qtbot.waitSignal(win.controller.conversation_opened, timeout=TIMEOUT):
        win.controller.open_conversation(first)
    reply = _replies(win)[-1]
    qtbot.waitUntil(
        lambda: (s := _stored_reply(win, first)) is not None and not s.partial, timeout=TIMEOUT
    )
    stored = _stored_reply(win, first)
    assert stored.content == "".join(LONG.tokens)
    qtbot.waitUntil(lambda: reply.text() == stored.content, timeout=TIMEOUT)
