"""Streaming costs per frame, not per token: token coalescing in the bridge, one chat
update per frame, Markdown rendered per finished block, plots drawn only when shown.

Synthetic events, no engine. No test here measures time: counts only.
"""

from __future__ import annotations

import pytest

from app.engine import events as ev
from ui.chat.markdown_blocks import BlockSplitter

REPLY = """# Plan

First paragraph with **bold** text
that wraps onto a second line.

- one item
- two items

```python
def f(x):

    return x * 2
```

~~~
plain fence
~~~

1. first
2. second

Last words, *emphasis* and `code`."""


def pieces(text: str, size: int = 3) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


# ---- block boundaries (no Qt) -------------------------------------------------------------


def test_splitter_cuts_after_finished_blocks_and_never_inside_a_fence():
    splitter = BlockSplitter()
    cuts = []
    for piece in pieces(REPLY, 1):
        if splitter.feed(piece):
            cuts.append(splitter.text[: splitter.stable])
    assert splitter.text == REPLY
    assert splitter.fence_start is None
    # The blank line inside the python block is code, not a paragraph break.
    assert not any(cut.endswith("def f(x):\n\n") for cut in cuts)
    assert any(cut.endswith("return x * 2\n```\n") for cut in cuts)
    assert any(cut.endswith("```python\n") for cut in cuts)
    assert any(cut.endswith("# Plan\n") for cut in cuts)
    # The paragraph's first line is not a block end; its blank line is.
    assert not any(cut.endswith("bold** text\n") for cut in cuts)


def test_splitter_reports_the_open_fence_and_its_language():
    splitter = BlockSplitter()
    splitter.feed("Intro\n\n```python\nx = 1\n")
    assert splitter.fence_language == "python"
    assert splitter.text[splitter.fence_start :].startswith("```python")
    splitter.feed("````\n")  # a longer closing fence closes it too
    assert splitter.fence_start is None and splitter.stable == len(splitter.text)


# ---- the bridge folds tokens into one batch per frame ----------------------------------------


def test_tokens_posted_within_a_frame_come_out_as_one_batch_before_the_next_event(qtbot):
    from ui.infra.bridge import EngineBridge

    bridge = EngineBridge()
    batches: list[list[int]] = []
    order: list[str] = []
    bridge.tokens_received.connect(lambda b: batches.append([t.index for t in b.tokens]))
    bridge.tokens_received.connect(lambda _b: order.append("tokens"))
    bridge.turn_finished.connect(lambda _e: order.append("finished"))
    for i in range(50):  # all before the GUI thread looks: within one frame
        bridge.post(ev.Token(request_id=7, index=i, text="x", t_ns=i))
    qtbot.waitUntil(lambda: bool(batches), timeout=2000)
    qtbot.wait(100)
    assert batches == [list(range(50))]

    for i in range(50, 60):
        bridge.post(ev.Token(request_id=7, index=i, text="x", t_ns=i))
    bridge.post(ev.TurnFinished(request_id=7))  # does not wait for the frame
    qtbot.waitUntil(lambda: "finished" in order, timeout=2000)
    assert batches[-1] == list(range(50, 60))
    assert order == ["tokens", "tokens", "finished"]


def test_tokens_of_two_requests_are_never_mixed_in_a_batch(qtbot):
    from ui.infra.bridge import EngineBridge

    bridge = EngineBridge()
    batches: list[tuple[int | None, int]] = []
    bridge.tokens_received.connect(lambda b: batches.append((b.request_id, len(b.tokens))))
    for rid in (1, 1, 2, 2, 2, 1):
        bridge.post(ev.Token(request_id=rid, text="x"))
    bridge.flush()
    assert batches == [(1, 2), (2, 3), (1, 1)]


# ---- the chat: one update per frame, Markdown per block ------------------------------------


@pytest.fixture
def chat(qtbot):
    from ui.chat.chat_view import ChatView

    view = ChatView()
    qtbot.addWidget(view)
    view.resize(600, 700)
    view.show()
    return view


def test_many_pieces_within_a_frame_make_one_chat_update(chat, qtbot):
    key = object()
    reply = chat.add_request(key, "hi")
    before = chat.chat_updates()
    for piece in pieces("Hello there, this is one frame's worth of tokens."):
        chat.append_reply_text(key, piece)
    qtbot.waitUntil(lambda: chat.chat_updates() > before, timeout=2000)
    qtbot.wait(100)
    assert chat.chat_updates() == before + 1
    assert reply.text() == "Hello there, this is one frame's worth of tokens."


def test_streamed_reply_renders_markdown_per_block_and_ends_as_a_full_render(chat, qtbot):
    from ui.chat.markdown_view import MessageBody, code_language

    full = MessageBody()
    qtbot.addWidget(full)
    full.resize(560, 400)
    full.set_markdown(REPLY)
    blocks = full.document().blockCount()

    key = object()
    reply = chat.add_request(key, "plan?")
    cut = REPLY.index("return x")  # inside the python fence
    for part in (REPLY[:cut], REPLY[cut:]):
        for piece in pieces(part, 2):
            chat.append_reply_text(key, piece)
            qtbot.wait(1)
        if part.endswith("    "):
            chat._frame.run_now()  # show what arrived, as the next frame would
            tail = reply.body.document().lastBlock()
            assert code_language(tail.blockFormat()) == "python"  # streams as code
            assert "```" not in reply.body.document().toPlainText()
    qtbot.waitUntil(lambda: reply.text() == REPLY, timeout=2000)
    streamed_renders = reply.body.render_count
    # One render per finished block at most (plus the first piece's), never one per piece.
    assert streamed_renders <= blocks + 1 < len(pieces(REPLY, 2))
    chat.finish_turn(key, None, partial=False, reason=None)
    assert reply.body.render_count == streamed_renders + 1
    assert reply.body.document().toHtml() == full.document().toHtml()


def test_final_text_from_the_engine_replaces_the_streamed_tail(chat, qtbot):
    key = object()
    reply = chat.add_request(key, "hi")
    chat.append_reply_text(key, "Answer: **yes**\n\nand a stop stri")
    qtbot.waitUntil(lambda: reply.text().endswith("stri"), timeout=2000)
    chat.finish_turn(key, "Answer: **yes**", partial=False, reason=None)
    assert reply.text() == "Answer: **yes**"
    assert reply.body.document().toPlainText() == "Answer: yes"


# ---- plots: drawn only when shown and changed ----------------------------------------------


def curve_points(plot) -> int:
    return len(plot.points()[0])


def test_hidden_panel_draws_nothing_and_catches_up_when_shown(qtbot):
    from app.metrics import TurnMetrics
    from ui.internals.panel import InternalsPanel

    panel = InternalsPanel()
    qtbot.addWidget(panel)
    panel.resize(560, 900)
    panel.show()
    qtbot.wait(100)
    panel.hide()
    before = panel.redraw_count
    panel.begin_live(ev.TurnStarted(t_ns=1_000_000, prompt_tokens=10, prompt_tokens_cached=0))
    panel.add_tokens([1_000_000 + i * 7_000_000 for i in range(1, 101)])
    turn = TurnMetrics(queue_ms=1.0, ttft_ms=90.0, prefill_tok_s=300.0, decode_tok_s=120.0)
    panel.set_turns([(10 + i, turn) for i in range(3)])
    qtbot.wait(200)  # several frames
    assert panel.redraw_count == before
    assert curve_points(panel.tokens_plot) == 0

    panel.show()
    qtbot.waitUntil(
        lambda: (
            curve_points(panel.tokens_plot) == 100
            and panel.rate_plot.n_turns == 3
            and panel.kv_plot.n_turns == 3
        ),
        timeout=3000,
    )
    drawn = panel.redraw_count
    qtbot.wait(200)  # nothing changed: nothing drawn
    assert panel.redraw_count == drawn


def test_live_strip_is_drawn_once_for_tokens_within_a_frame(qtbot):
    from ui.internals.panel import InternalsPanel

    panel = InternalsPanel()
    qtbot.addWidget(panel)
    panel.resize(560, 900)
    panel.show()
    qtbot.wait(100)
    before = panel.redraw_count
    panel.begin_live(ev.TurnStarted(t_ns=1, prompt_tokens=10, prompt_tokens_cached=0))
    for i in range(1, 41):
        panel.add_tokens([1 + i * 5_000_000])
    qtbot.waitUntil(lambda: panel.live_token_count() == 40 and panel.redraw_count > before)
    qtbot.wait(150)
    # The live strip drawn once for all 40 tokens: one frame.
    assert panel.redraw_count == before + 1
    assert curve_points(panel.tokens_plot) == 40
    assert len(panel.itl_plot.points()[1]) == 39
