"""The window on a RemoteEngine (`glassbox --endpoint URL`): the same chat, turns and metrics."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from remote_servers import WORDS, StubHttpServer

TIMEOUT = 20_000


@pytest.fixture
def stub_server() -> Iterator[StubHttpServer]:
    server = StubHttpServer(slots=True, metrics=True)
    yield server
    server.close()


@pytest.fixture
def remote_window(qtbot, glassbox_home, stub_server) -> Iterator:
    from app.endpoints import Endpoint
    from app.engine.remote import RemoteEngine
    from app.gui_settings import GuiSettings
    from ui.startup import build_window

    settings = GuiSettings()
    engine = RemoteEngine(Endpoint(stub_server.url, model="vllm"))
    win = build_window(settings, engine=engine)
    qtbot.addWidget(win)
    win.show()
    with qtbot.waitSignals(
        [win.controller.model_ready, win.controller.conversation_opened], timeout=TIMEOUT
    ):
        win.start(stub_server.url)
    yield win
    win.close()


def _stored_reply(win):
    messages = win.store.messages(win.controller.conversation_id)
    last = messages[-1] if messages else None
    return last if last is not None and last.role == "assistant" and last.stop_reason else None


def test_a_remote_reply_streams_and_is_stored_with_the_servers_figures(qtbot, remote_window):
    win = remote_window
    with qtbot.waitSignal(win.controller.turns_reloaded, timeout=TIMEOUT):
        win.controller.send("hello there")
    stored = _stored_reply(win)
    assert stored.content == "".join(WORDS) and not stored.partial
    metrics = stored.metrics
    assert (metrics.prompt_tokens, metrics.output_tokens, metrics.kv_fill) == (12, 4, 0.25)
    assert metrics.ttft_ms is not None and metrics.prefill_ms is None  # not reported: unknown
    assert win.status.state() == "ready"
    assert stored.model == "vllm"
    assert stored.runtime_settings["endpoint"] == win.engine.endpoint.root
    # The server's URL is not remembered as the model file to open next time.
    assert win.settings.model_path is None


def test_the_chat_menu_opens_the_load_experiment_on_the_same_server(qtbot, remote_window):
    from ui.dialogs.load_dialog import LoadDialog

    win = remote_window
    (action,) = [
        a
        for m in win.menuBar().actions()
        if m.menu() is not None
        for a in m.menu().actions()
        if "Load experiment" in a.text()
    ]
    action.trigger()
    (dialog,) = win.findChildren(LoadDialog)
    assert dialog.source.endpoint == win.engine.endpoint and dialog.source.modes == ("remote",)
    dialog.concurrency.setText("2")
    dialog.start_button.click()
    qtbot.waitUntil(lambda: dialog.start_button.isEnabled(), timeout=TIMEOUT)
    assert [len(r.requests) for r in dialog.runs] == [2]
    dialog.close()
