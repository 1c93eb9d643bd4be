"""Malformed GGUF files (tests/reliability/gguf_corpus.py): each is refused in the parent with
one clear line before any worker starts; the one that passes the check fails in the worker,
reported as an error; the engine that holds the conversation keeps working."""

from __future__ import annotations

from pathlib import Path

import pytest
from gguf_corpus import real_model_truncations, synthetic_corpus

from app.engine import events as ev
from app.engine.local import LocalEngine
from app.errors import ModelFileError
from app.models.gguf_file import read_gguf_info
from app.settings import RuntimeSettings, SamplingSettings

from helpers import run_turn, wait_for

# One thread: the test is about refusals, and spinning threads crawl on a busy machine.
SETTINGS = RuntimeSettings(n_ctx=256, n_threads=1, repack="off")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory):
    return synthetic_corpus(tmp_path_factory.mktemp("gguf-corpus"))


def _one_clear_line(message: str, path: Path) -> None:
    assert "\n" not in message and "Traceback" not in message
    assert path.name in message, message
    assert any(word in message for word in ("truncated", "corrupted", "not a GGUF", "version"))


def test_every_malformed_file_is_refused_by_the_header_check(corpus) -> None:
    refused = [case for case in corpus if case.expect == "refuse"]
    for case in refused:
        with pytest.raises(ModelFileError) as raised:
            read_gguf_info(case.path)
        _one_clear_line(str(raised.value), case.path)
    files = len({case.path for case in corpus})
    print(f"synthetic corpus: {files} files, {len(refused)} refused by the header check")
    assert len(refused) >= 140


def test_a_real_model_cut_at_every_section_boundary_is_refused(
    bundled_model: Path, tmp_path: Path
) -> None:
    count = 0
    for case in real_model_truncations(bundled_model, tmp_path):
        with pytest.raises(ModelFileError, match="truncated") as raised:
            read_gguf_info(case.path)
        _one_clear_line(str(raised.value), case.path)
        count += 1
    print(f"real model cut at {count} section boundaries, every one refused")
    assert count > 300  # ~30 metadata pairs and 272 tensor infos in the bundled model


def test_the_engine_refuses_each_before_starting_a_worker_and_keeps_serving(
    corpus, bundled_model: Path
) -> None:
    engine = LocalEngine()
    try:
        # Every file goes through read_gguf_info above; here every 4th through the engine,
        # which proves the wiring (a load per case costs a thread and an event).
        for case in [case for case in corpus if case.expect == "refuse"][::4]:
            load_id = engine.load(case.path, SETTINGS)
            event = wait_for(engine, ev.EngineError)[-1]
            assert event.load_id == load_id
            _one_clear_line(event.message, case.path)
        assert engine.worker_pid is None, "a worker started for a file the check refused"

        # Well-formed but no runnable model: it reaches llama.cpp, which fails; reported.
        passing = [case for case in corpus if case.expect == "load-fails"]
        assert passing
        for case in passing:
            read_gguf_info(case.path)
            engine.load(case.path, SETTINGS)
            seen = wait_for(engine, ev.EngineError | ev.ModelLoaded)  # type: ignore[arg-type]
            assert isinstance(seen[-1], ev.EngineError), seen[-1]
            assert "\n" not in seen[-1].message
            print(f"{case.name}: {seen[-1].message}")

        # The same engine then loads the real model and answers.
        engine.load(bundled_model, SETTINGS)
        assert isinstance(wait_for(engine, ev.ModelLoaded | ev.EngineError)[-1], ev.ModelLoaded)  # type: ignore[arg-type]
        request = engine.submit([{"role": "user", "content": "Hi"}], SamplingSettings(max_tokens=4))
        assert run_turn(engine, request)[-1].metrics.stop_reason in ("eos", "length")
    finally:
        engine.close()
