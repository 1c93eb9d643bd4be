"""Hub search, listing and verified downloads against a fake Hub on 127.0.0.1."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from app.models.hub import (
    DownloadCancelledError,
    DownloadProgress,
    HubError,
    HubFile,
    HubOfflineError,
    download_gguf,
    list_gguf_files,
    pick_file,
    quantization_from_filename,
    search_models,
)
from app.models.library import SOURCE_HF_CACHE, ModelLibrary

REPO = "someone/Tiny-GGUF"


@pytest.fixture
def tiny_bytes(make_gguf: Callable[..., Path]) -> bytes:
    return make_gguf("hub-src.gguf", name="tiny from hub").read_bytes()


def _leftovers(cache: Path) -> list[str]:
    """Data files in the cache (lock files are not data)."""
    if not cache.exists():
        return []
    return sorted(
        str(p.relative_to(cache))
        for p in cache.rglob("*")
        if (p.is_file() or p.is_symlink()) and p.suffix != ".lock" and p.name != "CACHEDIR.TAG"
    )


def test_search_and_list(fake_hub, tiny_bytes: bytes) -> None:
    fake_hub.add_file(REPO, "tiny-Q8_0.gguf", tiny_bytes)
    fake_hub.add_file(REPO, "sub/tiny-Q4_K_M.gguf", tiny_bytes[:-32] + bytes(32))
    fake_hub.add_file("other/Unrelated-GGUF", "x-F16.gguf", tiny_bytes)
    found = search_models("tiny")
    assert [r.repo_id for r in found] == [REPO]
    files = list_gguf_files(REPO)
    assert [(f.filename, f.quantization, f.size_bytes) for f in files] == [
        ("sub/tiny-Q4_K_M.gguf", "Q4_K_M", len(tiny_bytes)),
        ("tiny-Q8_0.gguf", "Q8_0", len(tiny_bytes)),
    ]
    assert all(f.sha256 and len(f.sha256) == 64 for f in files)
    assert pick_file(files).quantization == "Q4_K_M"  # the default when several
    assert pick_file(files, "q8_0").filename == "tiny-Q8_0.gguf"
    assert pick_file(files, "tiny-Q8_0.gguf").quantization == "Q8_0"
    with pytest.raises(
        HubError, match="no file or quantization 'Q2_K'; choose one of: Q4_K_M, Q8_0"
    ):
        pick_file(files, "Q2_K")


def test_missing_repo(fake_hub) -> None:
    with pytest.raises(HubError, match=r"no repository nobody/nothing on http://127.0.0.1"):
        list_gguf_files("nobody/nothing")


def test_repo_without_gguf(fake_hub) -> None:
    fake_hub.add_repo("someone/safetensors-only")
    with pytest.raises(HubError, match="someone/safetensors-only has no GGUF files"):
        list_gguf_files("someone/safetensors-only")


def test_offline_env(fake_hub, monkeypatch: pytest.MonkeyPatch, tiny_bytes: bytes) -> None:
    fake_hub.add_file(REPO, "tiny-Q8_0.gguf", tiny_bytes)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubOfflineError, match=r"offline .*HF_HUB_OFFLINE"):
        search_models("tiny")
    with pytest.raises(HubOfflineError, match="offline"):
        list_gguf_files(REPO)
    file = HubFile(REPO, "tiny-Q8_0.gguf", len(tiny_bytes), None, "Q8_0")
    with pytest.raises(HubOfflineError, match="cached models still work"):
        download_gguf(file)
    assert fake_hub.requests == []  # nothing went out


def test_going_online_after_huggingface_hub_was_imported_offline(
    fake_hub, monkeypatch: pytest.MonkeyPatch, tiny_bytes: bytes
) -> None:
    # huggingface_hub copies HF_HUB_OFFLINE into a constant at import; a process
    # that imported it while offline must still reach the Hub once that changes.
    from huggingface_hub import constants

    fake_hub.add_file(REPO, "tiny-Q8_0.gguf", tiny_bytes)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert [repo.repo_id for repo in search_models("tiny")] == [REPO]
    assert not constants.HF_HUB_OFFLINE


def test_unreachable_endpoint_is_offline(
    glassbox_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(
        HubOfflineError,
        match=f"offline: cannot reach the Hugging Face Hub at http://127.0.0.1:{port}",
    ):
        search_models("anything")


def test_download_progress_and_library(fake_hub, tiny_bytes: bytes, tmp_path: Path) -> None:
    fake_hub.add_file(REPO, "tiny-Q8_0.gguf", tiny_bytes)
    file = pick_file(list_gguf_files(REPO), "Q8_0")
    events: list[DownloadProgress] = []
    path = download_gguf(file, on_progress=events.append)
    assert path.read_bytes() == tiny_bytes
    assert path.is_relative_to(tmp_path / "hf-hub")
    downloading = [e for e in events if e.phase == "downloading"]
    verifying = [e for e in events if e.phase == "verifying"]
    assert downloading[-1].done_bytes == downloading[-1].total_bytes == len(tiny_bytes)
    assert verifying[-1].done_bytes == len(tiny_bytes)
    assert [e.done_bytes for e in downloading] == sorted(e.done_bytes for e in downloading)
    # The model now shows up in the library, from the HF cache.
    entry = next(e for e in ModelLibrary().scan() if e.source == SOURCE_HF_CACHE)
    assert (entry.repo_id, entry.name, entry.path) == (REPO, "Tiny · F32", path)
    assert entry.info is not None and entry.info.name == "tiny from hub"
    assert not [n for n in _leftovers(tmp_path / "hf-hub") if n.endswith(".incomplete")]


def test_cancel_leaves_nothing(fake_hub, tiny_bytes: bytes, tmp_path: Path) -> None:
    fake_hub.add_file(REPO, "tiny-Q8_0.gguf", tiny_bytes)
    file = pick_file(list_gguf_files(REPO), "Q8_0")
    cancel = threading.Event()
    with pytest.raises(DownloadCancelledError, match="cancelled; nothing was kept"):
        download_gguf(file, on_progress=lambda _e: cancel.set(), cancel=cancel)
    assert _leftovers(tmp_path / "hf-hub") == []


def test_interrupted_transfer_resumes(fake_hub, tmp_path: Path, bundled_model: Path) -> None:
    data = bundled_model.read_bytes()
    served = fake_hub.add_file(
        "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF", "smollm2-Q4_1.gguf", data
    )
    served.drops, served.drop_after = 1, 25 * 1024 * 1024  # past two 10 MiB chunks
    file = list_gguf_files("HuggingFaceTB/SmolLM2-135M-Instruct-GGUF")[0]
    path = download_gguf(file)
    assert path.stat().st_size == len(data)
    ranges = [r for method, _p, r in fake_hub.requests if method == "GET" and r]
    assert ranges == ["bytes=20971520-"]  # resumed after the two chunks it had written


def test_wrong_checksum_deletes_the_file(fake_hub, tiny_bytes: bytes, tmp_path: Path) -> None:
    fake_hub.add_file(REPO, "tiny-Q8_0.gguf", tiny_bytes, sha256="ab" * 32)
    file = pick_file(list_gguf_files(REPO), "Q8_0")
    with pytest.raises(HubError, match=r"failed its checksum .*; the file was deleted"):
        download_gguf(file)
    assert _leftovers(tmp_path / "hf-hub") == []


def test_not_a_gguf_is_deleted(fake_hub, tmp_path: Path) -> None:
    fake_hub.add_file(REPO, "fake-Q8_0.gguf", b"<html>not a model</html>" * 100)
    file = pick_file(list_gguf_files(REPO), "Q8_0")
    with pytest.raises(HubError, match=r"not a usable GGUF .*it was deleted"):
        download_gguf(file)
    assert _leftovers(tmp_path / "hf-hub") == []


def test_not_enough_disk_space(fake_hub, tiny_bytes: bytes, tmp_path: Path) -> None:
    fake_hub.add_file(REPO, "huge-Q8_0.gguf", tiny_bytes, size=1 << 60)  # an exabyte
    file = pick_file(list_gguf_files(REPO), "Q8_0")
    with pytest.raises(
        HubError, match=r"not enough free disk space: the file needs .*TiB, .* is free"
    ):
        download_gguf(file)
    assert not [r for r in fake_hub.requests if "/resolve/" in r[1]]  # checked before starting


def test_quantization_names() -> None:
    cases = {
        "SmolLM2-135M-Instruct.Q4_1.gguf": "Q4_1",
        "qwen2.5-7b-instruct-q4_k_m.gguf": "Q4_K_M",
        "Llama-3.2-1B-Instruct-IQ4_XS.gguf": "IQ4_XS",
        "model-bf16-00001-of-00002.gguf": "BF16",
        "Qwen3-0.6B-Q8_0.gguf": "Q8_0",
        "mystery.gguf": None,
    }
    assert {name: quantization_from_filename(name) for name in cases} == cases


def test_transfer_that_keeps_failing(fake_hub, tiny_bytes: bytes, tmp_path: Path) -> None:
    served = fake_hub.add_file(REPO, "tiny-Q8_0.gguf", tiny_bytes)
    served.drops, served.drop_after = 99, 1000
    file = pick_file(list_gguf_files(REPO), "Q8_0")
    with pytest.raises(
        HubError, match="was interrupted and could not be resumed; nothing was kept"
    ):
        download_gguf(file)
    assert _leftovers(tmp_path / "hf-hub") == []


def test_downloaded_model_loads_and_answers(fake_hub, bundled_model: Path) -> None:
    from app.engine import events as ev
    from app.engine.local import LocalEngine
    from app.models.fit import estimate_fit
    from app.settings import RuntimeSettings, SamplingSettings

    repo = "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF"
    fake_hub.add_file(repo, "SmolLM2-135M-Instruct-Q4_1.gguf", bundled_model.read_bytes())
    path = download_gguf(pick_file(list_gguf_files(repo), "Q4_1"))
    estimate = estimate_fit(path, 512)

    with LocalEngine() as engine:
        engine.load(path, RuntimeSettings(n_ctx=512, n_threads=2))
        engine.submit(
            [{"role": "user", "content": "Say hello."}],
            SamplingSettings(temperature=0.0, max_tokens=8, seed=1),
        )
        loaded, finished = None, None
        while finished is None:
            event = engine.next_event(timeout=120)
            assert not isinstance(event, (ev.EngineError, ev.EngineCrashed)), event
            if isinstance(event, ev.ModelLoaded):
                loaded = event
            elif isinstance(event, ev.TurnFinished):
                finished = event
    assert loaded is not None and loaded.model_path == str(path)
    assert (
        loaded.kv_bytes_total == estimate.kv_bytes
    )  # the fit estimate, next to llama.cpp's figure
    assert finished.text.strip() and finished.metrics.output_tokens > 0


def test_cancel_keeps_a_file_already_in_the_cache(
    fake_hub, tiny_bytes: bytes, tmp_path: Path, hf_cache_file: Callable[..., Path]
) -> None:
    # Another tool (or an earlier pull) put the file there: pulling it again and
    # cancelling while it is verified must not delete the user's copy.
    fake_hub.add_file(REPO, "tiny-Q8_0.gguf", tiny_bytes)
    theirs = hf_cache_file(
        tmp_path / "hf-hub", REPO, "tiny-Q8_0.gguf", tiny_bytes, revision=fake_hub.commit
    )
    file = pick_file(list_gguf_files(REPO), "Q8_0")
    cancel = threading.Event()
    cancel.set()  # Cancel pressed before verification got through the file
    with pytest.raises(DownloadCancelledError, match="already in the Hugging Face cache"):
        download_gguf(file, cancel=cancel)
    assert theirs.read_bytes() == tiny_bytes
    assert download_gguf(file) == theirs  # and a pull without cancel finds it as it was


def test_a_bad_file_already_in_the_cache_is_reported_not_deleted(
    fake_hub, tiny_bytes: bytes, tmp_path: Path, hf_cache_file: Callable[..., Path]
) -> None:
    fake_hub.add_file(REPO, "tiny-Q8_0.gguf", tiny_bytes)
    theirs = hf_cache_file(
        tmp_path / "hf-hub", REPO, "tiny-Q8_0.gguf", b"not the model", revision=fake_hub.commit
    )
    file = pick_file(list_gguf_files(REPO), "Q8_0")
    with pytest.raises(HubError, match=r"failed its checksum .*already in the Hugging Face cache"):
        download_gguf(file)
    assert theirs.read_bytes() == b"not the model"
