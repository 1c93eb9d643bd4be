"""Prompts files: one prompt a line, comments and blank lines skipped, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.errors import GlassboxError
from app.prompts_file import read_prompts


def test_prompts_one_a_line(tmp_path: Path) -> None:
    path = tmp_path / "p.txt"
    path.write_text("# a comment\n  Say hi.  \n\n   # indented comment\nName a colour.\n")
    assert read_prompts(path) == ["Say hi.", "Name a colour."]


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "cannot read prompts file"),
        (b"\n  \n# only a comment\n", "has no prompts"),
        (b"\xff\xfe bad", "is not UTF-8 text"),
    ],
)
def test_bad_prompts_file_is_one_line(tmp_path: Path, content: bytes | None, fragment: str) -> None:
    path = tmp_path / "p.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(GlassboxError, match=fragment) as info:
        read_prompts(path)
    assert "\n" not in str(info.value)
