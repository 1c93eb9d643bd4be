"""How much CPU other programs used while Glassbox measured something.

A thread measurement taken while another program keeps the cores busy says
more about that program than about this machine: on a 2-core machine, a
second llama.cpp process slowed decode 10-50x. The measurement is then still
used for this session but not remembered. Linux only (/proc); elsewhere the
share is unknown (None) and the result is remembered as before.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
# Other programs may use this much of one core on average (a browser tab, an
# editor) without changing which thread count is fastest.
BUSY_CORES = 0.25


@dataclass(frozen=True)
class CpuSnapshot:
    busy_ticks: int  # all CPUs, every process (/proc/stat: user+nice+system+irq+softirq+steal)
    total_ticks: int  # the same plus idle and iowait
    own_ticks: int  # the processes we asked about (utime+stime of each)


def _process_ticks(pid: int, proc: Path) -> int:
    try:
        text = (proc / str(pid) / "stat").read_text()
    except OSError:
        return 0
    # The command name (field 2) may hold spaces; the fields after it are fixed.
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


def snapshot(pids: Iterable[int], proc: Path = PROC) -> CpuSnapshot | None:
    try:
        first = (proc / "stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    values = [int(v) for v in first[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = values + [0] * (8 - len(values))
    busy = user + nice + system + irq + softirq + steal
    own = sum(_process_ticks(pid, proc) for pid in set(pids))
    return CpuSnapshot(busy, busy + idle + iowait, own)


def others_cores(
    before: CpuSnapshot | None, after: CpuSnapshot | None, n_cpus: int
) -> float | None:
    """Cores' worth of CPU that processes other than ours used between two snapshots."""
    if before is None or after is None:
        return None
    elapsed = after.total_ticks - before.total_ticks
    if elapsed <= 0:
        return None
    others = (after.busy_ticks - before.busy_ticks) - (after.own_ticks - before.own_ticks)
    return max(0.0, others) / elapsed * n_cpus


def cpu_count() -> int:
    return os.cpu_count() or 1
