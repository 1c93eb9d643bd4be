"""`glassbox` entry point.

Qt-free commands live in app.cli. The GUI commands (`glassbox` with no
subcommand, `glassbox demo`) come from the ui package through the
"glassbox.commands" entry-point group, so app/ never imports ui.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
from collections.abc import Callable, Sequence

from app.cli import (
    bench_cmd,
    chat_cmd,
    conversations_cmd,
    doctor_cmd,
    export_cmd,
    import_cmd,
    load_cmd,
    models_cmd,
    replay_cmd,
    scenario_cmd,
    serve_cmd,
    tune_cmd,
)
from app.cli.common import use_help_format
from app.errors import GlassboxError

GUI_COMMAND = "gui"


def _plugin_registrars() -> list[Callable[[argparse._SubParsersAction], None]]:
    found = []
    for entry in importlib.metadata.entry_points(group="glassbox.commands"):
        try:
            found.append(entry.load())
        except ImportError:
            # The GUI's dependencies may be missing in a headless install; the
            # core commands still work.
            continue
    return found


def _command_names(parser: argparse.ArgumentParser) -> set[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="glassbox", description="Local LLM chat that shows what inference is doing."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    registrars = [
        chat_cmd.register,
        conversations_cmd.register,
        bench_cmd.register,
        models_cmd.register,
        tune_cmd.register,
        doctor_cmd.register,
        export_cmd.register,
        import_cmd.register,
        replay_cmd.register,
        serve_cmd.register,
        load_cmd.register,
        scenario_cmd.register,
    ]
    for register in registrars + _plugin_registrars():
        register(sub)
    use_help_format(parser)  # every option's --help ends with its default
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        # `glassbox` and `glassbox --model X.gguf` open the desktop app.
        if GUI_COMMAND not in _command_names(parser):
            print(
                "glassbox: the desktop GUI is not installed; try `glassbox chat`", file=sys.stderr
            )
            return 2
        argv.insert(0, GUI_COMMAND)
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except GlassboxError as exc:
        print(f"glassbox: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("glassbox: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
