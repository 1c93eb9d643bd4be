"""The one background runner: outcomes and progress come back on the GUI thread, in order."""

from __future__ import annotations

import threading

from ui.infra.tasks import BackgroundTasks


def test_callbacks_run_on_the_gui_thread_in_submission_order(qtbot) -> None:
    tasks = BackgroundTasks()
    seen: list[tuple[int, bool]] = []
    failures: list[str] = []
    tasks.failed.connect(failures.append)
    gui = threading.current_thread()
    with qtbot.waitSignal(tasks.idle, timeout=10_000):
        for i in range(50):
            tasks.run(
                lambda i=i: (i, threading.current_thread() is not gui),
                on_done=lambda r: seen.append((r[0], r[1] and threading.current_thread() is gui)),
            )
        tasks.run(lambda: 1 / 0)
    assert seen == [(i, True) for i in range(50)]  # ran on a worker, reported on the GUI
    assert failures == ["ZeroDivisionError: division by zero"] and tasks.pending() == 0
    tasks.shutdown()
    tasks.run(lambda: seen.append((-1, False)))  # after shutdown: dropped
    assert tasks.wait(5) and seen[-1] == (49, True)


def test_progress_is_coalesced_and_precedes_the_result(qtbot) -> None:
    tasks = BackgroundTasks(max_workers=4)
    events: list[object] = []

    def count(report) -> str:
        for n in range(1000):
            report(n)
        return "done"

    with qtbot.waitSignal(tasks.idle, timeout=10_000):
        tasks.run_with_progress(count, events.append, None, events.append)
    assert events[-2:] == [999, "done"] and len(events) <= 1001
    assert events[:-1] == sorted(events[:-1])
    tasks.shutdown()
