"""`glassbox export CONVERSATION --format json|csv|html|svg|png --out PATH`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from app.atomic_file import write_text_atomic
from app.export.csv_format import write_csv
from app.export.document import (
    ConversationDocument,
    ExportError,
    document_from_store,
    resolve_conversation,
)
from app.export.html_report import write_html
from app.export.json_format import write_json
from app.export.renderers import renderer_for
from app.export.svg_plots import combined_svg
from app.storage.store import Store

FORMATS = ("json", "csv", "html", "svg", "png")


def _write_svg(document: ConversationDocument, path: Path) -> None:
    write_text_atomic(path, combined_svg(document.turn_metrics()))


# Formats written here; png comes from ui/ through app.export.renderers.
_WRITERS: dict[str, Callable[[ConversationDocument, Path], None]] = {
    "json": write_json,
    "csv": write_csv,
    "html": write_html,
    "svg": _write_svg,
}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "export", help="write a conversation and its per-turn metrics to a file"
    )
    parser.add_argument(
        "conversation", metavar="CONVERSATION", help="a conversation id or 'latest'"
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        required=True,
        help="json (re-importable), csv (one row a turn), html (report with plots), "
        "svg or png (the plots)",
    )
    parser.add_argument("--out", required=True, metavar="PATH", help="the file to write")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    with Store.open() as store:
        conversation = resolve_conversation(store, args.conversation)
        document = document_from_store(store, conversation)
    export(document, args.format, Path(args.out))
    print(
        f"wrote {args.out} (conversation {conversation.id}, {len(document.turns())} turns)",
        file=sys.stderr,
    )
    return 0


def export(document: ConversationDocument, fmt: str, path: Path) -> None:
    writer = _WRITERS.get(fmt) or renderer_for(fmt)
    try:
        writer(document, path)
    except OSError as exc:
        raise ExportError(
            f"cannot write {path}: {exc.strerror or exc.__class__.__name__}"
        ) from None
