"""`glassbox chat/bench --endpoint`: the same output and JSON as with a local model."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from remote_servers import WORDS, StubHttpServer

from app.cli.main import main
from app.metrics import FIELD_NAMES


def test_bench_with_an_endpoint_writes_the_local_bench_json(
    stub: StubHttpServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("hello\nagain\n", encoding="utf-8")
    out = tmp_path / "bench.json"
    argv = ["bench", "--endpoint", stub.url + "/v1", "--remote-model", "vllm"]
    assert main([*argv, "--prompts", str(prompts), "--json", str(out)]) == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    assert set(report) >= {"model", "settings", "turns"}
    assert report["model"]["model_name"] == "vllm" and report["model"]["backend"] == "remote"
    assert report["settings"]["runtime"] == {"endpoint": stub.url, "model": "vllm"}
    assert len(report["turns"]) == 2
    for turn in report["turns"]:
        assert set(turn) == set(FIELD_NAMES)
        assert turn["prompt_tokens"] == 12 and turn["kv_fill"] == 0.25
    assert "remote " + stub.url in capsys.readouterr().err


def test_chat_with_an_endpoint_streams_and_reports_a_fault(
    stub: StubHttpServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("hi"))
    assert main(["chat", "--endpoint", stub.url, "--remote-model", "midclose"]) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith("Hello there")
    assert "closed the connection mid-reply after 2 tokens" in captured.err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--endpoint", "http://127.0.0.1:9", "--model", "x.gguf"], "use --remote-model NAME"),
        (["--endpoint", "http://127.0.0.1:9", "--threads", "2"], "--threads is for a local model"),
        (["--remote-model", "m"], "--remote-model needs --endpoint URL"),
        (["--endpoint", "127.0.0.1:9"], "endpoint URL must look like"),
    ],
)
def test_bad_endpoint_flags_are_one_line_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["chat", *argv]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_a_saved_endpoint_is_used_by_its_name(
    stub: StubHttpServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.endpoints import Endpoint, save_endpoints

    save_endpoints([Endpoint(stub.url, model="vllm", name="lab")])
    monkeypatch.setattr("sys.stdin", io.StringIO("hi"))
    assert main(["chat", "--endpoint", "lab"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == "".join(WORDS)
    assert captured.err.startswith("vllm | remote " + stub.url)


@pytest.mark.parametrize("command", ["chat", "bench", "load", "gui"])
def test_every_model_command_takes_the_endpoint_flags(command: str) -> None:
    from app.cli.main import build_parser

    extra = ["--prompts", "p.txt"] if command == "bench" else []
    args = build_parser().parse_args(
        [command, "--endpoint", "http://h:1", "--api-key-env", "K", "--remote-model", "m", *extra]
    )
    assert (args.endpoint, args.api_key_env, args.remote_model) == ("http://h:1", "K", "m")
