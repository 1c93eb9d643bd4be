"""Server > Serve OpenAI-compatible API in the real window: a client's request shows up
in the conversations list, the GUI still sees every event, and switching off stops it."""

from __future__ import annotations

import openai

TIMEOUT = 60_000


def _titles(window) -> list[str]:
    model = window.conversations.model
    return [model.data(model.index(row)) for row in range(model.rowCount())]


def test_toggle_serves_a_client_and_its_conversation_appears_in_the_list(qtbot, window):
    toggle = window.api_server
    toggle.port = 0  # any free port: tests may run beside a real Glassbox
    with qtbot.waitSignal(toggle.server_started, timeout=TIMEOUT) as started:
        toggle.action.trigger()
    url = started.args[0]
    assert toggle.action.isChecked()
    assert url in toggle.action.text()
    model_id = window.engine.model_info.model_path.rsplit("/", 1)[-1].removesuffix(".gguf")

    # The client blocks this (GUI) thread: the server must not need it to answer.
    with openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=120) as client:
        reply = client.chat.completions.create(
            model=model_id, messages=[{"role": "user", "content": "Say hi."}], max_tokens=6
        )
    assert reply.choices[0].message.content
    qtbot.waitUntil(lambda: "API · Say hi." in _titles(window), timeout=TIMEOUT)

    with qtbot.waitSignal(toggle.server_stopped, timeout=TIMEOUT):
        toggle.action.trigger()
    assert not toggle.action.isChecked()
    assert toggle.server is None


def test_a_port_in_use_unchecks_the_toggle_with_a_message(qtbot, window, monkeypatch):
    import socket

    from ui.chrome import api_server_toggle

    shown = []
    monkeypatch.setattr(api_server_toggle, "show_error", lambda _w, _t, text: shown.append(text))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        window.api_server.port = taken.getsockname()[1]
        with qtbot.waitSignal(window.api_server.start_failed, timeout=TIMEOUT) as failed:
            window.api_server.action.trigger()
    assert "cannot listen on 127.0.0.1" in failed.args[0]
    assert shown and "did not start" in shown[0]
    assert not window.api_server.action.isChecked()


def test_closing_the_window_while_serving_stops_the_server(qtbot, window):
    import socket

    toggle = window.api_server
    toggle.port = 0
    with qtbot.waitSignal(toggle.server_started, timeout=TIMEOUT):
        toggle.action.trigger()
    port = toggle.server.port
    window.close()  # the leak guard then checks that its threads are gone
    assert toggle.server is None
    with socket.socket() as again:
        again.bind(("127.0.0.1", port))  # the listening socket was closed


def test_a_served_turn_in_the_shown_conversation_shows_in_the_chat_and_panel(qtbot, window):
    toggle = window.api_server
    toggle.port = 0
    with qtbot.waitSignal(toggle.server_started, timeout=TIMEOUT) as started:
        toggle.action.trigger()
    url = started.args[0]
    model_id = window.engine.model_info.model_path.rsplit("/", 1)[-1].removesuffix(".gguf")
    history = [{"role": "user", "content": "Name a fruit."}]
    with openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=120) as client:
        first = client.chat.completions.create(model=model_id, messages=history, max_tokens=5)
        conversation_id = first.model_extra["glassbox"]["conversation_id"]
        with qtbot.waitSignal(window.controller.conversation_opened, timeout=TIMEOUT):
            window.controller.open_conversation(conversation_id)
        assert len(window.panel.turns()) == 1
        history += [
            {"role": "assistant", "content": first.choices[0].message.content},
            {"role": "user", "content": "Another one."},
        ]
        with qtbot.waitSignal(window.bridge.turn_started, timeout=TIMEOUT):
            second = client.chat.completions.create(model=model_id, messages=history, max_tokens=5)
    assert second.model_extra["glassbox"]["conversation_id"] == conversation_id
    qtbot.waitUntil(lambda: len(window.panel.turns()) == 2, timeout=TIMEOUT)
    roles = [w.role for w in window.chat.message_widgets()]
    assert roles == ["user", "assistant", "user", "assistant"]
    stored = window.store.turn_metrics(conversation_id)
    assert window.panel.turns() == stored
    with qtbot.waitSignal(toggle.server_stopped, timeout=TIMEOUT):
        toggle.action.trigger()
