"""`glassbox import PATH`: recreate a conversation from a JSON export."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app.export.json_format import import_document, read_json
from app.storage.store import Store


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "import", help="recreate a conversation (messages and metrics) from a JSON export"
    )
    parser.add_argument(
        "path", metavar="PATH", help="a file written by `glassbox export --format json`"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    document = read_json(Path(args.path))  # checked before the database is touched
    with Store.open() as store:
        conversation = import_document(store, document)
    print(
        f"imported {args.path} as conversation {conversation.id} "
        f"({len(document.messages)} messages, {len(document.turns())} turns)",
        file=sys.stderr,
    )
    print(conversation.id)
    return 0
