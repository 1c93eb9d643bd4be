"""`glassbox conversations list|show|export|delete`: the stored conversations from the terminal.

The same database as the window's conversations list. Delete is the window's
delete: the conversation is hidden everywhere (its rows stay in the file, as
the window keeps them for Undo). It asks first; --yes is the answer for
scripts, where nothing can be asked.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from app.errors import GlassboxError
from app.export.document import document_from_store, resolve_conversation
from app.export.markdown_format import to_markdown, write_markdown
from app.metrics_table import render_table
from app.storage.store import Conversation, Store

TITLE_WIDTH = 60


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "conversations",
        help="list, show, export as Markdown or delete stored conversations",
        description="The conversations stored by the window, `glassbox chat` and `glassbox serve`.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="one line a conversation, newest first")
    listing.add_argument(
        "--search",
        metavar="TEXT",
        help="only those whose title or messages contain TEXT (default: all)",
    )
    listing.add_argument(
        "--limit", type=int, default=50, metavar="N", help="show at most N (0: all)"
    )
    listing.set_defaults(run=run_list)

    which = {
        "metavar": "CONVERSATION",
        "help": "a conversation id (from `glassbox conversations list`) or 'latest'",
    }
    show = actions.add_parser("show", help="print a conversation's messages and metrics table")
    show.add_argument("conversation", **which)
    show.set_defaults(run=run_show)

    export = actions.add_parser("export", help="write a conversation as Markdown")
    export.add_argument("conversation", **which)
    export.add_argument(
        "--out", metavar="PATH", help="the file to write (default: print to stdout)"
    )
    export.set_defaults(run=run_export)

    delete = actions.add_parser(
        "delete", help="delete a conversation, as the window's delete does (asks first)"
    )
    delete.add_argument("conversation", **which)
    delete.add_argument(
        "--yes",
        action="store_true",
        help="do not ask (needed when stdin is not a terminal); without it, ask first",
    )
    delete.set_defaults(run=run_delete)


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


def _title(conversation: Conversation) -> str:
    title = " ".join(conversation.title.split())
    return title if len(title) <= TITLE_WIDTH else title[: TITLE_WIDTH - 1] + "…"


def run_list(args: argparse.Namespace) -> int:
    if args.limit < 0:
        raise GlassboxError(f"--limit must be 0 or more, got {args.limit}")
    with Store.open() as store:
        listed = store.list_conversations(args.search or None)
        shown = listed[: args.limit] if args.limit else listed
        counts = {c.id: len(store.messages(c.id)) for c in shown}
    if not listed:
        print("no conversations" + (f" matching {args.search!r}" if args.search else ""))
        return 0
    print(f"{'id':>5}  {'updated':16}  {'msgs':>4}  title")
    for conversation in shown:
        print(
            f"{conversation.id:>5}  {_when(conversation.updated_at):16}  "
            f"{counts[conversation.id]:>4}  {_title(conversation)}"
        )
    if len(shown) < len(listed):
        print(f"({len(listed) - len(shown)} more; --limit 0 shows all)", file=sys.stderr)
    return 0


def run_show(args: argparse.Namespace) -> int:
    with Store.open() as store:
        conversation = resolve_conversation(store, args.conversation)
        document = document_from_store(store, conversation)
    print(f"conversation {conversation.id}: {conversation.title}")
    if conversation.system_prompt.strip():
        print(f"\n[system]\n{conversation.system_prompt.strip()}")
    if document.sampling_overrides:  # the conversation's own sampling (Conversation settings…)
        shown = ", ".join(f"{k}={v}" for k, v in sorted(document.sampling_overrides.items()))
        print(f"\n[sampling overrides] {shown}")
    for message in document.messages:
        note = f" (partial: {message.stop_reason or 'unfinished'})" if message.partial else ""
        print(f"\n[{message.role}]{note}\n{message.content.strip()}")
    metrics = document.turn_metrics()
    if metrics:
        print()
        print(render_table(metrics))
    return 0


def run_export(args: argparse.Namespace) -> int:
    with Store.open() as store:
        conversation = resolve_conversation(store, args.conversation)
        document = document_from_store(store, conversation)
    if args.out is None:
        sys.stdout.write(to_markdown(document))
        return 0
    try:
        write_markdown(document, Path(args.out))
    except OSError as exc:
        raise GlassboxError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    print(f"wrote {args.out} (conversation {conversation.id})", file=sys.stderr)
    return 0


def run_delete(args: argparse.Namespace) -> int:
    with Store.open() as store:
        conversation = resolve_conversation(store, args.conversation)
        if conversation.deleted_at is not None:
            raise GlassboxError(f"conversation {conversation.id} is already deleted")
        if not args.yes:
            if not sys.stdin.isatty():
                raise GlassboxError(
                    f"not deleting conversation {conversation.id} without asking: "
                    "add --yes to delete without a question"
                )
            answer = input(
                f"Delete conversation {conversation.id} ({_title(conversation)})? [y/N] "
            )
            if answer.strip().lower() not in ("y", "yes"):
                print("not deleted", file=sys.stderr)
                return 1
        store.delete_conversation(conversation.id)
    print(f"deleted conversation {conversation.id}: {conversation.title}", file=sys.stderr)
    return 0
