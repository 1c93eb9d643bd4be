"""`glassbox chat --parallel N`: the terminal chat on batched decode, same replies at temperature 0."""

from __future__ import annotations

import os
import subprocess
import sys

from app.storage.store import Store

from helpers import sigint_as_in_a_terminal

COMMAND = [sys.executable, "-m", "app.cli.main", "chat", "--max-tokens", "8", "--ctx", "1024"]
SERVE = [sys.executable, "-m", "app.cli.main", "serve", "--port", "0", "--ctx", "1024"]
FLAGS = ["--temperature", "0", "--threads", "2", "--repack", "off", "--each-line"]


def chat(home, stdin, *args):
    env = {**os.environ, "GLASSBOX_HOME": str(home)}
    return subprocess.run(
        [*COMMAND, *FLAGS, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def stored_replies(home):
    store = Store.open(home / "glassbox.sqlite3")
    try:
        replies = [m for m in store.messages(1) if m.role == "assistant"]
    finally:
        store.close()
    return [(m.content, m.runtime_settings["n_parallel"]) for m in replies]


def test_parallel_two_serves_the_chat_batched_with_the_replies_of_one(tmp_path):
    prompts = "What is 2+2?\nName a colour.\n"
    batched = chat(tmp_path / "two", prompts, "--parallel", "2")
    assert batched.returncode == 0, batched.stderr
    assert "2 parallel sequences (batched decode)" in batched.stderr
    plain = chat(tmp_path / "one", prompts)
    assert plain.returncode == 0, plain.stderr
    assert "parallel" not in plain.stderr
    two, one = stored_replies(tmp_path / "two"), stored_replies(tmp_path / "one")
    assert [n for _text, n in two] == [2, 2] and [n for _text, n in one] == [1, 1]
    assert [text for text, _n in two] == [text for text, _n in one]
    assert all(text for text, _n in two)


def test_serve_with_parallel_two_answers_concurrent_requests_batched(tmp_path):
    import signal
    from concurrent.futures import ThreadPoolExecutor

    import openai

    env = {**os.environ, "GLASSBOX_HOME": str(tmp_path)}
    process = subprocess.Popen(
        [*SERVE, "--threads", "2", "--repack", "off", "--parallel", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=sigint_as_in_a_terminal,
    )
    try:
        first = process.stdout.readline()  # "serving MODEL at URL, ..."
        assert first.startswith("serving "), first or process.stderr.read()
        model_id, url = first.split()[1], first.split()[3].rstrip(",")
        with openai.OpenAI(base_url=url, api_key="none", max_retries=0, timeout=300) as client:

            def ask(text: str) -> str:
                reply = client.chat.completions.create(
                    model=model_id,
                    messages=[{"role": "user", "content": text}],
                    max_tokens=24,
                    temperature=0,
                )
                return reply.choices[0].message.content or ""

            with ThreadPoolExecutor(2) as pool:
                answers = list(pool.map(ask, ["Write about rain.", "Write about snow."]))
        process.send_signal(signal.SIGINT)
        _out, err = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert all(answers)
    store = Store.open(tmp_path / "glassbox.sqlite3")
    try:
        replies = [
            m
            for c in store.list_conversations()
            for m in store.messages(c.id)
            if m.role == "assistant"
        ]
    finally:
        store.close()
    assert sorted(m.content for m in replies) == sorted(answers)
    assert [m.runtime_settings["n_parallel"] for m in replies] == [2, 2]


def test_the_load_experiment_refuses_parallel_in_one_line(capsys):
    from app.cli.main import main

    assert main(["load", "--parallel", "2", "--concurrency", "1"]) == 1
    assert capsys.readouterr().err == (
        "glassbox: --parallel sets the chat's sequences; the experiment's come from --concurrency\n"
    )
