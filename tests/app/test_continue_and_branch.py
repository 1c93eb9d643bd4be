"""Continue a reply cut at the token limit, and branch a conversation at an earlier message."""

from __future__ import annotations

import queue

import pytest

from app.branching import BRANCH_SUFFIX, branch_before
from app.engine import events as ev
from app.engine.local import LocalEngine
from app.session import ChatSession, ReplyStored
from app.settings import RuntimeSettings, SamplingSettings
from app.storage.store import Store

CUT = SamplingSettings(temperature=0.0, seed=1, max_tokens=8)


@pytest.fixture(scope="module")
def real_chat(bundled_model, tmp_path_factory):
    store = Store.open(tmp_path_factory.mktemp("continue") / "chat.sqlite3")
    events: queue.Queue = queue.Queue()
    engine = LocalEngine()
    session = ChatSession(engine, store, events.put)
    engine.load(bundled_model, RuntimeSettings(n_ctx=1024, n_threads=2))
    while not isinstance(events.get(timeout=60), ev.ModelLoaded):
        pass
    yield session, store, events
    engine.close()
    store.close()


def finished(events: queue.Queue, request_id: int) -> tuple[ev.TurnFinished, bool]:
    """The turn's TurnFinished, and whether a ReplyStored followed it."""
    end = None
    while True:
        event = events.get(timeout=60)
        if event.request_id != request_id:
            continue
        if isinstance(event, ev.TurnFinished):
            end = event
            try:
                follow = events.get(timeout=2)
            except queue.Empty:
                return end, False
            return end, isinstance(follow, ReplyStored) and follow.request_id == request_id


def test_continue_extends_a_cut_reply_in_place_from_where_it_stopped(real_chat):
    session, store, events = real_chat
    cid = store.create_conversation().id
    rid = session.send(cid, "Write a long story about a lighthouse keeper.", CUT)
    end, stored = finished(events, rid)
    assert end.metrics.stop_reason == "length" and stored
    before = store.messages(cid)[-1]
    assert before.role == "assistant" and before.content

    rid = session.continue_reply(cid, CUT)
    end, stored = finished(events, rid)
    assert stored and end.metrics.output_tokens
    after = store.messages(cid)
    assert len(after) == 2  # no new message: the same reply grew
    reply = after[-1]
    assert reply.id == before.id
    assert reply.content.startswith(before.content) and len(reply.content) > len(before.content)
    assert reply.content == before.content + end.text
    # The model went on from the reply itself: the prompt held it, mostly from the cache.
    assert end.metrics.prompt_tokens_cached and end.metrics.prompt_tokens_cached > 0
    assert reply.metrics is not None and reply.metrics.output_tokens == end.metrics.output_tokens


def test_continue_needs_a_reply_at_the_end(real_chat):
    session, store, _events = real_chat
    cid = store.create_conversation().id
    store.add_message(cid, "user", "hello")
    with pytest.raises(ValueError, match="reply to continue"):
        session.continue_reply(cid, CUT)


def test_a_continuation_cancelled_before_its_first_token_leaves_the_reply_as_it_was(real_chat):
    session, store, events = real_chat
    cid = store.create_conversation().id
    rid = session.send(cid, "Count slowly from one to fifty.", CUT)
    finished(events, rid)
    before = store.messages(cid)[-1]
    rid = session.engine.new_request_id()
    session.cancel(rid)  # cancelled before it is even submitted
    session.continue_reply(cid, CUT, request_id=rid)
    end, stored = finished(events, rid)
    assert end.metrics.stop_reason == "cancelled" and not stored
    after = store.messages(cid)[-1]
    assert (after.id, after.content, after.partial) == (before.id, before.content, False)
    assert after.metrics == before.metrics


def test_a_branch_copies_the_messages_before_one_and_keeps_the_original(tmp_path):
    from app.metrics import TurnMetrics

    with Store.open(tmp_path / "b.sqlite3") as store:
        source = store.create_conversation("Trip", system_prompt="Be brief.")
        store.add_message(source.id, "user", "first question")
        reply = store.add_message(source.id, "assistant", "", partial=True)
        store.finish_message(
            reply.id,
            "first answer",
            partial=False,
            stop_reason="eos",
            metrics=TurnMetrics(output_tokens=2, stop_reason="eos"),
        )
        second = store.add_message(source.id, "user", "second question")
        store.add_message(source.id, "assistant", "second answer")
        original = store.messages(source.id)

        branch = branch_before(store, source.id, second.id)
        copied = store.messages(branch.id)
        assert branch.id != source.id and branch.title == "Trip" + BRANCH_SUFFIX
        assert branch.system_prompt == "Be brief."
        assert [(m.role, m.content) for m in copied] == [
            ("user", "first question"),
            ("assistant", "first answer"),
        ]
        assert copied[1].metrics == original[1].metrics  # figures travel with the copy
        assert store.messages(source.id) == original  # the original is untouched
        # A branch of a branch is not "(branch) (branch)".
        assert branch_before(store, branch.id, copied[1].id).title == "Trip" + BRANCH_SUFFIX
        with pytest.raises(ValueError, match="not in conversation"):
            branch_before(store, branch.id, second.id)
