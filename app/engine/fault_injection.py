"""Crashes on purpose, for the tests that check the parent survives the worker.

Read only in the worker process, from GLASSBOX_TEST_FAULT (app.engine.worker.FAULT_ENV),
which the worker inherits when it is spawned. Besides the repack faults the
worker handles itself ("warmup", "first-turn"), this module knows:

- "crash:HOW:WHERE": HOW is sigkill, sigsegv (a real invalid read), abort
  (SIGABRT, as llama.cpp's GGML_ABORT) or exit (exit code EXIT_CODE); WHERE is
  "load" (before llama.cpp opens the file) or "token" (after the turn's first
  CRASH_AFTER_TOKEN_SENDS token messages went to the parent, mid-reply).
- "rlimit-as" or "rlimit-as:MIB": the next load runs under an address-space
  limit (RLIMIT_AS) of the worker's current size plus MIB (default 16) MiB, so
  llama.cpp's mapping of the weights fails; the limit is lifted afterwards.

Each fault fires once per worker process; a test changes the variable before
the next worker is spawned.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
from collections.abc import Iterator
from typing import Any

from app.engine import events as ev
from app.engine.token_batch import TokenBatch

FAULT_ENV = "GLASSBOX_TEST_FAULT"
EXIT_CODE = 3
CRASH_AFTER_TOKEN_SENDS = 3
DEFAULT_HEADROOM_MIB = 16
CRASH_KINDS = ("sigkill", "sigsegv", "abort", "exit")

_fired: set[str] = set()


def _fault() -> str:
    return os.environ.get(FAULT_ENV, "")


def crash_now(how: str) -> None:
    """Die the way `how` says; never returns."""
    # The parent shows the worker log's last line with the crash.
    os.write(2, f"glassbox test fault: {how}\n".encode())
    with contextlib.suppress(ImportError, ValueError, OSError):
        import resource  # noqa: PLC0415 - POSIX only

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file per test crash
    if how == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif how == "sigsegv":
        ctypes.string_at(0)  # an invalid read, as a native bug would do
    elif how == "abort":
        os.abort()
    os._exit(EXIT_CODE)


def _crash_kind(where: str) -> str | None:
    """HOW, when the fault is "crash:HOW:WHERE" for this place and has not fired here;
    marks it fired."""
    fault = _fault()
    parts = fault.split(":")
    wanted = len(parts) == 3 and parts[0] == "crash" and parts[2] == where
    if not wanted or parts[1] not in CRASH_KINDS or fault in _fired:
        return None
    _fired.add(fault)
    return parts[1]


def maybe_crash(where: str) -> None:
    """Crash here when the fault names this place and has not fired in this process."""
    how = _crash_kind(where)
    if how is not None:
        crash_now(how)


class _CrashAfterTokens:
    """The worker's connection, which crashes after a few token messages were sent."""

    def __init__(self, conn: Any, how: str) -> None:
        self._conn, self._how, self._sent = conn, how, 0

    def send(self, message: Any) -> None:
        self._conn.send(message)
        if isinstance(message, TokenBatch | ev.Token):
            self._sent += 1
            if self._sent >= CRASH_AFTER_TOKEN_SENDS:
                crash_now(self._how)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def turn_connection(conn: Any) -> Any:
    """`conn`, or a wrapper that crashes mid-reply when the fault says "token"."""
    how = _crash_kind("token")
    return conn if how is None else _CrashAfterTokens(conn, how)


def _address_space_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


@contextlib.contextmanager
def load_limits() -> Iterator[None]:
    """Around a load: the "rlimit-as" fault's address-space limit, lifted afterwards."""
    fault = _fault()
    if not fault.startswith("rlimit-as") or fault in _fired:
        yield
        return
    _fired.add(fault)
    import resource  # noqa: PLC0415 - POSIX only, and only for this test fault

    _, _, mib = fault.partition(":")
    limit = _address_space_bytes() + int(mib or DEFAULT_HEADROOM_MIB) * 2**20
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    os.write(2, f"glassbox test fault: RLIMIT_AS {limit >> 20} MiB for this load\n".encode())
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
