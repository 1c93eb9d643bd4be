"""One model resolver for every entry point: --model, the remembered model, the bundled one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from app.errors import ModelFileError
from app.models.resolve import resolve_model_path


def test_given_model_is_checked_before_loading(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match=r"model file not found: .*missing.gguf"):
        resolve_model_path(tmp_path / "missing.gguf")
    bad = tmp_path / "photo.gguf"
    bad.write_bytes(b"\x89PNG\r\n" + bytes(500))
    with pytest.raises(ModelFileError, match="not a GGUF"):
        resolve_model_path(str(bad), remembered=None)


def test_given_wins_and_is_absolute(
    make_gguf: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    make_gguf("mine.gguf")
    monkeypatch.chdir(tmp_path)
    assert resolve_model_path("mine.gguf", remembered="elsewhere.gguf") == tmp_path / "mine.gguf"


def test_remembered_model_when_still_usable_else_bundled(
    make_gguf: Callable[..., Path], bundled_model: Path, tmp_path: Path
) -> None:
    last = make_gguf("last.gguf")
    assert resolve_model_path(None, remembered=str(last)) == last
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(last.read_bytes()[:100])
    assert resolve_model_path(None, remembered=broken) == bundled_model
    assert resolve_model_path(None, remembered=tmp_path / "gone.gguf") == bundled_model
    assert resolve_model_path(None) == bundled_model
