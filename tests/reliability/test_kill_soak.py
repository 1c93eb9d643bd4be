"""The real `glassbox chat`, fed a message on stdin, SIGKILLed at random moments.

After every kill: the database passes integrity_check, every message whose commit the
process had shown (a reply token on stdout comes after the user message's commit; a
clean exit after the reply's) is there, and the worker does not outlive its parent.
One database takes every run, as a user's would.

GLASSBOX_SOAK_KILLS sets the number of kills (default 10; the README's figure is from
GLASSBOX_SOAK_KILLS=100). GLASSBOX_SOAK_SEED repeats a run's kill moments.
"""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.storage.store import Store

REPO_ROOT = Path(__file__).resolve().parents[2]
KILLS = int(os.environ.get("GLASSBOX_SOAK_KILLS", "10"))
# One thread: decode threads that spin-wait are slow on a busy 2-core machine, and a
# short reply keeps each run to a few seconds.
CHAT_ARGS = [
    *("chat", "--ctx", "512", "--max-tokens", "64", "--temperature", "0"),
    *("--repack", "off", "--threads", "1"),
]
WORKER_EXIT_S = 30.0


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found.update(int(c) for c in (task / "children").read_text().split())
    except OSError:
        pass
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead, only not yet reaped


def _run_chat(
    home: Path, text: str, kill_after_s: float | None, *, from_first_output: bool = False
) -> tuple[str, bool, float | None]:
    """(stdout, whether it was killed, seconds to its first reply text); the worker must
    be gone afterwards. kill_after_s counts from the start, or from the first reply text
    on stdout (from_first_output); None: no kill."""
    env = dict(os.environ, GLASSBOX_HOME=str(home), PYTHONPATH=str(REPO_ROOT))
    message = home.parent / "message.txt"
    message.write_text(text, encoding="utf-8")
    with message.open("rb") as stdin:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli.main", *CHAT_ARGS],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=REPO_ROOT,
        )
    assert proc.stdout is not None
    started = time.monotonic()
    limit = started + 600.0
    deadline = limit if kill_after_s is None or from_first_output else started + kill_after_s
    output, first_output_s = b"", None
    workers: set[int] = set()
    while time.monotonic() < min(deadline, limit) and proc.poll() is None:
        workers |= _children(proc.pid)
        ready, _, _ = select.select([proc.stdout], [], [], 0.01)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 65536)
            if chunk and first_output_s is None:
                first_output_s = time.monotonic() - started
                if from_first_output and kill_after_s is not None:
                    deadline = time.monotonic() + kill_after_s
            output += chunk
    killed = False
    if proc.poll() is None:
        workers |= _children(proc.pid)
        proc.send_signal(signal.SIGKILL)
        killed = True
    rest, stderr = proc.communicate(timeout=300)
    output += rest
    # The orphaned worker notices its parent's pipe closed and exits.
    gone_by = time.monotonic() + WORKER_EXIT_S
    while any(_alive(pid) for pid in workers) and time.monotonic() < gone_by:
        time.sleep(0.05)
    left = [pid for pid in workers if _alive(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"worker {left} outlived its killed parent"
    if not killed:
        assert proc.returncode == 0, stderr.decode(errors="replace")[-2000:]
    return output.decode(errors="replace"), killed, first_output_s


# A run takes a few seconds on a quiet machine, far more on a busy one.
@pytest.mark.timeout(300 + 120 * KILLS)
def test_killed_chat_processes_lose_nothing_they_committed(tmp_path: Path) -> None:
    seed = int(os.environ.get("GLASSBOX_SOAK_SEED", str(random.SystemRandom().randrange(10**6))))
    rng = random.Random(seed)
    home = tmp_path / "home"
    # One unkilled run first: its length scales the kill moments to this machine.
    started = time.monotonic()
    reply, _, first_output_s = _run_chat(home, "Warm-up: say hello.", None)
    full_run_s = time.monotonic() - started
    assert reply.strip() and first_output_s is not None
    promised_users: list[str] = ["Warm-up: say hello."]
    promised_replies = 1
    runs = killed_runs = partial_replies = 0
    # Until KILLS runs were killed: a run that finishes before its kill moment is checked
    # too, and its timings rescale the next kill moments to the machine's current pace.
    while killed_runs < KILLS and runs < 3 * KILLS:
        text = f"Soak {seed}-{runs}: name three colours."
        # Half the kills anywhere in a run (start-up, load, prompt), half while the
        # reply streams and is flushed, where the writes are: counted from its first text.
        streaming = runs % 2 == 0
        if streaming:
            kill_after = rng.uniform(0.0, max(full_run_s - first_output_s, 0.1))
        else:
            kill_after = rng.uniform(0.0, full_run_s)
        run_started = time.monotonic()
        stdout, killed, first = _run_chat(home, text, kill_after, from_first_output=streaming)
        runs += 1
        killed_runs += killed
        if stdout:  # a token was printed: the user message had been committed
            promised_users.append(text)
        if not killed:
            promised_replies += 1
            full_run_s = time.monotonic() - run_started
            first_output_s = first if first is not None else first_output_s
        with Store.open(home / "glassbox.sqlite3") as store:
            assert store.recovered is None
            assert store.integrity_check() == "ok", f"run {runs} (seed {seed})"
            messages = [m for c in store.list_conversations() for m in store.messages(c.id)]
            contents = {m.content for m in messages if m.role == "user"}
            missing = [t for t in promised_users if t not in contents]
            assert not missing, f"lost after run {runs} (seed {seed}): {missing}"
            finished = [m for m in messages if m.role == "assistant" and not m.partial]
            assert len(finished) >= promised_replies, f"run {runs} (seed {seed})"
            assert all(m.stop_reason for m in finished)
            partial_replies = sum(m.role == "assistant" and m.partial for m in messages)
    print(
        f"kill soak (seed {seed}): {runs} runs, {killed_runs} killed, {runs - killed_runs} "
        f"finished first; integrity_check ok after every run; {len(promised_users)} promised "
        f"user messages and {promised_replies} finished replies all kept; {partial_replies} "
        f"partial replies stored; the last full run took {full_run_s:.1f} s, its reply began "
        f"at {first_output_s:.1f} s"
    )
    assert killed_runs == KILLS
