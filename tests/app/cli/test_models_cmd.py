"""`glassbox models`, `glassbox fit` and `glassbox pull`, run through the real entry point."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.cli.main import main
from app.paths import bundled_model_path

from fake_hub import running_fake_hub

MIB = 1024 * 1024


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GLASSBOX_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-hub"))
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    return tmp_path / "home"


@pytest.fixture
def hub(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with running_fake_hub() as fake:
        monkeypatch.setenv("HF_ENDPOINT", fake.url)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        yield fake


@pytest.fixture
def bundled() -> Path:
    path = bundled_model_path()
    assert path is not None, "the bundled model is not installed: run `make run` first"
    return path


def test_models_json(home: Path, bundled: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    entry = next(e for e in listed if e["path"] == str(bundled))
    assert entry["architecture"] == "llama"
    assert entry["quantization"] == "Q4_1"
    assert entry["n_layers"] == 30
    assert entry["context_length"] == 8192
    assert entry["parameters"] == 134_515_008
    assert entry["has_chat_template"] is True
    assert entry["size_bytes"] == bundled.stat().st_size
    assert entry["name"] and entry["source"] == "bundled"


def test_models_plain_listing_and_folders(
    home: Path, bundled: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "broken.gguf").write_bytes(b"GGUF\x03\x00\x00\x00")
    assert main(["models", "--add-folder", str(folder)]) == 0
    out, err = capsys.readouterr()
    assert "NAME" in out and "Q4_1" in out and str(bundled) in out
    assert "broken (unreadable)" in out
    assert f"added {folder}" in err and "broken.gguf is truncated" in err
    assert main(["models", "--remove-folder", str(folder)]) == 0
    assert "broken" not in capsys.readouterr().out


def test_fit_json(home: Path, bundled: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fit", "--model", str(bundled), "--ctx", "2048", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["kv_bytes"] == 45 * MIB  # what llama.cpp reports for n_ctx 2048, f16
    assert data["total_bytes"] == data["weights_bytes"] + data["kv_bytes"] + data["compute_bytes"]
    assert data["available_bytes"] > 0
    assert data["verdict"] in ("fits", "tight", "won't fit")


def test_fit_text_and_kv_type(
    home: Path, bundled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["fit", "--model", str(bundled), "--ctx", "4096", "--kv-type", "q8_0"]) == 0
    out = capsys.readouterr().out
    assert "KV cache  47.8 MiB  (4096 cells" in out and "q8_0" in out
    assert "verdict" in out


def test_fit_errors(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fit", "--model", str(tmp_path / "none.gguf"), "--json"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("glassbox: model file not found:") and err.count("\n") == 1
    assert main(["fit", "--ctx", "0"]) == 1
    assert "n_ctx must be a positive" in capsys.readouterr().err


def test_pull_list_and_download(
    hub: Any, bundled: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = bundled.read_bytes()
    hub.add_file("org/Small-GGUF", "small-Q4_1.gguf", data)
    hub.add_file("org/Small-GGUF", "small-Q8_0.gguf", data[:4096])
    assert main(["pull", "org/Small-GGUF", "--list"]) == 0
    out = capsys.readouterr().out
    assert "small-Q4_1.gguf  Q4_1  93.8 MiB" in out and "small-Q8_0.gguf  Q8_0" in out

    assert main(["pull", "org/Small-GGUF", "q4_1"]) == 0
    out, err = capsys.readouterr()
    path = Path(out.strip())
    assert path.is_relative_to(tmp_path / "hf-hub")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
    assert "pulling org/Small-GGUF/small-Q4_1.gguf (93.8 MiB)" in err
    assert main(["models", "--json"]) == 0
    assert str(path) in [e["path"] for e in json.loads(capsys.readouterr().out)]


def test_pull_errors(
    hub: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["pull", "nobody/nothing"]) == 1
    assert "glassbox: no repository nobody/nothing" in capsys.readouterr().err
    hub.add_file("org/Two-GGUF", "a-Q8_0.gguf", b"x")
    hub.add_file("org/Two-GGUF", "a-Q6_K.gguf", b"y")
    assert main(["pull", "org/Two-GGUF"]) == 1
    assert "has several files; choose one of: Q6_K, Q8_0" in capsys.readouterr().err
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["pull", "org/Two-GGUF", "Q8_0"]) == 1
    assert "glassbox: offline" in capsys.readouterr().err
