"""Fixtures for the models tests: the bundled GGUF, tiny synthetic GGUFs, a fake Hub."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.paths import bundled_model_path

from fake_hub import running_fake_hub


@pytest.fixture(scope="session")
def bundled_model() -> Path:
    path = bundled_model_path()
    assert path is not None, "the bundled model is not installed: run `make run` first"
    return path


def write_tiny_gguf(
    path: Path,
    *,
    arch: str = "llama",
    name: str = "tiny",
    chat_template: str | None = "{{ messages }}",
    n_layers: int = 2,
    file_type: int | None = 0,
) -> Path:
    """A small valid GGUF (two F32 tensors) written with gguf-py's own writer."""
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name(name)
    writer.add_block_count(n_layers)
    writer.add_context_length(256)
    writer.add_embedding_length(64)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    if file_type is not None:
        writer.add_file_type(file_type)
    if chat_template is not None:
        writer.add_chat_template(chat_template)
    writer.add_token_list(["a", "b", "c"])
    writer.add_tensor("a.weight", np.ones((8, 64), dtype=np.float32))
    writer.add_tensor("b.weight", np.ones((64,), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture
def make_gguf(tmp_path: Path) -> Callable[..., Path]:
    def make(filename: str = "tiny.gguf", folder: Path | None = None, **kwargs: object) -> Path:
        target = (folder or tmp_path) / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        return write_tiny_gguf(target, **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture
def glassbox_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private GLASSBOX_HOME and Hugging Face cache for one test."""
    home = tmp_path / "glassbox-home"
    monkeypatch.setenv("GLASSBOX_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-hub"))
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    home.mkdir()
    return home


@pytest.fixture
def hf_cache_file() -> Callable[..., Path]:
    return _fake_hf_cache_file


def _fake_hf_cache_file(
    cache: Path, repo_id: str, filename: str, data: bytes, revision: str = "a" * 40
) -> Path:
    """Lay out one file the way huggingface_hub caches it: blob + snapshot symlink + ref."""
    import hashlib

    repo_dir = cache / ("models--" + repo_id.replace("/", "--"))
    blob = repo_dir / "blobs" / hashlib.sha256(data).hexdigest()
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(data)
    link = repo_dir / "snapshots" / revision / filename
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(os.path.relpath(blob, link.parent))
    (repo_dir / "refs").mkdir(exist_ok=True)
    (repo_dir / "refs" / "main").write_text(revision)
    return link


@pytest.fixture
def fake_hub(glassbox_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A fake Hub on 127.0.0.1 that app.models.hub talks to (through HF_ENDPOINT)."""
    with running_fake_hub() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
        yield hub
