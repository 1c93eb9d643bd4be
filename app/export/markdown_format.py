"""A conversation as Markdown: the messages as written, each reply's metrics line under it,
and the per-turn metrics table (the one chat, bench and the demo print) at the end."""

from __future__ import annotations

import time
from pathlib import Path

from app.atomic_file import write_text_atomic
from app.export.document import ConversationDocument
from app.metrics_columns import format_metrics_line
from app.metrics_table import render_table

ROLE_HEADINGS = {"user": "User", "assistant": "Assistant", "system": "System"}


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


def to_markdown(document: ConversationDocument) -> str:
    lines = [f"# {document.title}", ""]
    facts = [f"created {_when(document.created_at)}", f"updated {_when(document.updated_at)}"]
    if document.source_id is not None:
        facts.insert(0, f"conversation {document.source_id}")
    if models := document.models():
        facts.append("model " + ", ".join(models))
    lines += [" · ".join(facts), ""]
    if document.system_prompt.strip():
        lines += ["## System", "", document.system_prompt.strip(), ""]
    for message in document.messages:
        heading = ROLE_HEADINGS.get(message.role, message.role)
        if message.partial:
            heading += f" (partial: {message.stop_reason or 'unfinished'})"
        lines += [f"## {heading}", "", message.content.strip() or "*(empty)*", ""]
        if message.metrics is not None and message.metrics.prompt_tokens is not None:
            lines += [f"*{format_metrics_line(message.metrics)}*", ""]
    metrics = document.turn_metrics()
    if any(m.prompt_tokens is not None for m in metrics):
        lines += ["## Metrics per turn", "", "```", render_table(metrics), "```", ""]
    return "\n".join(lines)


def write_markdown(document: ConversationDocument, path: Path) -> None:
    write_text_atomic(path, to_markdown(document))
