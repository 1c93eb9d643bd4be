"""A long stored conversation in the chat view: newest bubbles first, older ones on demand."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ui.chat.chat_view import INITIAL_WINDOW, PAGE


def stored(count: int) -> list[SimpleNamespace]:
    roles = ("user", "assistant")
    return [
        SimpleNamespace(
            id=i + 1,
            role=roles[i % 2],
            content=f"message {i + 1}\n\nsome text " * 3,
            partial=False,
            stop_reason=None,
        )
        for i in range(count)
    ]


@pytest.fixture
def chat(qtbot):
    from ui.chat.chat_view import ChatView

    view = ChatView()
    qtbot.addWidget(view)
    view.resize(600, 500)
    view.show()
    return view


def ids(chat) -> list[int]:
    return [w.message_id for w in chat.message_widgets()]


def test_opening_builds_the_newest_window_and_keeps_the_rest_for_later(qtbot, chat):
    chat.show_messages(stored(200))
    # The last exchange is there at once, the rest of the window follows in slices.
    assert ids(chat)[-2:] == [199, 200]
    qtbot.waitUntil(lambda: len(chat.message_widgets()) == INITIAL_WINDOW, timeout=5000)
    assert ids(chat) == list(range(200 - INITIAL_WINDOW + 1, 201))
    assert chat.unbuilt_messages() == 200 - INITIAL_WINDOW
    assert chat.earlier_button.isVisible()
    assert str(200 - INITIAL_WINDOW) in chat.earlier_button.text()
    # Regenerate acts on the last reply even though most of the history is not built.
    assert chat.regen_button.isEnabled()


def test_scrolling_to_the_top_builds_a_page_of_older_messages_in_order(qtbot, chat):
    chat.show_messages(stored(100))
    qtbot.waitUntil(lambda: len(chat.message_widgets()) == INITIAL_WINDOW, timeout=5000)
    bar = chat.scroll_area.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0, timeout=5000)
    bar.setValue(0)
    qtbot.waitUntil(lambda: len(chat.message_widgets()) == INITIAL_WINDOW + PAGE, timeout=5000)
    assert ids(chat) == list(range(100 - INITIAL_WINDOW - PAGE + 1, 101))
    # What the user was reading stays in view: the view did not jump back to the bottom.
    assert bar.value() < bar.maximum()


def test_earlier_button_builds_older_messages_until_none_are_left(qtbot, chat):
    chat.show_messages(stored(INITIAL_WINDOW + 3))
    qtbot.waitUntil(lambda: len(chat.message_widgets()) == INITIAL_WINDOW, timeout=5000)
    chat.earlier_button.click()
    qtbot.waitUntil(lambda: chat.unbuilt_messages() == 0, timeout=5000)
    assert ids(chat) == list(range(1, INITIAL_WINDOW + 4))
    assert not chat.earlier_button.isVisible()


def test_asking_for_an_old_message_builds_up_to_it_and_selects_it(qtbot, chat):
    chat.show_messages(stored(300))
    assert chat.scroll_to_message(7)
    qtbot.waitUntil(lambda: 7 in ids(chat), timeout=10_000)
    selected = [w.message_id for w in chat.message_widgets() if w.is_selected()]
    assert selected == [7]
    assert chat.unbuilt_messages() == 6  # built exactly as far as needed
    assert not chat.scroll_to_message(9999)


def test_leaving_a_long_conversation_deletes_its_bubbles_in_slices(qtbot, chat):
    import shiboken6

    chat.show_messages(stored(60))
    qtbot.waitUntil(lambda: len(chat.message_widgets()) == INITIAL_WINDOW, timeout=5000)
    old = chat.message_widgets()
    chat.show_messages(stored(2))
    assert ids(chat) == [1, 2]
    qtbot.waitUntil(lambda: not any(shiboken6.isValid(w) for w in old), timeout=5000)
