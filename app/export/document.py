"""One exported conversation as plain data: what JSON holds and CSV and HTML are made from.

Message ids are not exported (they belong to one database); order is the list order.
Timestamps are seconds since the epoch, as stored, so an import keeps them exactly.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from app.conversation_settings import apply_overrides, clean_overrides, to_json_overrides
from app.errors import GlassboxError
from app.metrics import FIELD_NAMES, TurnMetrics
from app.settings import SamplingSettings
from app.storage.store import ROLES, Conversation, Message, Store

FORMAT_NAME = "glassbox-conversation"
FORMAT_VERSION = 1


class ExportError(GlassboxError):
    """A conversation cannot be exported, or a file cannot be imported."""


@dataclass
class ConversationDocument:
    title: str
    system_prompt: str
    created_at: float
    updated_at: float
    messages: list[Message]
    source_id: int | None = None  # the conversation's id in the database it came from
    exported_at: float = field(default_factory=time.time)
    # The sampling fields the conversation overrides (app.conversation_settings); an
    # optional key, so version 1 readers without it still read the file.
    sampling_overrides: dict[str, Any] | None = None

    def turns(self) -> list[tuple[int, Message]]:
        """(turn number from 1, assistant message) for every reply, in order."""
        replies = [m for m in self.messages if m.role == "assistant"]
        return list(enumerate(replies, start=1))

    def turn_metrics(self) -> list[TurnMetrics]:
        """Per-turn metrics; a reply without a metrics row counts as all-unknown."""
        return [m.metrics or TurnMetrics() for _, m in self.turns()]

    def models(self) -> list[str]:
        return sorted({m.model for m in self.messages if m.model})

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "exported_at": self.exported_at,
            "metrics_fields": list(FIELD_NAMES),
            "conversation": {
                "id": self.source_id,
                "title": self.title,
                "system_prompt": self.system_prompt,
                "created_at": self.created_at,
                "updated_at": self.updated_at,
                "models": self.models(),
                "sampling_overrides": self.sampling_overrides,
            },
            "messages": [_message_to_dict(m) for m in self.messages],
        }

    @classmethod
    def from_dict(cls, data: object) -> ConversationDocument:
        """Checked: anything malformed is an ExportError naming what is wrong."""
        if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
            raise ExportError(f"not a Glassbox conversation export (no format {FORMAT_NAME!r})")
        version = data.get("version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ExportError(
                f"export format version {version!r} is newer than this Glassbox reads "
                f"({FORMAT_VERSION}); update Glassbox"
            )
        conversation = _require(data, "conversation", dict, "the file")
        messages = _require(data, "messages", list, "the file")
        return cls(
            title=_require(conversation, "title", str, "conversation"),
            system_prompt=_require(conversation, "system_prompt", str, "conversation"),
            created_at=float(_require(conversation, "created_at", (int, float), "conversation")),
            updated_at=float(_require(conversation, "updated_at", (int, float), "conversation")),
            messages=[_message_from_dict(m, i) for i, m in enumerate(messages, start=1)],
            source_id=conversation.get("id") if isinstance(conversation.get("id"), int) else None,
            exported_at=float(data.get("exported_at") or 0.0),
            sampling_overrides=_overrides_from(conversation.get("sampling_overrides")),
        )


def resolve_conversation(store: Store, which: str) -> Conversation:
    """`which` is a conversation id or "latest" (the most recently updated, not deleted)."""
    if which == "latest":
        listed = store.list_conversations()
        if not listed:
            raise ExportError("there are no conversations yet")
        return listed[0]
    try:
        conversation_id = int(which)
    except ValueError:
        raise ExportError(f"conversation must be an id or 'latest', got {which!r}") from None
    conversation = store.get_conversation(conversation_id)
    if conversation is None:
        raise ExportError(f"no conversation with id {conversation_id}")
    return conversation


def document_from_store(store: Store, conversation: Conversation) -> ConversationDocument:
    return ConversationDocument(
        title=conversation.title,
        system_prompt=conversation.system_prompt,
        created_at=conversation.created_at,
        updated_at=conversation.updated_at,
        messages=store.messages(conversation.id),
        source_id=conversation.id,
        sampling_overrides=_stored_overrides(store, conversation.id),
    )


def _stored_overrides(store: Store, conversation_id: int) -> dict[str, Any] | None:
    # Unreadable stored overrides must not stop the export of the messages.
    try:
        return store.sampling_overrides(conversation_id)
    except GlassboxError:
        return None


def _overrides_from(value: object) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ExportError(f"conversation: sampling_overrides must be an object, got {value!r}")
    try:
        cleaned = clean_overrides(value)
        apply_overrides(SamplingSettings(), cleaned)  # refused here rather than at a send
    except GlassboxError as exc:
        raise ExportError(f"conversation: sampling_overrides: {exc}") from None
    return to_json_overrides(cleaned) or None


def _message_to_dict(m: Message) -> dict[str, Any]:
    return {
        "role": m.role,
        "content": m.content,
        "created_at": m.created_at,
        "partial": m.partial,
        "stop_reason": m.stop_reason,
        "model": m.model,
        "runtime_settings": m.runtime_settings,
        "sampling_settings": m.sampling_settings,
        "metrics": m.metrics.to_dict() if m.metrics is not None else None,
    }


def _message_from_dict(data: object, index: int) -> Message:
    where = f"message {index}"
    if not isinstance(data, dict):
        raise ExportError(f"{where} is not an object")
    role = _require(data, "role", str, where)
    if role not in ROLES:
        raise ExportError(f"{where}: role must be one of {', '.join(ROLES)}, got {role!r}")
    metrics = data.get("metrics")
    if metrics is not None and not isinstance(metrics, dict):
        raise ExportError(f"{where}: metrics must be an object or null")
    unknown = set(metrics or {}) - set(FIELD_NAMES)
    if unknown:
        raise ExportError(f"{where}: unknown metrics fields {', '.join(sorted(unknown))}")
    for key in ("runtime_settings", "sampling_settings"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            raise ExportError(f"{where}: {key} must be an object or null")
    model = data.get("model")
    stop_reason = data.get("stop_reason")
    return Message(
        id=0,
        conversation_id=0,
        role=role,
        content=_require(data, "content", str, where),
        created_at=float(_require(data, "created_at", (int, float), where)),
        partial=bool(data.get("partial", False)),
        stop_reason=stop_reason if isinstance(stop_reason, str) else None,
        metrics=TurnMetrics.from_dict(metrics) if metrics is not None else None,
        model=model if isinstance(model, str) else None,
        runtime_settings=data.get("runtime_settings"),
        sampling_settings=data.get("sampling_settings"),
    )


def _require(data: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = data.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):  # True is an int too
        raise ExportError(f"{where}: {key!r} is missing or of the wrong type")
    return value
