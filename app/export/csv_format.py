"""CSV export: one row per assistant turn, every TurnMetrics field as its own column."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone
from pathlib import Path

from app.atomic_file import write_text_atomic
from app.export.document import ConversationDocument
from app.metrics import FIELD_NAMES

# Columns before and after the metrics fields; settings stay JSON so no key is lost.
LEAD_COLUMNS: tuple[str, ...] = ("turn", "created_at", "model", "partial")
TAIL_COLUMNS: tuple[str, ...] = ("runtime_settings", "sampling_settings")
CSV_COLUMNS: tuple[str, ...] = LEAD_COLUMNS + FIELD_NAMES + TAIL_COLUMNS


def to_csv(document: ConversationDocument) -> str:
    """A header row, then one row per turn; an unknown figure is an empty cell."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for turn, message in document.turns():
        figures = message.metrics.to_dict() if message.metrics is not None else {}
        writer.writerow(
            [
                turn,
                datetime.fromtimestamp(message.created_at, timezone.utc).isoformat(),
                message.model or "",
                int(message.partial),
                *(_cell(figures.get(name)) for name in FIELD_NAMES),
                *(
                    json.dumps(value, sort_keys=True) if value is not None else ""
                    for value in (message.runtime_settings, message.sampling_settings)
                ),
            ]
        )
    return out.getvalue()


def write_csv(document: ConversationDocument, path: Path) -> None:
    write_text_atomic(path, to_csv(document))


def _cell(value: object) -> object:
    return "" if value is None else value
