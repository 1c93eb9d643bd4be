"""`glassbox serve` as a user runs it: a real child process, the bundled model, the openai client."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys

import openai
import pytest

from helpers import sigint_as_in_a_terminal

KEY_ENV = "GLASSBOX_TEST_API_KEY"
KEY = "serve-test-key"
WAIT_S = 300


def _start(home, *args, env_extra=None):
    env = {**os.environ, "GLASSBOX_HOME": str(home), **(env_extra or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli.main", "serve", "--port", "0", "--ctx", "1024", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=sigint_as_in_a_terminal,
    )


def test_serve_answers_the_openai_client_and_stops_cleanly_on_ctrl_c(tmp_path):
    process = _start(tmp_path, "--api-key-env", KEY_ENV, env_extra={KEY_ENV: KEY})
    try:
        first = process.stdout.readline()  # "serving MODEL at URL, key from $NAME"
        assert first.startswith("serving "), first or process.stderr.read()
        words = first.split()
        model_id, url = words[1], words[3].rstrip(",")
        with openai.OpenAI(base_url=url, api_key=KEY, max_retries=0, timeout=WAIT_S) as client:
            reply = client.chat.completions.create(
                model=model_id,
                messages=[{"role": "user", "content": "Say hello."}],
                max_tokens=6,
            )
            assert reply.choices[0].message.content
            chunks = list(
                client.chat.completions.create(
                    model=model_id,
                    messages=[{"role": "user", "content": "Say goodbye."}],
                    max_tokens=6,
                    stream=True,
                )
            )
            assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        with (
            openai.OpenAI(base_url=url, api_key="nope", max_retries=0) as client,
            pytest.raises(openai.AuthenticationError),
        ):
            client.models.list()
        process.send_signal(signal.SIGINT)
        _out, err = process.communicate(timeout=WAIT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "Traceback" not in err
    assert "server stopped" in err
    assert err.count("request ") == 2  # a metrics line per served request
    with sqlite3.connect(tmp_path / "glassbox.sqlite3") as db:
        titles = [row[0] for row in db.execute("SELECT title FROM conversations ORDER BY id")]
        metrics = db.execute("SELECT count(*) FROM turn_metrics WHERE queue_ms IS NOT NULL")
        assert metrics.fetchone()[0] == 2
    assert titles == ["API · Say hello.", "API · Say goodbye."]


def test_serve_stops_on_sigterm(tmp_path):
    process = _start(tmp_path)
    try:
        assert process.stdout.readline().startswith("serving ")
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=WAIT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "server stopped" in err


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--api-key-env", "GLASSBOX_TEST_UNSET_KEY"], "GLASSBOX_TEST_UNSET_KEY is not set"),
        (["--host", "0.0.0.0"], "set a key with --api-key-env"),
        (["--port", "70000"], "--port must be 0-65535"),
    ],
)
def test_serve_refuses_bad_flags_in_one_line(tmp_path, args, fragment):
    process = _start(tmp_path, *args)
    _out, err = process.communicate(timeout=WAIT_S)
    assert process.returncode == 1
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert fragment in lines[0]
