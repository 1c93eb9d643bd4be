"""FrameGate and the shared FrameTicker (ui/infra/frame_clock.py)."""

from __future__ import annotations

import time

from PySide6.QtCore import QObject

from ui.infra.frame_clock import FRAME_MS, FrameGate, FrameTicker


def test_requests_within_a_frame_fold_into_one_update(qtbot):
    calls: list[int] = []
    gate = FrameGate(lambda: calls.append(time.monotonic_ns()))
    for _ in range(50):
        gate.request()
    qtbot.waitUntil(lambda: len(calls) == 1, timeout=1000)
    gate.request()  # asked again at once: waits for the frame to be up
    qtbot.waitUntil(lambda: len(calls) == 2, timeout=1000)
    assert calls[1] - calls[0] >= (FRAME_MS - 3) * 1_000_000
    qtbot.wait(2 * FRAME_MS)
    assert len(calls) == 2  # nothing asked, nothing run


def test_gates_due_together_run_in_one_tick(qtbot):
    """The bridge drains and the chat and panel it asks redraw in the same tick, so their
    widgets are repainted in one pass."""
    ticker = FrameTicker.shared()
    order: list[str] = []
    chat = FrameGate(lambda: order.append("chat"))
    panel = FrameGate(lambda: order.append("panel"))

    def drain() -> None:
        order.append("bridge")
        chat.request()
        panel.request()

    bridge = FrameGate(drain)
    for _round in range(3):
        ticks = ticker.ticks
        order.clear()
        bridge.request()
        qtbot.waitUntil(lambda: len(order) == 3, timeout=1000)
        assert order == ["bridge", "chat", "panel"]
        assert ticker.ticks == ticks + 1
        qtbot.wait(FRAME_MS + 5)


def test_a_gate_deleted_with_its_view_while_due_is_skipped(qtbot):
    calls: list[str] = []
    owner = QObject()
    gate = FrameGate(lambda: calls.append("ran"), parent=owner)
    other = FrameGate(lambda: calls.append("other"))
    gate.run_now()  # its next run waits for the frame
    gate.request()
    other.request()
    owner.deleteLater()
    qtbot.waitUntil(lambda: "other" in calls, timeout=1000)
    qtbot.wait(2 * FRAME_MS)
    assert calls == ["ran", "other"]


def test_cancel_and_run_now(qtbot):
    calls: list[int] = []
    gate = FrameGate(lambda: calls.append(1))
    gate.run_now()
    gate.request()
    assert gate.pending()
    gate.cancel()
    assert not gate.pending()
    qtbot.wait(2 * FRAME_MS)
    assert calls == [1]
    gate.request()
    gate.run_now()  # folds the pending request in
    qtbot.wait(2 * FRAME_MS)
    assert calls == [1, 1] and gate.runs == 2
