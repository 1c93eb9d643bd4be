"""The token view on a real session: figures from the decode loop, stored with the reply.

With the switch on, the session asks the engine for token probabilities, the
reply's are stored with it, and the view draws them without a second copy of
the model; a reply sent while the switch was off is scored afterwards, and the
view says which source it shows. Branching still regenerates from a token.
"""

from __future__ import annotations

import queue

from PySide6.QtCore import QUrl

from app.engine import events as ev
from app.engine.switching import EngineSwitch
from app.session import ChatSession
from app.settings import RuntimeSettings, SamplingSettings
from app.storage.store import Store

from helpers import until_stored

GREEDY = SamplingSettings(temperature=0.0, repeat_penalty=1.0, max_tokens=16, seed=0)


def _show(inside, seen: list[ev.EngineEvent]) -> None:
    """The panel's live calls for one turn, from the turn's real events."""
    inside.begin_live(next(e for e in seen if isinstance(e, ev.TurnStarted)))
    inside.add_tokens([e.t_ns for e in seen if isinstance(e, ev.Token)])
    inside.end_live(next(e for e in seen if isinstance(e, ev.TurnFinished)).metrics)


def test_the_view_draws_the_decode_loops_figures_then_scores_an_older_reply(
    qtbot, bundled_model, tmp_path
):
    from PySide6.QtWidgets import QMainWindow

    from ui.chrome.token_inspector import TokenInspector
    from ui.internals.panel import InternalsPanel
    from ui.internals.token_view import SOURCE_DECODE_LOOP, SOURCE_SCORED

    store = Store.open(tmp_path / "chat.sqlite3")
    events: queue.Queue = queue.Queue()
    engine = EngineSwitch()
    session = ChatSession(engine, store, events.put)
    engine.load(bundled_model, RuntimeSettings(n_ctx=1024, n_threads=2))
    while not isinstance(events.get(timeout=120), ev.ModelLoaded):
        pass
    conversation = store.create_conversation("t").id

    class Controller:
        conversation_id = conversation

    window = QMainWindow()
    qtbot.addWidget(window)
    panel = InternalsPanel()
    window.setCentralWidget(panel)
    inspector = TokenInspector(session, Controller(), engine, panel, lambda: None, window)
    view = panel.inside.token_view
    try:
        assert session.top_logprobs == 0  # off: turns ask for nothing
        view.switch.setChecked(True)
        assert session.top_logprobs == 10
        seen = until_stored(events, session.send(conversation, "Name three fruits.", GREEDY), 120)
        stored = store.reply_tokens(seen[-1].message_id)
        finished = next(e for e in seen if isinstance(e, ev.TurnFinished))
        assert stored is not None and len(stored) == finished.metrics.output_tokens
        _show(panel.inside, seen)
        qtbot.waitUntil(lambda: inspector.source == SOURCE_DECODE_LOOP, timeout=60_000)
        assert view.tokens == stored
        assert "decode loop" in view.source.text()
        assert inspector.scorer is None  # no second copy of the model was needed
        assert all(t["top"][0]["id"] == t["id"] for t in view.tokens)  # greedy, no penalty
        view._on_text_highlighted(QUrl("t:0"))
        assert "temperature 0.0" in view.last_tooltip  # the settings stored with the reply

        # Branching from one of them regenerates in the scoring process.
        view.select(1)
        view._on_alternatives_item_clicked(view.alternatives.item(1))
        qtbot.waitUntil(lambda: "Branch from token 2" in view.branch.text(), timeout=300_000)
        assert "could not branch" not in view.branch.text()

        # Off: the next reply asks for nothing and stores none.
        view.switch.setChecked(False)
        assert session.top_logprobs == 0
        inspector.tasks.wait(60)
        assert inspector.scorer is None
        seen = until_stored(events, session.send(conversation, "And three colours?", GREEDY), 120)
        assert store.reply_tokens(seen[-1].message_id) is None
        assert all(e.logprob is None for e in seen if isinstance(e, ev.Token))
        _show(panel.inside, seen)

        # On again: that reply has none stored, so it is scored afterwards, and said so.
        view.switch.setChecked(True)
        qtbot.waitUntil(lambda: inspector.source == SOURCE_SCORED, timeout=300_000)
        reply = store.messages(conversation)[-1].content
        assert "".join(t["text"] for t in view.tokens) == reply
        assert "Scored after the turn" in view.source.text()
        view.switch.setChecked(False)
        inspector.tasks.wait(60)
        assert inspector.scorer is None
    finally:
        inspector.stop()
        engine.close()
        store.close()


def test_a_token_the_settings_chose_over_the_favourite_says_so(qtbot):
    from ui.internals.token_view import SOURCE_DECODE_LOOP, TokenView

    view = TokenView()
    qtbot.addWidget(view)
    favourite = {"id": 5, "text": " cat", "logprob": -0.2}
    chosen = {"id": 6, "text": " dog", "logprob": -1.9}
    tokens = [
        {"id": 6, "text": " dog", "logprob": -1.9, "top": [favourite, chosen]},
        {"id": 5, "text": " cat", "logprob": -0.2, "top": [favourite, chosen]},
    ]
    view.set_tokens(tokens, {"temperature": 0.0, "repeat_penalty": 1.1}, SOURCE_DECODE_LOOP)
    assert view.source.text() == "Computed in the decode loop as each token was drawn."
    view._on_text_highlighted(QUrl("t:0"))
    assert "chose it over the most probable, ' cat'" in view.last_tooltip
    assert "repeat_penalty 1.1" in view.last_tooltip
    view._on_text_highlighted(QUrl("t:1"))
    assert "most probable" not in view.last_tooltip
    view.set_status("Token probabilities are off.")
    assert view.source.text() == ""
