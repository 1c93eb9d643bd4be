"""Fixtures for the models tests: the bundled GGUF, tiny synthetic GGUFs, a fake Hub."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from app.paths import bundled_model_path


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
    def make(name: str = "tiny.gguf", folder: Path | None = None, **kwargs: object) -> Path:
        target = (folder or tmp_path) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        return write_tiny_gguf(target, **kwargs)  # type: ignore[arg-type]

    return make
