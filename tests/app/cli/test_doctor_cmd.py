"""`glassbox doctor` as a user runs it: a real child process, the bundled model."""

from __future__ import annotations

import os
import subprocess
import sys

from app.engine.worker import FAULT_ENV

SECTIONS = (
    "## CPU",
    "## llama.cpp build",
    "## Weight repacking",
    "## Threads",
    "## Decode check",
    "## Files",
)


def doctor(tmp_path, *args, **env):
    full_env = {
        **os.environ,
        "GLASSBOX_HOME": str(tmp_path / "home"),
        "GLASSBOX_CACHE": str(tmp_path / "cache"),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "app.cli.main", "doctor", "--threads", "2", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=300,
    )


def test_doctor_prints_every_section_and_passes(tmp_path):
    result = doctor(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for section in SECTIONS:
        assert section in out
    # llama_print_system_info, as llama.cpp sees it (a GPU build may list its backend first).
    assert any(
        line.strip().startswith("system info") and "CPU :" in line for line in out.splitlines()
    )
    assert "usable cores" in out and "2 decode / 2 prefill (explicit)" in out
    assert "status         ok" in out
    assert str(tmp_path / "home") in out and str(tmp_path / "cache") in out
    assert out.rstrip().endswith("result: ok")


def test_doctor_reports_a_repack_fallback_and_still_passes(tmp_path):
    result = doctor(tmp_path, **{FAULT_ENV: "warmup"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "running without weight repacking" in result.stdout
    assert "allowed        no" in result.stdout
    assert "stored         off since" in result.stdout
    assert (tmp_path / "cache" / "repack_decisions.json").is_file()


def test_doctor_fails_when_the_engine_cannot_run(tmp_path):
    # Repacking forced on with the fault armed: the worker dies while warming up
    # and, since the user asked for repacking, there is no fallback.
    result = doctor(tmp_path, "--repack", "on", **{FAULT_ENV: "warmup"})
    assert result.returncode == 1
    assert "failed while loading the model" in result.stdout
    assert "SIGSEGV" in result.stdout
    assert result.stdout.rstrip().endswith("result: FAILED")
    assert "Traceback" not in result.stderr
