"""Conversations and messages: round trips, ordering, search, soft delete."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from app.errors import GlassboxError
from app.storage import NotFoundError, Store


def test_default_path_follows_glassbox_home(store: Store, glassbox_home: Path) -> None:
    assert store.path == glassbox_home / "glassbox.sqlite3"
    assert store.path.is_file()


def test_conversation_round_trip_survives_reopen(store: Store) -> None:
    created = store.create_conversation("Trip plans", system_prompt="Be brief.")
    assert created.title == "Trip plans"
    assert created.deleted_at is None
    assert store.get_conversation(created.id) == created

    store.close()
    with Store.open(store.path) as reopened:
        assert reopened.get_conversation(created.id) == created
        assert reopened.list_conversations() == [created]


def test_default_title_and_unknown_id(store: Store) -> None:
    conversation = store.create_conversation()
    assert conversation.title == "New conversation"
    assert conversation.system_prompt == ""
    assert store.get_conversation(conversation.id + 1000) is None


def test_rename_and_system_prompt(store: Store) -> None:
    conversation = store.create_conversation()
    store.rename_conversation(conversation.id, "Renamed")
    store.set_system_prompt(conversation.id, "You are a pirate.")
    loaded = store.get_conversation(conversation.id)
    assert loaded is not None
    assert loaded.title == "Renamed"
    assert loaded.system_prompt == "You are a pirate."
    assert loaded.updated_at >= conversation.updated_at


def test_list_is_newest_updated_first(store: Store) -> None:
    older = store.create_conversation("older")
    newer = store.create_conversation("newer")
    assert [c.id for c in store.list_conversations()] == [newer.id, older.id]
    store.add_message(older.id, "user", "bump")
    assert [c.id for c in store.list_conversations()] == [older.id, newer.id]


def test_messages_round_trip_in_order(store: Store) -> None:
    conversation = store.create_conversation()
    system = store.add_message(conversation.id, "system", "Be brief.")
    user = store.add_message(conversation.id, "user", "Grüße, 你好 \U0001f600\nsecond line")
    reply = store.add_message(conversation.id, "assistant", "", partial=True)
    assert reply.partial is True
    assert reply.stop_reason is None

    loaded = store.messages(conversation.id)
    assert [m.id for m in loaded] == [system.id, user.id, reply.id]
    assert loaded[0] == system
    assert loaded[1] == user
    assert loaded[2] == reply
    assert [m.role for m in loaded] == ["system", "user", "assistant"]
    assert all(m.metrics is None and m.model is None for m in loaded)


def test_update_and_finish_message(store: Store) -> None:
    conversation = store.create_conversation()
    reply = store.add_message(conversation.id, "assistant", "", partial=True)
    store.update_message_content(reply.id, "Hel")
    store.update_message_content(reply.id, "Hello")
    (loaded,) = store.messages(conversation.id)
    assert (loaded.content, loaded.partial) == ("Hello", True)

    store.finish_message(reply.id, "Hello there.", partial=False, stop_reason="eos")
    (loaded,) = store.messages(conversation.id)
    assert (loaded.content, loaded.partial, loaded.stop_reason) == ("Hello there.", False, "eos")
    assert loaded.metrics is None


def test_delete_message(store: Store) -> None:
    conversation = store.create_conversation()
    keep = store.add_message(conversation.id, "user", "keep")
    drop = store.add_message(conversation.id, "user", "drop")
    store.delete_message(drop.id)
    assert [m.id for m in store.messages(conversation.id)] == [keep.id]
    with pytest.raises(NotFoundError):
        store.delete_message(drop.id)


def test_invalid_role_is_rejected(store: Store) -> None:
    conversation = store.create_conversation()
    with pytest.raises(ValueError, match="role must be one of"):
        store.add_message(conversation.id, "tool", "x")
    assert store.messages(conversation.id) == []


def test_unknown_ids_raise_not_found(store: Store) -> None:
    missing = 4242
    calls: list[Callable[[], object]] = [
        lambda: store.add_message(missing, "user", "x"),
        lambda: store.rename_conversation(missing, "x"),
        lambda: store.set_system_prompt(missing, "x"),
        lambda: store.delete_conversation(missing),
        lambda: store.restore_conversation(missing),
        lambda: store.messages(missing),
        lambda: store.turn_metrics(missing),
        lambda: store.update_message_content(missing, "x"),
        lambda: store.finish_message(missing, "x", partial=False, stop_reason="eos"),
        lambda: store.delete_message(missing),
    ]
    for call in calls:
        with pytest.raises(NotFoundError) as caught:
            call()
        # Catchable both ways; the message is a plain sentence, not KeyError's quoted repr.
        assert isinstance(caught.value, KeyError)
        assert isinstance(caught.value, GlassboxError)
        assert str(caught.value) in (
            f"no conversation with id {missing}",
            f"no message with id {missing}",
        )


def test_search_matches_title_or_content_case_insensitively(store: Store) -> None:
    pasta = store.create_conversation("Pasta recipes")
    physics = store.create_conversation("Homework")
    store.add_message(physics.id, "user", "Explain the ÄRGER of Schrödinger's cat")
    store.add_message(physics.id, "assistant", "It is 100% alive and dead.")
    other = store.create_conversation("Other")
    store.add_message(other.id, "user", "nothing here")

    assert [c.id for c in store.list_conversations("pasta")] == [pasta.id]
    assert [c.id for c in store.list_conversations("SCHRÖDINGER")] == [physics.id]
    assert [c.id for c in store.list_conversations("ärger")] == [physics.id]
    assert [c.id for c in store.list_conversations("100%")] == [physics.id]
    # % and _ are literal text, not LIKE wildcards.
    assert store.list_conversations("1_0") == []
    assert store.list_conversations("no such words") == []
    assert len(store.list_conversations("")) == 3


def test_soft_delete_restore_and_purge(store: Store) -> None:
    keep = store.create_conversation("keep")
    gone = store.create_conversation("gone")
    message = store.add_message(gone.id, "user", "searchable words")

    store.delete_conversation(gone.id)
    assert [c.id for c in store.list_conversations()] == [keep.id]
    assert store.list_conversations("searchable") == []
    deleted = store.get_conversation(gone.id)
    assert deleted is not None and deleted.deleted_at is not None
    # Still readable while it waits for undo.
    assert [m.id for m in store.messages(gone.id)] == [message.id]

    store.restore_conversation(gone.id)
    restored = store.get_conversation(gone.id)
    assert restored is not None and restored.deleted_at is None
    assert {c.id for c in store.list_conversations()} == {keep.id, gone.id}
    assert [c.id for c in store.list_conversations("searchable")] == [gone.id]

    store.delete_conversation(gone.id)
    store.purge_deleted()
    assert store.get_conversation(gone.id) is None
    assert store.get_conversation(keep.id) is not None
    with pytest.raises(NotFoundError):
        store.messages(gone.id)
