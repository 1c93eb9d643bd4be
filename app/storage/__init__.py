"""SQLite storage: conversations, messages and per-turn metrics."""

from app.storage.schema import MIGRATIONS, SchemaError, StorageError, migrate, schema_version
from app.storage.store import (
    ROLES,
    Conversation,
    Message,
    NotFoundError,
    Store,
)

__all__ = [
    "MIGRATIONS",
    "ROLES",
    "Conversation",
    "Message",
    "NotFoundError",
    "SchemaError",
    "StorageError",
    "Store",
    "migrate",
    "schema_version",
]
