"""The local model library: every GGUF file Glassbox knows, with its header metadata.

Known places: the bundled model, Glassbox's own models folder, the Hugging Face
cache (so files other tools downloaded show up), and folders the user adds
(kept in library.json in the data directory). Headers are read without loading
the model and cached by (path, size, mtime). A file can vanish between listing
and use; `ModelLibrary.check()` says so in one line instead of failing later.

A ModelLibrary is shared between threads: the GUI scans it on a thread pool
(two refreshes can overlap) and checks an entry from the GUI thread. The header
cache is guarded by a lock held only for dictionary access, never across a
header read, so a check on the GUI thread never waits behind a scan; the folder
list's read-modify-write is serialised by a process-wide lock (every instance
edits the same file).
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.atomic_file import write_json_atomic
from app.errors import GlassboxError, ModelFileError
from app.models.gguf_file import GGUFInfo, read_gguf_info
from app.models.names import display_name
from app.paths import bundled_model_path, data_dir, models_dir

SOURCE_BUNDLED = "bundled"
SOURCE_MODELS_DIR = "models folder"
SOURCE_HF_CACHE = "hf cache"
SOURCE_FOLDER = "folder"

MAX_FOLDER_DEPTH = 4  # user folders are walked this deep, no deeper
# Parts 2..N of a split GGUF ("-00002-of-00003.gguf") are not models on their own.
_LATER_SPLIT_PART = re.compile(r"-(\d{5})-of-\d{5}\.gguf$", re.IGNORECASE)
# Serialises add_folder/remove_folder across every ModelLibrary in the process:
# they read, change and rewrite one shared file.
_FOLDERS_LOCK = threading.Lock()


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment at call time.

    Same order as huggingface_hub: HF_HUB_CACHE, then HF_HOME/hub, then the
    default it computed at import.
    """
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        value = os.environ.get(var)
        if value:
            return Path(os.path.expandvars(value)).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.path.expandvars(os.environ["HF_HOME"])).expanduser() / "hub"
    from huggingface_hub import constants  # noqa: PLC0415 - slow to import; only the Hub features need it

    return Path(constants.HF_HUB_CACHE)


def library_config_path() -> Path:
    return data_dir() / "library.json"


@dataclass
class ModelEntry:
    """One GGUF file in the library. info is None when its header is broken (see error)."""

    path: Path
    source: str
    info: GGUFInfo | None = None
    error: str | None = None
    repo_id: str | None = None  # for Hugging Face cache entries

    @property
    def name(self) -> str:
        """The name for people (app.models.names), e.g. "SmolLM2 135M Instruct · Q4_1"."""
        if self.info is None:
            return self.path.stem
        return display_name(self.info.metadata, self.path, self.info.quantization)

    @property
    def usable(self) -> bool:
        return self.info is not None

    def exists(self) -> bool:
        return self.path.is_file()

    def to_dict(self) -> dict[str, Any]:
        info = self.info
        return {
            "path": str(self.path),
            "name": self.name,
            "general_name": info.name if info else None,  # the GGUF's own, as written
            "source": self.source,
            "repo_id": self.repo_id,
            "architecture": info.architecture if info else None,
            "parameters": info.parameters if info else None,
            "quantization": info.quantization if info else None,
            "context_length": info.context_length if info else None,
            "n_layers": info.n_layers if info else None,
            "n_heads": info.n_heads if info else None,
            "n_kv_heads": info.n_kv_heads if info else None,
            "embedding_length": info.embedding_length if info else None,
            "size_bytes": info.size_bytes if info else _size_or_none(self.path),
            "has_chat_template": info.has_chat_template if info else None,
            "license": info.license if info else None,
            "error": self.error,
        }


def _size_or_none(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def _is_model_file(path: Path) -> bool:
    if path.suffix.lower() != ".gguf" or path.name.startswith("."):
        return False
    part = _LATER_SPLIT_PART.search(path.name)
    return part is None or int(part.group(1)) == 1


def _walk_ggufs(folder: Path, max_depth: int) -> Iterator[Path]:
    base_depth = len(folder.parts)
    for root, dirs, files in os.walk(folder, onerror=lambda _err: None):
        depth = len(Path(root).parts) - base_depth
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if depth < max_depth else []
        for name in sorted(files):
            path = Path(root) / name
            if _is_model_file(path):
                yield path


def hf_cache_files(cache: Path | None = None) -> Iterator[tuple[str, Path]]:
    """(repo_id, snapshot path) of every cached GGUF, newest snapshot first per blob."""
    cache = cache or hf_cache_dir()
    try:
        repos = sorted(p for p in cache.iterdir() if p.name.startswith("models--"))
    except OSError:
        return
    for repo_dir in repos:
        repo_id = repo_dir.name[len("models--") :].replace("--", "/", 1)
        snapshots = repo_dir / "snapshots"
        main_ref = repo_dir / "refs" / "main"
        try:
            head = main_ref.read_text().strip()
        except OSError:
            head = ""
        try:
            revisions = sorted(snapshots.iterdir(), key=lambda p: (p.name != head, p.name))
        except OSError:
            continue
        seen_blobs: set[Path] = set()
        for revision in revisions:
            for path in _walk_ggufs(revision, MAX_FOLDER_DEPTH):
                blob = path.resolve()
                if blob in seen_blobs or not blob.is_file():
                    continue  # same file in an older snapshot, or a dangling link
                seen_blobs.add(blob)
                yield repo_id, path


class ModelLibrary:
    """Lists GGUF files from the known places. Safe to share between threads."""

    def __init__(self, config_path: Path | None = None, hf_cache: Path | None = None) -> None:
        self._config_path = config_path
        self._hf_cache = hf_cache
        self._cache: dict[Path, tuple[int, int, GGUFInfo | None, str | None]] = {}
        self._cache_lock = threading.Lock()

    @property
    def config_path(self) -> Path:
        return self._config_path or library_config_path()

    # User folders -------------------------------------------------------

    def folders(self) -> list[Path]:
        try:
            data = json.loads(self.config_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []  # missing or unreadable: start empty rather than refuse to start
        folders = data.get("folders", []) if isinstance(data, dict) else []
        return [Path(f) for f in folders if isinstance(f, str)]

    def add_folder(self, folder: str | Path) -> Path:
        path = Path(folder).expanduser().resolve()
        if not path.is_dir():
            raise GlassboxError(f"cannot add {path} to the library: not a folder")
        with _FOLDERS_LOCK:
            folders = self.folders()
            if path not in folders:
                self._save_folders([*folders, path])
        return path

    def remove_folder(self, folder: str | Path) -> None:
        path = Path(folder).expanduser().resolve()
        with _FOLDERS_LOCK:
            self._save_folders([f for f in self.folders() if f != path])

    def _save_folders(self, folders: list[Path]) -> None:
        write_json_atomic(self.config_path, {"folders": [str(f) for f in folders]})

    # Listing ------------------------------------------------------------

    def _candidates(self) -> Iterator[tuple[Path, str, str | None]]:
        bundled = bundled_model_path()
        if bundled is not None:
            yield bundled, SOURCE_BUNDLED, None
        for path in _walk_ggufs(models_dir(), MAX_FOLDER_DEPTH):
            yield path, SOURCE_MODELS_DIR, None
        for repo_id, path in hf_cache_files(self._hf_cache):
            yield path, SOURCE_HF_CACHE, repo_id
        for folder in self.folders():
            for path in _walk_ggufs(folder, MAX_FOLDER_DEPTH):
                yield path, SOURCE_FOLDER, None

    def scan(self) -> list[ModelEntry]:
        """Every GGUF in the known places; a file listed twice appears once."""
        entries: list[ModelEntry] = []
        seen: set[Path] = set()
        for path, source, repo_id in self._candidates():
            try:
                real = path.resolve()
            except OSError:
                continue
            if real in seen:
                continue
            seen.add(real)
            entry = self._entry(path, source, repo_id)
            if entry is not None:
                entries.append(entry)
        return entries

    def entry_for(self, path: str | Path) -> ModelEntry:
        """An entry for any GGUF path (not necessarily in a known place)."""
        path = Path(path).expanduser()
        entry = self._entry(path, SOURCE_FOLDER, None)
        if entry is None:
            raise ModelFileError(f"model file not found: {path}")
        return entry

    def check(self, entry: ModelEntry) -> GGUFInfo:
        """Re-check a listed entry before use: the file may have moved or changed."""
        if not entry.exists():
            raise ModelFileError(
                f"{entry.path} was moved or deleted after the library was listed; refresh the list"
            )
        fresh = self._entry(entry.path, entry.source, entry.repo_id)
        if fresh is None or fresh.info is None:
            raise ModelFileError(fresh.error if fresh and fresh.error else f"{entry.path} is gone")
        entry.info, entry.error = fresh.info, None
        return fresh.info

    def _entry(self, path: Path, source: str, repo_id: str | None) -> ModelEntry | None:
        """None when the file vanished while we looked at it."""
        try:
            stat = path.stat()
        except OSError:
            return None
        key = path.resolve()
        with self._cache_lock:
            cached = self._cache.get(key)
        if cached is not None and cached[:2] == (stat.st_size, stat.st_mtime_ns):
            info, error = cached[2], cached[3]
        else:
            # Outside the lock: two threads may read one header twice, which is
            # cheap; a thread never waits for another thread's file reads.
            try:
                info, error = read_gguf_info(path), None
            except ModelFileError as exc:
                if not path.exists():
                    return None
                info, error = None, str(exc)
            with self._cache_lock:
                self._cache[key] = (stat.st_size, stat.st_mtime_ns, info, error)
        return ModelEntry(path=path, source=source, info=info, error=error, repo_id=repo_id)
