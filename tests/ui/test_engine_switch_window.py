"""The window changes engines at run time (app.engine.switching): a saved endpoint chosen in
the model dropdown serves the chat from a server, the local model chosen again brings the
local engine back, and parallel sequences set in the settings batch the window's turns. The
conversation stays, and the GUI thread never waits on the swap."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from remote_servers import WORDS, StubHttpServer

TIMEOUT = 60_000


@pytest.fixture
def stub_server() -> Iterator[StubHttpServer]:
    server = StubHttpServer(slots=True, metrics=True)
    yield server
    server.close()


def choose(picker, data: str) -> None:
    """What a user's pick in the dropdown sends."""
    index = picker.combo.findData(data)
    assert index >= 0, data
    picker.combo.setCurrentIndex(index)
    picker.combo.activated.emit(index)


def send_and_wait(qtbot, win, text: str):
    with qtbot.waitSignal(win.controller.turns_reloaded, timeout=TIMEOUT):
        win.controller.send(text)
    return win.store.messages(win.controller.conversation_id)


def test_picking_a_saved_endpoint_and_the_local_model_again_keeps_the_conversation(
    qtbot, window, model_path, stub_server, heartbeat
):
    from app.endpoints import Endpoint, save_endpoints

    win, picker = window, window.model_picker
    save_endpoints([Endpoint(stub_server.url, model="vllm", name="stub")])
    picker.refresh()
    qtbot.waitUntil(lambda: picker.endpoint_choices() == ["endpoint:stub"], timeout=TIMEOUT)
    assert "stub (vllm)" in picker.combo.itemText(picker.combo.findData("endpoint:stub"))
    local = send_and_wait(qtbot, win, "Hi")
    conversation = win.controller.conversation_id

    with heartbeat, qtbot.waitSignal(win.controller.model_ready, timeout=TIMEOUT) as ready:
        choose(picker, "endpoint:stub")
    assert ready.args[0].backend == "remote" and win.engine.kind == "remote"
    assert picker.combo.currentData() == "endpoint:stub"
    assert heartbeat.max_gap_ms < 50, f"event loop stalled {heartbeat.max_gap_ms:.0f} ms"
    remote = send_and_wait(qtbot, win, "hello there")
    assert win.controller.conversation_id == conversation
    assert remote[: len(local)] == local and remote[-1].content == "".join(WORDS)
    assert remote[-1].model == "vllm" and stub_server.bodies[-1]["messages"][0]["content"] == "Hi"
    assert win.settings.model_path == model_path  # the server is not remembered as a file

    with heartbeat, qtbot.waitSignal(win.controller.model_ready, timeout=TIMEOUT) as ready:
        choose(picker, model_path)
    assert ready.args[0].model_path == model_path and win.engine.kind == "local"
    assert heartbeat.max_gap_ms < 50, f"event loop stalled {heartbeat.max_gap_ms:.0f} ms"
    again = send_and_wait(qtbot, win, "And now?")
    assert again[: len(remote)] == remote and again[-1].content and not again[-1].partial
    assert picker.combo.currentData() == model_path


def test_parallel_sequences_from_the_settings_batch_the_windows_turns(qtbot, window):
    from app.engine.batched import BatchedEngine

    win = window
    long_replies = win.settings.sampling.with_changes(max_tokens=64)
    with qtbot.waitSignal(win.controller.model_ready, timeout=TIMEOUT):
        win.controller.apply_settings(win.settings.runtime.with_changes(n_parallel=2), long_replies)
    assert isinstance(win.engine.serving, BatchedEngine) and win.engine.n_parallel == 2
    assert win.engine.model_info.settings["n_parallel"] == 2
    order: list[str] = []
    win.bridge.turn_started.connect(lambda _e: order.append("started"))
    win.bridge.turn_finished.connect(lambda _e: order.append("finished"))
    stored: list[object] = []
    win.controller.reply_stored.connect(stored.append)
    first = win.controller.conversation_id
    win.controller.send("Write a long story about a dragon.")
    with qtbot.waitSignal(win.controller.conversation_opened, timeout=TIMEOUT):
        win.controller.new_conversation()  # the first reply streams on meanwhile
    assert win.controller.conversation_id != first
    win.controller.send("Write a long story about a cat.")
    # Generous: on a shared 2-core machine two workers' threads contend for the cores.
    qtbot.waitUntil(lambda: len(stored) == 2, timeout=3 * TIMEOUT)
    assert order[:2] == ["started", "started"]  # both decoding before either finished
    for conversation in (first, win.controller.conversation_id):
        reply = win.store.messages(conversation)[-1]
        assert reply.role == "assistant" and reply.content and not reply.partial
        assert reply.runtime_settings["n_parallel"] == 2


def test_a_batched_worker_killed_mid_reply_shows_the_banner_and_restarts(qtbot, window):
    import os
    import signal

    win = window
    long_replies = win.settings.sampling.with_changes(max_tokens=400, temperature=0.7)
    with qtbot.waitSignal(win.controller.model_ready, timeout=TIMEOUT):
        win.controller.apply_settings(win.settings.runtime.with_changes(n_parallel=2), long_replies)
    win.controller.send("Write a long story about a dragon.")
    qtbot.waitUntil(lambda: win.panel.live_token_count() >= 5, timeout=TIMEOUT)
    with qtbot.waitSignal(win.bridge.engine_crashed, timeout=TIMEOUT):
        os.kill(win.engine.worker_pid, signal.SIGKILL)
    qtbot.waitUntil(lambda: not win.controller.busy(), timeout=TIMEOUT)
    assert win.banner.isVisible() and "SIGKILL" in win.banner.title.text()
    reply = win.chat.message_widgets()[-1]
    assert reply.partial and "engine crashed" in reply.status()
    with qtbot.waitSignal(win.controller.model_ready, timeout=TIMEOUT):
        win.banner.restart_button.click()
    assert not win.banner.isVisible() and win.engine.n_parallel == 2
    win.settings.sampling = win.settings.sampling.with_changes(max_tokens=8)
    again = send_and_wait(qtbot, win, "Are you back?")
    assert again[-1].content and not again[-1].partial
