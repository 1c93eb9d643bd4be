"""Prompts files, as `glassbox bench` and `glassbox demo` read them.

One prompt a line, UTF-8. Blank lines and lines starting with "#" (comments) are
skipped; surrounding whitespace is dropped.
"""

from __future__ import annotations

from pathlib import Path

from app.errors import GlassboxError


def read_prompts(path: str | Path) -> list[str]:
    """The prompts in `path`; a GlassboxError with one line when there are none."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise GlassboxError(
            f"cannot read prompts file {path}: {exc.strerror or exc.__class__.__name__}"
        ) from None
    except UnicodeDecodeError as exc:
        raise GlassboxError(f"prompts file {path} is not UTF-8 text ({exc.reason})") from None
    prompts = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not prompts:
        raise GlassboxError(f"prompts file {path} has no prompts (one a line, # for comments)")
    return prompts
