"""Branching a conversation: editing or regenerating an earlier message keeps the original.

Changing message N of a conversation would make every later message answer
something that was never said. Instead the messages before N are copied, with
their metrics and settings, into a new conversation (the branch), and the edit
or the new reply happens there; the original stays as it was.
"""

from __future__ import annotations

import time

from app.storage.store import Conversation, Store

BRANCH_SUFFIX = " (branch)"


def branch_before(store: Store, conversation_id: int, message_id: int) -> Conversation:
    """A new conversation holding copies of the messages before `message_id`.

    Raises ValueError when the message is not in the conversation, or when nothing
    would precede it in the branch for the model to answer.
    """
    conversation = store.get_conversation(conversation_id)
    if conversation is None:
        raise ValueError(f"no conversation {conversation_id}")
    messages = store.messages(conversation_id)
    index = next((i for i, m in enumerate(messages) if m.id == message_id), None)
    if index is None:
        raise ValueError(f"message {message_id} is not in conversation {conversation_id}")
    kept = messages[:index]
    if messages[index].role == "assistant" and not any(m.role == "user" for m in kept):
        raise ValueError("that reply answers no user message")
    title = conversation.title
    if not title.endswith(BRANCH_SUFFIX):
        title += BRANCH_SUFFIX
    now = time.time()
    # The branch answers with the same sampling settings as its original.
    overrides = store.sampling_overrides(conversation_id)
    return store.import_conversation(
        title, conversation.system_prompt, now, now, kept, sampling_overrides=overrides
    )
