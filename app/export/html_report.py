"""A session report as one self-contained HTML file: messages, metrics table, plots.

Nothing is fetched when the file opens: styles are inline and the plots are
inline SVG (app.export.svg_plots), so the file can be mailed or archived as is.
"""

from __future__ import annotations

from datetime import datetime, timezone
from html import escape
from pathlib import Path

from app.atomic_file import write_text_atomic
from app.export.document import ConversationDocument
from app.export.svg_plots import render_all
from app.metrics import FIELD_NAMES
from app.metrics_columns import COLUMNS

_STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 2em; }
.meta { color: #555; font-size: 0.9em; }
.message { border-left: 4px solid #bbb; padding: 0.3em 0.8em; margin: 0.8em 0; }
.message.user { border-color: #0072B2; } .message.assistant { border-color: #D55E00; }
.message.system { border-color: #888; background: #f6f6f6; }
.role { font-weight: bold; font-size: 0.85em; color: #555; }
.content { white-space: pre-wrap; font-family: inherit; margin: 0.3em 0; }
.turn-metrics { font-size: 0.8em; color: #555; }
table { border-collapse: collapse; font-size: 0.8em; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: right; }
th { background: #f0f0f0; }
figure { margin: 1em 0; }
"""


def to_html(document: ConversationDocument) -> str:
    turns = document.turns()
    metrics = document.turn_metrics()
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{escape(document.title)} - Glassbox report</title>",
        f"<style>{_STYLE}</style>",
        "</head>",
        "<body>",
        f"<h1>{escape(document.title)}</h1>",
        f'<p class="meta">Model: {escape(", ".join(document.models()) or "unknown")} · '
        f"started {_when(document.created_at)} · exported {_when(document.exported_at)} · "
        f"{len(turns)} assistant turns</p>",
        '<h2 id="messages">Messages</h2>',
    ]
    if document.system_prompt.strip():
        parts.append(_message_html("system", document.system_prompt, ""))
    turn_of = {id(message): turn for turn, message in turns}
    for message in document.messages:
        note = ""
        if message.role == "assistant":
            turn = turn_of[id(message)]
            note = f"turn {turn}"
            if message.metrics is not None:
                m = message.metrics
                note += (
                    f" · TTFT {COLUMNS['ttft_ms'].of(m, unit=True)} · "
                    f"decode {COLUMNS['decode_tok_s'].of(m, unit=True)} · "
                    f"{COLUMNS['output_tokens'].of(m, unit=True)} · "
                    f"stop {COLUMNS['stop_reason'].of(m)}"
                )
            if message.partial:
                note += " · cut short"
        parts.append(_message_html(message.role, message.content, note))
    parts.append('<h2 id="metrics">Metrics per turn</h2>')
    parts.append(_metrics_table(metrics))
    parts.append('<h2 id="plots">Plots</h2>')
    for key, svg in render_all(metrics).items():
        parts.append(f'<figure id="figure-{key}">\n{svg}\n</figure>')
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


def write_html(document: ConversationDocument, path: Path) -> None:
    write_text_atomic(path, to_html(document))


def _message_html(role: str, content: str, note: str) -> str:
    note_html = f'<div class="turn-metrics">{escape(note)}</div>' if note else ""
    return (
        f'<div class="message {role}"><div class="role">{role}</div>'
        f'<pre class="content">{escape(content)}</pre>{note_html}</div>'
    )


def _metrics_table(metrics: list) -> str:
    header = "".join(
        f'<th title="{escape(COLUMNS[name].label)}">{escape(name)}'
        f"{'<br>' + escape(COLUMNS[name].unit) if COLUMNS[name].unit else ''}</th>"
        for name in FIELD_NAMES
    )
    rows = [f'<table id="metrics-table"><thead><tr><th>turn</th>{header}</tr></thead><tbody>']
    for turn, m in enumerate(metrics, start=1):
        # Raw values (not the display scale): the table is the schema, as in JSON and CSV.
        cells = "".join(f"<td>{escape(_raw(getattr(m, name)))}</td>" for name in FIELD_NAMES)
        rows.append(f"<tr><td>{turn}</td>{cells}</tr>")
    rows.append("</tbody></table>")
    return "\n".join(rows)


def _raw(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1 else f"{value:.1f}"
    return str(value)


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
