"""Which model file to load: `--model`, else the one the GUI remembers, else the bundled one.

Every entry point (the CLI commands, the desktop app, `glassbox demo`) resolves
the model here, so each applies the same check: the GGUF header and tensor table
are read before llama.cpp sees the file, and a bad file is one clear line.
"""

from __future__ import annotations

from pathlib import Path

from app.errors import ModelFileError
from app.models.gguf_file import read_gguf_info
from app.paths import BUNDLED_MODEL_HINT, bundled_model_path


def resolve_model_path(given: str | Path | None, remembered: str | Path | None = None) -> Path:
    """The model to load, its header checked; ModelFileError (one line) when unusable.

    given: what the user asked for (--model); it must be a readable GGUF.
    remembered: the model of the last session; used when it is still a readable
    GGUF, skipped (not an error) when it was moved, deleted or damaged since.
    Neither: the bundled model.
    """
    if given:
        path = Path(given).expanduser().absolute()
        read_gguf_info(path)
        return path
    if remembered:
        path = Path(remembered).expanduser()
        try:
            read_gguf_info(path)
        except ModelFileError:
            pass  # gone or damaged since the last run: start with the bundled model
        else:
            return path
    bundled = bundled_model_path()
    if bundled is None:
        raise ModelFileError(BUNDLED_MODEL_HINT)
    read_gguf_info(bundled)
    return bundled
