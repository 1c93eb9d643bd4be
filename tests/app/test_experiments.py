"""A/B experiments: --compare specs, and a real run on the bundled model with two thread counts."""

from __future__ import annotations

import json

import pytest

from app.cli.main import main
from app.experiments import RATIO_FIELDS, ExperimentError, parse_config
from app.metrics import FIELD_NAMES
from app.settings import RuntimeSettings


def test_compare_specs_override_the_base_settings(bundled_model):
    base = RuntimeSettings(n_ctx=2048)
    config = parse_config("threads=1 ctx=4096 kv=q8_0 fa=1 batch=256", base, bundled_model)
    assert config.runtime == base.with_changes(
        n_threads=1,
        n_threads_batch=1,
        n_ctx=4096,
        kv_cache_type="q8_0",
        flash_attn=True,
        n_batch=256,
    )
    assert config.label == "threads=1 ctx=4096 kv=q8_0 fa=1 batch=256"
    assert parse_config(f"model={bundled_model}", base, bundled_model).model == bundled_model


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("threads", "is not KEY=VALUE"),
        ("speed=3", "unknown key 'speed'"),
        ("threads=two", "threads must be a whole number"),
        ("kv=q3", "kv must be one of"),
        ("kv=q8_0", "needs flash attention"),
        ("ctx=0", "n_ctx must be a positive number"),
        ("model=/nonexistent/x.gguf", "--compare 'model=/nonexistent/x.gguf'"),
    ],
)
def test_a_bad_compare_spec_is_one_clear_line(bundled_model, spec, fragment):
    with pytest.raises(ExperimentError) as caught:
        parse_config(spec, RuntimeSettings(), bundled_model)
    message = str(caught.value)
    assert fragment in message and "\n" not in message


def test_compare_two_thread_counts_reports_both_sides_and_ratios(tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Name a fruit.\nName a colour.\n", encoding="utf-8")
    out = tmp_path / "ab.json"
    code = main(
        [
            "bench",
            "--prompts", str(prompts),
            "--compare", "threads=1",
            "--compare", "threads=2 ctx=1024",
            "--max-tokens", "12",
            "--temperature", "0",
            "--json", str(out),
        ]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads(out.read_text(encoding="utf-8"))
    sides = report["sides"]
    assert [s["label"] for s in sides] == ["threads=1", "threads=2 ctx=1024"]
    assert [s["n_threads"] for s in sides] == [1, 2]
    assert sides[1]["settings"]["n_ctx"] == 1024
    for side in sides:
        assert len(side["turns"]) == 2
        assert set(side["turns"][0]) == set(FIELD_NAMES)
        assert all(t["decode_tok_s"] and t["ttft_ms"] for t in side["turns"])
    (ratios,) = report["ratios"]
    assert set(ratios["medians"]) == set(RATIO_FIELDS)
    decode = [s["medians"]["decode_tok_s"] for s in sides]
    assert ratios["medians"]["decode_tok_s"] == pytest.approx(decode[1] / decode[0])
    assert len(ratios["per_turn"]) == 2
    # Greedy on the same model: both sides say the same thing.
    assert sides[0]["turns"][0]["output_tokens"] == sides[1]["turns"][0]["output_tokens"]
    table = captured.out
    assert "threads=1" in table and "threads=2 ctx=1024" in table and "ratio 2/1" in table


def test_compare_with_a_remote_endpoint_is_refused_in_one_line(tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Hi.\n", encoding="utf-8")
    code = main(
        [
            "bench",
            "--prompts",
            str(prompts),
            "--compare",
            "threads=1",
            "--endpoint",
            "http://127.0.0.1:9",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err == "glassbox: --compare runs local models; it cannot be used with --endpoint"
