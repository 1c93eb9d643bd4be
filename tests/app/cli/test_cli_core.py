"""`glassbox chat` and `glassbox bench` as a user runs them: real child processes."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys

import pytest

from app.metrics import FIELD_NAMES


def glassbox(args, home, stdin="", timeout=300):
    env = {**os.environ, "GLASSBOX_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "app.cli.main", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def assert_one_line_error(result, *fragments):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_bench_writes_every_field(tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Write one sentence about cats.\n\nWrite one sentence about dogs.\n")
    out = tmp_path / "bench.json"
    result = glassbox(
        [
            "bench",
            "--prompts",
            str(prompts),
            "--max-tokens",
            "24",
            "--seed",
            "3",
            "--temperature",
            "0.7",
            "--json",
            str(out),
            "--ctx",
            "1024",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["model"]["model_name"] and report["model"]["n_layers"] == 30
    assert report["settings"]["runtime"]["n_ctx"] == 1024
    assert report["settings"]["sampling"] == {
        **report["settings"]["sampling"],
        "seed": 3,
        "max_tokens": 24,
        "temperature": 0.7,
    }
    assert len(report["turns"]) == 2
    for turn in report["turns"]:
        assert list(turn) == list(FIELD_NAMES)
        assert all(turn[name] is not None for name in FIELD_NAMES), turn
    assert report["turns"][1]["prompt_tokens_cached"] > 0
    # The table: a header and one row a turn.
    rows = [line for line in result.stdout.splitlines() if line.strip()]
    assert rows[0].split()[0] == "turn" and len(rows) == 3


def test_chat_reads_stdin_and_stores_the_conversation(tmp_path):
    result = glassbox(
        ["chat", "--max-tokens", "16", "--temperature", "0", "--ctx", "512"],
        tmp_path,
        stdin="What is the capital of France?\n",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    # The metrics table bench and the demo print: its header, then the turn's row.
    lines = result.stderr.splitlines()
    header = next(line for line in lines if line.split()[:1] == ["turn"])
    assert "ttft" in header and "decode t/s" in header and "kv" in header
    assert lines[lines.index(header) + 1].split()[0] == "1"
    with sqlite3.connect(tmp_path / "glassbox.sqlite3") as db:
        rows = db.execute("SELECT role, content, partial FROM messages ORDER BY id").fetchall()
        metrics = db.execute("SELECT output_tokens, stop_reason FROM turn_metrics").fetchall()
    assert rows[0] == ("user", "What is the capital of France?", 0)
    assert rows[1][0] == "assistant" and rows[1][1].strip() == result.stdout.strip()
    assert len(metrics) == 1 and metrics[0][0] > 0


def test_missing_model_file(tmp_path):
    result = glassbox(["chat", "--model", str(tmp_path / "missing.gguf")], tmp_path, "hi")
    assert_one_line_error(result, "missing.gguf")


def test_not_a_gguf(tmp_path):
    bad = tmp_path / "photo.gguf"
    bad.write_bytes(b"\x89PNG\r\n" + b"\0" * 500)
    assert_one_line_error(glassbox(["chat", "--model", str(bad)], tmp_path, "hi"), "GGUF")


def test_truncated_gguf(bundled_model, tmp_path):
    cut = tmp_path / "cut.gguf"
    with open(bundled_model, "rb") as src:
        cut.write_bytes(src.read(30_000_000))
    assert_one_line_error(
        glassbox(["bench", "--model", str(cut), "--prompts", str(cut)], tmp_path), "truncated"
    )


def test_corrupted_gguf(bundled_model, tmp_path):
    bad = tmp_path / "bad.gguf"
    shutil.copy(bundled_model, bad)
    with open(bad, "r+b") as f:
        f.seek(16)  # metadata key count
        f.write((2**40).to_bytes(8, "little"))
    result = glassbox(["chat", "--model", str(bad)], tmp_path, "hi")
    assert_one_line_error(result, "bad.gguf")


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        (["--ctx", "0"], "n_ctx"),
        (["--threads", "0"], "threads"),
        (["--temperature", "-1"], "temperature"),
        (["--top-p", "2"], "top-p"),
        (["--max-tokens", "0"], "max tokens"),
    ],
)
def test_invalid_settings(tmp_path, flags, fragment):
    assert_one_line_error(glassbox(["chat", *flags], tmp_path, "hi"), fragment)


def test_message_longer_than_the_context_names_both_counts(tmp_path):
    result = glassbox(["chat", "--ctx", "256"], tmp_path, stdin="word " * 2000)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "context holds 256 tokens" in result.stderr and "the message is" in result.stderr


def test_empty_prompts_file(tmp_path):
    prompts = tmp_path / "empty.txt"
    prompts.write_text("\n\n")
    assert_one_line_error(glassbox(["bench", "--prompts", str(prompts)], tmp_path), "no prompts")


def test_flags_without_a_command_open_the_app(tmp_path):
    # `glassbox --model X` is the desktop app with that model; a bad path is one line.
    result = glassbox(["--model", str(tmp_path / "gone.gguf")], tmp_path)
    assert_one_line_error(result, "gone.gguf")
