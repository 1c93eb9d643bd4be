"""The load experiment dialog: rounds drawn as they finish, Stop, bad input, its own engine."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from remote_servers import StubHttpServer

TIMEOUT = 30_000


@pytest.fixture
def stub_server() -> Iterator[StubHttpServer]:
    server = StubHttpServer(slots=True, metrics=True)
    yield server
    server.close()


def _dialog(qtbot, url: str, model: str):
    from app.endpoints import Endpoint
    from app.load_source import LoadSource
    from ui.dialogs.load_dialog import LoadDialog

    dialog = LoadDialog(LoadSource(endpoint=Endpoint(url, model=model)))
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def test_rounds_fill_the_table_and_both_plots(qtbot, stub_server) -> None:
    dialog = _dialog(qtbot, stub_server.url, "vllm")
    dialog.concurrency.setText("1,3")
    dialog.start_button.click()
    qtbot.waitUntil(lambda: dialog.start_button.isEnabled(), timeout=TIMEOUT)
    assert dialog.table.rowCount() == 2
    assert [dialog.table.item(r, 1).text() for r in range(2)] == ["1", "3"]
    assert [len(r.requests) for r in dialog.runs] == [1, 3]
    assert set(dialog.throughput_curves) == {"remote"}
    xs, ys = dialog.throughput_curves["remote"].getData()
    assert list(xs) == [1.0, 3.0] and all(y > 0 for y in ys)
    xs, _ = dialog.latency_curves[("remote", "ttft_ms_median")].getData()
    assert list(xs) == [1.0, 3.0]
    assert dialog.status.text().startswith("Done: 2 round(s)")
    # Stop at 3 at once: 12 stub tokens out (4 a request); the stub reports them itself.
    assert sum(m.output_tokens for m in dialog.runs[1].requests) == 12


def test_stop_cancels_the_running_round(qtbot, stub_server) -> None:
    dialog = _dialog(qtbot, stub_server.url, "stall")  # one token, then a silent server
    dialog.concurrency.setText("2,4")
    dialog.start_button.click()
    qtbot.waitUntil(lambda: "first round" in dialog.status.text(), timeout=TIMEOUT)
    dialog.stop_button.click()
    qtbot.waitUntil(lambda: dialog.start_button.isEnabled(), timeout=TIMEOUT)
    assert dialog.status.text().startswith("Done (stopped)")
    assert len(dialog.runs) <= 1
    for run in dialog.runs:
        assert run.stopped and {m.stop_reason for m in run.requests} <= {"cancelled", "error"}


def test_bad_levels_are_a_status_line(qtbot, stub_server) -> None:
    dialog = _dialog(qtbot, stub_server.url, "vllm")
    dialog.concurrency.setText("1,99")
    dialog.start_button.click()
    assert "concurrency must be 1..32" in dialog.status.text()
    assert dialog.start_button.isEnabled() and not dialog.running()


def test_an_unreachable_server_is_reported(qtbot) -> None:
    from remote_servers import free_port

    dialog = _dialog(qtbot, f"http://127.0.0.1:{free_port()}", "vllm")
    dialog.start_button.click()
    qtbot.waitUntil(lambda: dialog.start_button.isEnabled(), timeout=TIMEOUT)
    assert "could not run: connection refused" in dialog.status.text()


def test_a_local_model_runs_sequential_and_batched_side_by_side(qtbot, model_path) -> None:
    from app.load_source import LoadSource
    from app.settings import RuntimeSettings
    from ui.dialogs.load_dialog import LoadDialog

    runtime = RuntimeSettings(n_ctx=1024, n_threads=2, repack="off")
    dialog = LoadDialog(LoadSource(model_path=model_path, runtime=runtime))
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.concurrency.setText("1,2")
    dialog.max_tokens.setValue(4)
    dialog.start_button.click()
    qtbot.waitUntil(lambda: dialog.start_button.isEnabled(), timeout=300_000)
    assert [(r.mode, r.concurrency) for r in dialog.runs] == [
        ("sequential", 1),
        ("sequential", 2),
        ("batched", 1),
        ("batched", 2),
    ], dialog.status.text()
    for mode in ("sequential", "batched"):
        xs, _ = dialog.throughput_curves[mode].getData()
        assert list(xs) == [1.0, 2.0]
