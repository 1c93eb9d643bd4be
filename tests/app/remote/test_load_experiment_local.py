"""The load experiment on the local engine (one request at a time: "sequential"), and its bounds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.cli.main import main
from app.engine import events as ev
from app.engine.local import LocalEngine
from app.errors import SettingsError
from app.load_experiment import LoadSettings, parse_concurrency, report, run_experiment


def test_sequential_rounds_record_every_request(
    loaded_engine: tuple[LocalEngine, ev.ModelLoaded],
) -> None:
    engine, _ = loaded_engine
    settings = LoadSettings(concurrency=(1, 3), max_tokens=4)
    runs = run_experiment(engine, "sequential", settings)
    assert [(r.mode, r.concurrency, len(r.requests)) for r in runs] == [
        ("sequential", 1, 1),
        ("sequential", 3, 3),
    ]
    for run in runs:
        assert not run.errors and not run.timed_out
        assert run.aggregate_tok_s is not None and run.aggregate_tok_s > 0
        for metrics in run.requests:
            assert metrics.output_tokens is not None and 0 < metrics.output_tokens <= 4
            assert metrics.queue_ms is not None and metrics.ttft_ms is not None
    # One at a time: of three submitted together, the last one started waited for two others.
    queued = sorted(m.queue_ms for m in runs[1].requests)  # type: ignore[type-var]
    assert queued[-1] > queued[0]
    document = report({"model_name": "x"}, settings.to_dict(), runs)
    assert document["runs"][1]["summary"]["ttft_ms_median"] is not None


def test_a_round_past_its_time_limit_is_cancelled_and_recorded(
    loaded_engine: tuple[LocalEngine, ev.ModelLoaded],
) -> None:
    engine, _ = loaded_engine
    settings = LoadSettings(concurrency=(2,), max_tokens=2000, round_timeout_s=0.05)
    (run,) = run_experiment(engine, "sequential", settings)
    assert run.timed_out and len(run.requests) == 2
    assert {m.stop_reason for m in run.requests} <= {"cancelled", "length", "eos"}
    assert "cancelled" in {m.stop_reason for m in run.requests}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (LoadSettings(concurrency=(0,)), "concurrency must be 1..32"),
        (LoadSettings(concurrency=(64,)), "concurrency must be 1..32"),
        (LoadSettings(max_tokens=0), "max tokens must be 1..2048"),
        (LoadSettings(concurrency=()), "at least one concurrency level"),
    ],
)
def test_bounds_are_clear_errors(settings: LoadSettings, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        settings.validate()


def test_concurrency_list_parsing() -> None:
    assert parse_concurrency("1, 2,4,8") == (1, 2, 4, 8)
    with pytest.raises(SettingsError, match="numbers separated by commas"):
        parse_concurrency("1;2")


def test_glassbox_load_runs_a_local_model_both_ways(tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    argv = ["load", "--concurrency", "2", "--max-tokens", "3", "--ctx", "1024"]
    assert main([*argv, "--threads", "2", "--repack", "off", "--json", str(out)]) == 0
    document = json.loads(out.read_text(encoding="utf-8"))
    runs = document["runs"]
    assert [(r["mode"], r["concurrency"], len(r["requests"])) for r in runs] == [
        ("sequential", 2, 2),
        ("batched", 2, 2),
    ]
    assert all(r["aggregate_tok_s"] > 0 for r in runs)
    assert document["settings"]["runtime"]["n_ctx"] == 1024
