"""Writes from several threads, through one Store and through two."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from app.metrics import TurnMetrics
from app.storage import Store

PER_THREAD = 150


def run_threads(targets: list[Callable[[], None]]) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(len(targets))

    def wrapped(target: Callable[[], None]) -> None:
        try:
            start.wait()
            target()
        except BaseException as error:  # reported by the assert below
            errors.append(error)

    threads = [threading.Thread(target=wrapped, args=(t,)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []


def stream_turns(store: Store, conversation_id: int, tag: str) -> Callable[[], None]:
    """What the engine reader thread does: add, flush, finish with metrics."""

    def work() -> None:
        for i in range(PER_THREAD):
            reply = store.add_message(conversation_id, "assistant", "", partial=True)
            store.update_message_content(reply.id, f"{tag} {i} ...")
            store.finish_message(
                reply.id,
                f"{tag} {i}",
                partial=False,
                stop_reason="eos",
                metrics=TurnMetrics(output_tokens=i),
            )

    return work


def chat_and_browse(store: Store, conversation_id: int, tag: str) -> Callable[[], None]:
    """What the GUI thread does meanwhile: user messages, list, search, read."""

    def work() -> None:
        for i in range(PER_THREAD):
            store.add_message(conversation_id, "user", f"{tag} {i}")
            store.list_conversations(search=tag)
            store.messages(conversation_id)

    return work


def check(store: Store, conversation_id: int, tags: list[str]) -> None:
    messages = store.messages(conversation_id)
    assert len(messages) == len(tags) * PER_THREAD
    for tag in tags:
        mine = [m.content for m in messages if m.content.split()[0] == tag]
        # Each thread's messages are in its own order, interleaved with the other's.
        assert mine == [f"{tag} {i}" for i in range(PER_THREAD)]
    assert store.integrity_check() == "ok"


def test_one_store_shared_by_two_threads(store: Store) -> None:
    conversation = store.create_conversation()
    run_threads(
        [
            stream_turns(store, conversation.id, "engine"),
            chat_and_browse(store, conversation.id, "gui"),
        ]
    )
    check(store, conversation.id, ["engine", "gui"])
    assert len(store.turn_metrics(conversation.id)) == PER_THREAD


def test_two_stores_on_one_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    with Store.open(path) as first, Store.open(path) as second:
        conversation = first.create_conversation()
        run_threads(
            [
                stream_turns(first, conversation.id, "one"),
                stream_turns(second, conversation.id, "two"),
            ]
        )
        check(second, conversation.id, ["one", "two"])
