"""The model library dialog: local list with fit verdicts, Hub search and downloads.

The Hub is the fake one from tests/app/models/fake_hub.py (loaded by path),
speaking HTTP on 127.0.0.1; everything else is real.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QCoreApplication, QEvent, Qt

from ui.dialogs.models import ModelsDialog

from fake_hub import running_fake_hub

REPO = "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF"
FILENAME = "SmolLM2-135M-Instruct-Q4_1.gguf"
WAIT_MS = 60_000


@pytest.fixture
def hub(glassbox_home: Path, monkeypatch: pytest.MonkeyPatch, model_path: str) -> Iterator[Any]:
    monkeypatch.setenv("HF_HUB_CACHE", str(glassbox_home / "hf-hub"))
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with running_fake_hub() as fake:
        monkeypatch.setenv("HF_ENDPOINT", fake.url)
        fake.add_file(REPO, FILENAME, Path(model_path).read_bytes())
        yield fake


@pytest.fixture
def chosen() -> list[Path]:
    return []


@pytest.fixture
def dialog(qtbot: Any, hub: Any, chosen: list[Path]) -> Iterator[ModelsDialog]:
    # Collect garbage Qt wrappers (from earlier tests) here, in the GUI thread:
    # Python's cyclic GC runs in whichever thread allocates, and a Qt wrapper
    # collected on a download thread crashes the process.
    gc.collect()
    dlg = ModelsDialog(None, on_model_chosen=chosen.append)
    qtbot.waitSignal(dlg.library_loaded, timeout=WAIT_MS).wait()
    yield dlg
    dlg.hub_tab.cancel_download()
    assert dlg.jobs.wait(30)
    dlg.close()
    dlg.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    del dlg
    gc.collect()


def _column(table: Any, column: int) -> list[str]:
    return [table.item(r, column).text() for r in range(table.rowCount())]


def _search_and_list(qtbot: Any, dialog: ModelsDialog) -> None:
    tab = dialog.hub_tab
    tab.search_edit.setText("smollm2")
    with qtbot.waitSignal(tab.search_finished, timeout=WAIT_MS) as found:
        qtbot.mouseClick(tab.search_button, Qt.MouseButton.LeftButton)
    assert found.args == [1]
    with qtbot.waitSignal(tab.files_listed, timeout=WAIT_MS):
        tab.repo_list.setCurrentRow(0)


def test_library_lists_the_bundled_model_with_a_fit(
    qtbot: Any, dialog: ModelsDialog, chosen: list[Path], model_path: str
) -> None:
    table = dialog.library_table
    row = _column(table, 7).index(model_path)
    assert table.item(row, 1).text() == "Q4_1"
    assert table.item(row, 5).text().split()[0] in ("fits", "tight", "won't")
    table.selectRow(row)
    with qtbot.waitSignal(dialog.model_chosen, timeout=WAIT_MS) as picked:
        qtbot.mouseClick(dialog.use_button, Qt.MouseButton.LeftButton)
    assert picked.args == [model_path]
    assert chosen == [Path(model_path)]


def test_search_download_and_use(qtbot: Any, dialog: ModelsDialog, chosen: list[Path]) -> None:
    _search_and_list(qtbot, dialog)
    tab = dialog.hub_tab
    assert _column(tab.files_table, 0) == [FILENAME]
    assert _column(tab.files_table, 1) == ["Q4_1"]
    assert _column(tab.files_table, 2) == ["93.8 MiB"]
    progress: list[Any] = []
    tab.download_progressed.connect(progress.append)
    with (
        qtbot.waitSignal(dialog.library_loaded, timeout=WAIT_MS),
        qtbot.waitSignal(tab.download_finished, timeout=WAIT_MS) as done,
    ):
        qtbot.mouseClick(tab.download_button, Qt.MouseButton.LeftButton)
    path = Path(done.args[0])
    assert path.name == FILENAME and path.is_file()
    assert progress and progress[-1].done_bytes == path.stat().st_size
    assert {p.phase for p in progress} == {"downloading", "verifying"}
    assert "Downloaded and verified" in tab.status.text()
    # The new model is in the library, selected; "Use this model" hands it over.
    assert dialog.tabs.currentIndex() == 0
    assert dialog.entries()[dialog.library_table.currentRow()].path == path
    with qtbot.waitSignal(dialog.model_chosen, timeout=WAIT_MS):
        qtbot.mouseClick(dialog.use_button, Qt.MouseButton.LeftButton)
    assert chosen == [path]


def test_cancel_leaves_nothing(
    qtbot: Any, dialog: ModelsDialog, hub: Any, glassbox_home: Path
) -> None:
    served = hub.repos[REPO][FILENAME]
    served.release, served.hold_after = threading.Event(), 1 << 20  # the body pauses at 1 MiB
    _search_and_list(qtbot, dialog)
    tab = dialog.hub_tab
    try:
        with qtbot.waitSignal(tab.download_progressed, timeout=WAIT_MS):
            qtbot.mouseClick(tab.download_button, Qt.MouseButton.LeftButton)
        assert tab.cancel_button.isEnabled()
        with qtbot.waitSignal(tab.download_failed, timeout=WAIT_MS) as failed:
            qtbot.mouseClick(tab.cancel_button, Qt.MouseButton.LeftButton)
            served.release.set()
    finally:
        served.release.set()
    assert failed.args == ["download cancelled; nothing was kept"]
    assert tab.download_button.isEnabled() and not tab.cancel_button.isEnabled()
    leftovers = [p for p in (glassbox_home / "hf-hub").rglob("*") if p.is_file() or p.is_symlink()]
    assert [p for p in leftovers if p.suffix != ".lock" and p.name != "CACHEDIR.TAG"] == []


def test_offline_says_so(qtbot: Any, dialog: ModelsDialog, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tab = dialog.hub_tab
    tab.search_edit.setText("anything")
    qtbot.mouseClick(tab.search_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "offline" in tab.status.text(), timeout=WAIT_MS)
    assert tab.search_button.isEnabled()
    assert dialog.library_table.rowCount() >= 1  # cached and bundled models still listed


def test_missing_repo_and_moved_file(
    qtbot: Any, dialog: ModelsDialog, tmp_path: Path, model_path: str
) -> None:
    tab = dialog.hub_tab
    tab.list_files("nobody/nothing")
    qtbot.waitUntil(lambda: "no repository nobody/nothing" in tab.status.text(), timeout=WAIT_MS)

    folder = tmp_path / "extra"
    folder.mkdir()
    copy = folder / "copy.gguf"
    copy.write_bytes(Path(model_path).read_bytes())
    with qtbot.waitSignal(dialog.library_loaded, timeout=WAIT_MS):
        dialog.add_folder(folder)
    assert dialog.select_path(copy)
    copy.unlink()
    with qtbot.waitSignal(dialog.library_loaded, timeout=WAIT_MS):
        qtbot.mouseClick(dialog.use_button, Qt.MouseButton.LeftButton)
    assert "moved or deleted" in dialog.library_status.text() or str(copy) not in _column(
        dialog.library_table, 7
    )
    assert str(copy) not in _column(dialog.library_table, 7)
