"""Other programs' CPU use during a measurement, from /proc files written as fixtures."""

from __future__ import annotations

import os

import pytest

from app.engine.cpu_activity import BUSY_CORES, others_cores, snapshot


def _proc(tmp_path, stat_line: str, pids: dict[int, tuple[int, int]]):
    (tmp_path / "stat").write_text(f"{stat_line}\ncpu0 0 0 0 0 0 0 0 0\n")
    for pid, (utime, stime) in pids.items():
        folder = tmp_path / str(pid)
        folder.mkdir(exist_ok=True)
        # Field 2 (the command) holds a space and a parenthesis on purpose.
        rest = ["S"] + ["0"] * 10 + [str(utime), str(stime)] + ["0"] * 30
        (folder / "stat").write_text(f"{pid} (python (x) y) " + " ".join(rest) + "\n")
    return tmp_path


def test_only_other_programs_count(tmp_path):
    # 2 CPUs, 100 ticks each elapsed: 200 ticks, 170 busy, of which ours 150, others 20.
    before = snapshot([7], _proc(tmp_path, "cpu 100 0 0 1000 0 0 0 0", {7: (50, 0)}))
    after = snapshot([7], _proc(tmp_path, "cpu 260 0 10 1030 0 0 0 0", {7: (180, 20)}))
    assert others_cores(before, after, n_cpus=2) == pytest.approx(20 / 200 * 2)
    assert others_cores(before, after, n_cpus=2) < BUSY_CORES


def test_a_busy_machine_is_seen(tmp_path):
    before = snapshot([7], _proc(tmp_path, "cpu 0 0 0 0 0 0 0 0", {7: (0, 0)}))
    after = snapshot([7], _proc(tmp_path, "cpu 190 0 0 10 0 0 0 0", {7: (100, 0)}))
    assert others_cores(before, after, n_cpus=2) == pytest.approx(0.9)


def test_unknown_without_proc(tmp_path):
    assert snapshot([1], tmp_path / "missing") is None
    assert others_cores(None, None, 2) is None


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="Linux only")
def test_reads_this_machine():
    first = snapshot([os.getpid()])
    sum(i * i for i in range(200_000))
    second = snapshot([os.getpid()])
    assert second.own_ticks >= first.own_ticks and second.total_ticks >= first.total_ticks
