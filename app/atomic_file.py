"""Atomic writes of small files (settings, the library's folder list, per-machine caches).

Every JSON or text file Glassbox keeps for itself goes through here: the data is
written to a temporary file next to the target, flushed to disk, then moved over
the target with os.replace. A crash or a full disk leaves the old file or the new
one, never half of either. Each writer gets its own temporary name, so two
threads or processes saving the same file at once cannot clobber each other's
half-written copy (the last os.replace wins). The file is private to the user
(mode 0600, from mkstemp): these files are per-user state.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Replace `path` with `text` (UTF-8) in one step; creates the parent folder."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    return target


def write_json_atomic(path: str | Path, data: Any, *, indent: int | None = 2) -> Path:
    """Replace `path` with `data` as JSON (and a final newline) in one step."""
    return write_text_atomic(path, json.dumps(data, indent=indent) + "\n")
