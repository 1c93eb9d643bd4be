"""Did the last GUI run end cleanly? A marker file kept while the window is open.

The GUI writes the marker (its pid and the model it loads) at start and removes it
when it closes normally. If the marker is still there at the next start and its
process is gone, the last run ended uncleanly (killed, crashed, power cut): the
model it was loading may be what brought it down, so the next start does not load
it again by itself but asks first (no crash loop). A model named on the command
line is the user's consent and loads as usual.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from app.atomic_file import write_json_atomic
from app.paths import data_dir

FILE_NAME = "gui_running.json"


@dataclass
class UncleanExit:
    pid: int
    model_path: str | None


def marker_path() -> Path:
    return data_dir() / FILE_NAME


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process now holds that pid
    return True


def previous_unclean_exit() -> UncleanExit | None:
    """The run that left its marker behind, when its process is gone; else None.

    A marker whose process still runs belongs to a second window open now.
    """
    try:
        raw = json.loads(marker_path().read_text(encoding="utf-8"))
        pid = int(raw["pid"])
        model = raw.get("model_path")
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if pid == os.getpid() or _alive(pid):
        return None
    return UncleanExit(pid, model if isinstance(model, str) else None)


def mark_running(model_path: str | None) -> None:
    try:
        write_json_atomic(marker_path(), {"pid": os.getpid(), "model_path": model_path})
    except OSError:
        pass  # only a safety net: a read-only data dir must not stop the app


def mark_clean_exit() -> None:
    """Remove this process's marker (another window's marker stays)."""
    path = marker_path()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if int(raw.get("pid", -1)) == os.getpid():
            path.unlink()
    except (OSError, ValueError, TypeError):
        pass


def startup_model(
    model: str, named_by_user: bool, unclean: UncleanExit | None
) -> tuple[str | None, str | None]:
    """(model to load now, model to offer instead): after an unclean exit the model is
    offered, not loaded; one named on the command line (--model) always loads."""
    if unclean is not None and not named_by_user:
        return None, model
    return model, None
