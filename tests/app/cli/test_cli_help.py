"""Every command's --help: each option says what it does, and its default when it has one."""

from __future__ import annotations

import argparse

import pytest

from app.cli.main import build_parser


def _parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ("glassbox",)):
    """(command path, parser) for the top parser and every subcommand below it."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _parsers(child, (*path, name))


def _arguments(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        yield action


ALL = list(_parsers(build_parser()))


def test_the_walk_finds_every_command():
    names = {" ".join(path) for path, _parser in ALL}
    for command in ("chat", "bench", "serve", "conversations list", "conversations delete"):
        assert f"glassbox {command}" in names


@pytest.mark.parametrize(("path", "parser"), ALL, ids=[" ".join(p) for p, _ in ALL])
def test_every_option_has_help_and_shows_its_default(path, parser):
    formatter = parser._get_formatter()
    for action in _arguments(parser):
        name = "/".join(action.option_strings) or action.dest
        assert action.help and action.help.strip(), f"{' '.join(path)} {name} has no help"
        if action.option_strings and action.default not in (None, False, "", [], ()):
            shown = formatter._get_help_string(action) % {"default": action.default}
            assert "default" in shown, f"{' '.join(path)} {name} does not show its default"


@pytest.mark.parametrize(("path", "parser"), ALL, ids=[" ".join(p) for p, _ in ALL])
def test_help_prints_and_exits_zero(path, parser, capsys):
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([*path[1:], "--help"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: {' '.join(path)}")
