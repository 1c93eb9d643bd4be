"""JSON export and import of a conversation with its per-turn metrics."""

from __future__ import annotations

import json
from pathlib import Path

from app.atomic_file import write_text_atomic
from app.export.document import ConversationDocument, ExportError
from app.storage.store import Conversation, Store


def to_json(document: ConversationDocument) -> str:
    return json.dumps(document.to_dict(), indent=2, ensure_ascii=False) + "\n"


def write_json(document: ConversationDocument, path: Path) -> None:
    write_text_atomic(path, to_json(document))


def read_json(path: Path) -> ConversationDocument:
    """The export at `path`; ExportError (one line) when it is unreadable or malformed."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ExportError(f"cannot read {path}: {exc.strerror or exc.__class__.__name__}") from None
    except UnicodeDecodeError as exc:
        raise ExportError(f"{path} is not UTF-8 text ({exc.reason})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ExportError(f"{path} is not JSON (line {exc.lineno}: {exc.msg})") from None
    return ConversationDocument.from_dict(data)


def import_document(store: Store, document: ConversationDocument) -> Conversation:
    """Recreate the conversation, its messages, settings and metrics, with their timestamps."""
    return store.import_conversation(
        document.title,
        document.system_prompt,
        document.created_at,
        document.updated_at,
        document.messages,
        sampling_overrides=document.sampling_overrides,
    )
