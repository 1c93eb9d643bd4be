"""A long history in the real window: opening 1,000 turns with stored metrics keeps the event loop running."""

from __future__ import annotations

import sqlite3
import time

import pytest

from app.metrics import FIELD_NAMES

TURNS = 1_000


def write_long_conversation(db_path, turns: int) -> int:
    """Straight into the app's database file (the Store's schema and triggers apply)."""
    from app.storage import Store

    Store.open(db_path).close()
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        now = time.time()
        conn.execute("BEGIN")
        cid = conn.execute(
            "INSERT INTO conversations (title, created_at, updated_at) VALUES ('long', ?, ?)",
            (now, now),
        ).lastrowid
        columns = ", ".join(FIELD_NAMES)
        marks = ", ".join("?" * len(FIELD_NAMES))
        for turn in range(turns):
            conn.execute(
                "INSERT INTO messages (conversation_id, role, content, created_at) "
                "VALUES (?, 'user', ?, ?)",
                (cid, f"Question {turn}: tell me about lighthouses.", now),
            )
            reply = conn.execute(
                "INSERT INTO messages (conversation_id, role, content, created_at) "
                "VALUES (?, 'assistant', ?, ?)",
                (cid, f"Answer {turn}. " + "A lighthouse keeper keeps the light. " * 12, now),
            ).lastrowid
            figures = dict.fromkeys(FIELD_NAMES)
            figures.update(
                ttft_ms=50.0 + turn % 40,
                prefill_ms=45.0,
                queue_ms=1.0,
                prompt_tokens=100 + turn,
                prompt_tokens_cached=90 + turn,
                prompt_tokens_evaluated=10,
                prefill_tok_s=300.0,
                output_tokens=120,
                decode_ms=900.0,
                decode_tok_s=130.0 + turn % 7,
                kv_cells_used=min(4096, 220 + turn),
                kv_cells_total=4096,
                kv_fill=min(1.0, (220 + turn) / 4096),
                stop_reason="eos",
                total_ms=1000.0,
            )
            conn.execute(
                f"INSERT INTO turn_metrics (message_id, {columns}, created_at) "
                f"VALUES (?, {marks}, ?)",
                (reply, *figures.values(), now),
            )
        conn.execute("COMMIT")
    finally:
        conn.close()
    return int(cid)


# The offscreen platform says this when the window's size limits change; here they change
# while thousands of message widgets are laid out.
@pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")
def test_opening_a_1000_turn_conversation_keeps_the_event_loop_running(
    qtbot, glassbox_home, heartbeat
):
    from app.gui_settings import GuiSettings
    from ui.startup import build_window

    long_id = write_long_conversation(glassbox_home / "glassbox.sqlite3", TURNS)
    win = build_window(GuiSettings())
    qtbot.addWidget(win)
    win.show()
    try:
        with qtbot.waitSignal(win.controller.conversation_opened, timeout=60_000):
            win.start(None)  # no model: the history alone
        assert win.controller.conversation_id == long_id
        with qtbot.waitSignal(win.controller.conversation_opened, timeout=60_000):
            win.controller.new_conversation()
        with heartbeat:
            with qtbot.waitSignal(win.controller.conversation_opened, timeout=120_000):
                win.conversations.view.setCurrentIndex(
                    win.conversations.model.index(win.conversations.model.row_of(long_id))
                )
            qtbot.wait(1000)  # the panel draws its plots one per frame after opening
        assert len(win.panel.turns()) == TURNS
        assert heartbeat.max_gap_ms < 50, (
            f"event loop stalled {heartbeat.max_gap_ms:.0f} ms opening {TURNS} turns"
        )
    finally:
        win.close()
