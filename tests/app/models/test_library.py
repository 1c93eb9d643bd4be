"""The model library: known places, user folders, broken and vanishing files."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from app.errors import GlassboxError, ModelFileError
from app.models.library import (
    SOURCE_BUNDLED,
    SOURCE_FOLDER,
    SOURCE_HF_CACHE,
    SOURCE_MODELS_DIR,
    ModelLibrary,
    hf_cache_dir,
)
from app.paths import models_dir


def _by_name(entries: list) -> dict[str, object]:
    return {e.path.name: e for e in entries}


def test_known_places(
    glassbox_home: Path,
    tmp_path: Path,
    make_gguf: Callable[..., Path],
    hf_cache_file: Callable[..., Path],
    bundled_model: Path,
) -> None:
    make_gguf("own.gguf", folder=models_dir(), name="own model")
    tiny = make_gguf("src.gguf", name="cached model").read_bytes()
    hf_cache_file(tmp_path / "hf-hub", "someone/tiny-GGUF", "tiny-Q8_0.gguf", tiny)
    user = tmp_path / "my models"
    make_gguf("deep/er/mine.gguf", folder=user, name="mine")
    make_gguf(".hidden/skip.gguf", folder=user)
    (user / "notes.txt").write_text("not a model")

    library = ModelLibrary()
    library.add_folder(user)
    entries = _by_name(library.scan())

    assert entries[bundled_model.name].source == SOURCE_BUNDLED
    assert entries[bundled_model.name].info.quantization == "Q4_1"
    assert entries["own.gguf"].source == SOURCE_MODELS_DIR
    cached = entries["tiny-Q8_0.gguf"]
    # No general.basename: the name comes from the file name; general.name stays a field.
    assert (cached.source, cached.repo_id, cached.name) == (
        SOURCE_HF_CACHE,
        "someone/tiny-GGUF",
        "Tiny · F32",
    )
    assert cached.to_dict()["general_name"] == "cached model"
    assert entries["mine.gguf"].source == SOURCE_FOLDER
    assert "skip.gguf" not in entries and "notes.txt" not in entries


def test_folders_persist(glassbox_home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "models-a"
    folder.mkdir()
    ModelLibrary().add_folder(folder)
    ModelLibrary().add_folder(folder)  # twice: listed once
    assert ModelLibrary().folders() == [folder.resolve()]
    saved = json.loads((glassbox_home / "library.json").read_text())
    assert saved == {"folders": [str(folder.resolve())]}
    ModelLibrary().remove_folder(folder)
    assert ModelLibrary().folders() == []


def test_add_folder_that_is_not_a_folder(glassbox_home: Path, tmp_path: Path) -> None:
    with pytest.raises(GlassboxError, match=r"cannot add .* to the library: not a folder"):
        ModelLibrary().add_folder(tmp_path / "missing")


def test_unreadable_config_starts_empty(glassbox_home: Path) -> None:
    (glassbox_home / "library.json").write_text("{not json")
    assert ModelLibrary().folders() == []


def test_broken_file_is_listed_with_its_error(
    glassbox_home: Path, tmp_path: Path, make_gguf: Callable[..., Path]
) -> None:
    good = make_gguf("good.gguf", folder=tmp_path / "lib")
    broken = tmp_path / "lib" / "broken.gguf"
    broken.write_bytes(good.read_bytes()[:100])
    library = ModelLibrary()
    library.add_folder(tmp_path / "lib")
    entries = _by_name(library.scan())
    assert entries["good.gguf"].usable
    assert not entries["broken.gguf"].usable
    assert "is truncated" in entries["broken.gguf"].error
    data = entries["broken.gguf"].to_dict()
    assert data["size_bytes"] == 100 and data["architecture"] is None


def test_file_deleted_or_moved_after_listing(
    glassbox_home: Path, tmp_path: Path, make_gguf: Callable[..., Path]
) -> None:
    path = make_gguf("gone.gguf", folder=tmp_path / "lib")
    library = ModelLibrary()
    library.add_folder(tmp_path / "lib")
    entry = _by_name(library.scan())["gone.gguf"]
    assert library.check(entry).name == "tiny"
    path.rename(tmp_path / "elsewhere.gguf")
    with pytest.raises(ModelFileError, match="was moved or deleted after the library was listed"):
        library.check(entry)
    assert "gone.gguf" not in _by_name(library.scan())


def test_file_replaced_after_listing_is_reread(
    glassbox_home: Path, tmp_path: Path, make_gguf: Callable[..., Path]
) -> None:
    path = make_gguf("model.gguf", folder=tmp_path / "lib", name="first")
    library = ModelLibrary()
    entry = library.entry_for(path)
    assert entry.name == "First · F32"  # a generic file name: general.name, cleaned
    make_gguf("model.gguf", folder=tmp_path / "lib", name="second", n_layers=5)
    os.utime(path, ns=(1, 1))  # a different mtime even on coarse clocks
    assert library.check(entry).n_layers == 5


def test_hf_cache_newest_snapshot_and_dangling_links(
    glassbox_home: Path,
    tmp_path: Path,
    make_gguf: Callable[..., Path],
    hf_cache_file: Callable[..., Path],
) -> None:
    cache = tmp_path / "hf-hub"
    data = make_gguf("x.gguf").read_bytes()
    hf_cache_file(cache, "org/repo", "m.gguf", data, revision="b" * 40)
    hf_cache_file(cache, "org/repo", "m.gguf", data, revision="c" * 40)  # same blob
    dangling = cache / "models--org--repo" / "snapshots" / ("c" * 40) / "lost.gguf"
    dangling.symlink_to("../../blobs/nothing")
    split = make_gguf("split.gguf").read_bytes()
    hf_cache_file(cache, "org/split", "s-00001-of-00002.gguf", split)
    hf_cache_file(cache, "org/split", "s-00002-of-00002.gguf", split + b"\0")
    entries = [e for e in ModelLibrary().scan() if e.source == SOURCE_HF_CACHE]
    assert [(e.repo_id, e.path.name, e.path.parent.name) for e in entries] == [
        ("org/repo", "m.gguf", "c" * 40),  # refs/main points at the newest
        ("org/split", "s-00001-of-00002.gguf", "a" * 40),
    ]


def test_hf_cache_dir_follows_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "a"))
    assert hf_cache_dir() == tmp_path / "a"
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert hf_cache_dir() == tmp_path / "home" / "hub"


def test_entry_dict_has_the_cli_fields(glassbox_home: Path, bundled_model: Path) -> None:
    data = ModelLibrary().entry_for(bundled_model).to_dict()
    for key in (
        "path", "name", "architecture", "parameters", "quantization",
        "context_length", "n_layers", "size_bytes", "has_chat_template",
    ):  # fmt: skip
        assert data[key] is not None, key
    json.dumps(data)


def test_entry_for_missing_file(glassbox_home: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="model file not found"):
        ModelLibrary().entry_for(tmp_path / "nope.gguf")


def test_one_library_shared_by_scanning_threads_and_folder_edits(
    glassbox_home: Path, tmp_path: Path, make_gguf: Callable[..., Path]
) -> None:
    # The models dialog scans on a thread pool (refreshes can overlap) while the
    # GUI thread adds folders and checks entries: nothing may be lost or raised.
    import threading

    library = ModelLibrary()
    workers = 8
    folders = [tmp_path / f"lib-{i}" for i in range(workers)]
    for i, folder in enumerate(folders):
        make_gguf(f"m{i}.gguf", folder=folder, name=f"model {i}")
    start = threading.Barrier(workers)
    errors: list[BaseException] = []

    def work(folder: Path) -> None:
        try:
            start.wait()
            for _ in range(5):
                library.add_folder(folder)
                for entry in library.scan():
                    library.check(entry)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f,)) for f in folders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(library.folders()) == sorted(f.resolve() for f in folders)
    names = {e.path.name for e in ModelLibrary().scan()}
    assert {f"m{i}.gguf" for i in range(workers)} <= names
    assert [p.name for p in glassbox_home.iterdir() if p.name.endswith(".tmp")] == []
