"""In the window: Continue on a cut reply, and Edit / Regenerate on earlier messages (branches)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.branching import BRANCH_SUFFIX
from app.engine.fake import FakeEngine, FakeReply, scripted
from app.settings import SamplingSettings
from tests.ui.conftest import open_window

TIMEOUT = 10_000
STORY = FakeReply(tokens=[f" w{i}" for i in range(400)])


@pytest.fixture
def fake_window(qtbot, glassbox_home) -> Iterator:
    engine = FakeEngine(script=scripted({"story please": STORY}), token_interval_s=0.002)
    sampling = SamplingSettings(temperature=0.0, max_tokens=5)
    win = open_window(qtbot, "fake.gguf", sampling, engine, n_threads=1, timeout_ms=TIMEOUT)
    yield win
    win.close()


def widgets(win, role):
    return [w for w in win.chat.message_widgets() if w.role == role]


def send(qtbot, win, text):
    with qtbot.waitSignal(win.controller.reply_stored, timeout=TIMEOUT):
        win.controller.send(text)
    qtbot.waitUntil(lambda: not win.controller.busy(), timeout=TIMEOUT)


def test_continue_extends_the_cut_reply_in_its_own_bubble(qtbot, fake_window):
    win = fake_window
    send(qtbot, win, "story please")
    reply = widgets(win, "assistant")[-1]
    assert reply.cut_at_limit and reply._continue_button.isVisibleTo(reply)
    first = reply.text()
    with qtbot.waitSignal(win.controller.reply_stored, timeout=TIMEOUT):
        reply._continue_button.click()
    qtbot.waitUntil(lambda: not win.controller.busy(), timeout=TIMEOUT)
    assert widgets(win, "assistant") == [reply]  # no new bubble
    assert reply.text().startswith(first) and len(reply.text()) > len(first)
    stored = win.store.messages(win.controller.conversation_id)
    assert len(stored) == 2 and stored[-1].content == reply.text()
    assert reply.stats().startswith("5 tokens")  # the continuation's figures
    # Regenerate on the only reply is the in-place one: no branch.
    assert win.conversations.model.rowCount() == 1


def test_editing_an_earlier_message_sends_it_in_a_branch_and_keeps_the_original(qtbot, fake_window):
    win = fake_window
    send(qtbot, win, "first question")
    send(qtbot, win, "second question")
    source = win.controller.conversation_id
    original = [(m.role, m.content) for m in win.store.messages(source)]
    first_user = widgets(win, "user")[0]
    assert first_user._edit_button.isVisibleTo(first_user)
    first_user._edit_button.click()
    assert "new branch" in win.chat.edit_banner.text()
    win.chat.input.setPlainText("first question, edited")
    with qtbot.waitSignal(win.controller.reply_stored, timeout=TIMEOUT):
        win.chat.send_button.click()
    branch = win.controller.conversation_id
    assert branch != source
    assert [(m.role, m.content) for m in win.store.messages(source)] == original
    messages = win.store.messages(branch)
    assert [m.content for m in messages if m.role == "user"] == ["first question, edited"]
    assert win.store.get_conversation(branch).title.endswith(BRANCH_SUFFIX)
    qtbot.waitUntil(lambda: win.conversations.model.rowCount() == 2, timeout=TIMEOUT)


def test_regenerating_an_earlier_reply_answers_its_question_again_in_a_branch(qtbot, fake_window):
    win = fake_window
    send(qtbot, win, "first question")
    send(qtbot, win, "second question")
    source = win.controller.conversation_id
    first_reply = widgets(win, "assistant")[0]
    assert first_reply._regen_button.isVisibleTo(first_reply)
    with qtbot.waitSignal(win.controller.reply_stored, timeout=TIMEOUT):
        first_reply._regen_button.click()
    branch = win.controller.conversation_id
    assert branch != source and len(win.store.messages(source)) == 4
    roles = [(m.role, m.content) for m in win.store.messages(branch)]
    assert roles[0] == ("user", "first question") and len(roles) == 2
    assert roles[1][0] == "assistant" and roles[1][1]
