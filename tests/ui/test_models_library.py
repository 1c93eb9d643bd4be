"""The Models library and the other dialogs (issue 10, items 8-10): the Path column, remove
folder, delete file with a confirmation that says where the file is, the loaded model
marked, Download only with a file selected, the Hub tab offline up front, Settings' size
and its GPU link."""

from __future__ import annotations

import gc
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QCoreApplication, QEvent

from app.models.library import ModelEntry
from app.models.removal import plan_delete
from app.paths import models_dir
from ui.dialogs.models import PATH_COLUMN, ModelsDialog

WAIT_MS = 60_000


@pytest.fixture
def offline_hub(glassbox_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = glassbox_home / "hf-hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


@pytest.fixture
def dialog(qtbot: Any, offline_hub: Path) -> Iterator[ModelsDialog]:
    gc.collect()  # see tests/ui/test_models_dialog.py: no Qt wrapper collected off-thread
    dlg = ModelsDialog(None)
    qtbot.addWidget(dlg)
    qtbot.waitSignal(dlg.library_loaded, timeout=WAIT_MS).wait()
    dlg.show()
    yield dlg
    assert dlg.jobs.wait(30)
    dlg.close()
    dlg.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    del dlg
    gc.collect()


def paths(dialog: ModelsDialog) -> list[str]:
    table = dialog.library_table
    return [table.item(r, PATH_COLUMN).text() for r in range(table.rowCount())]


def refreshed(qtbot: Any, dialog: ModelsDialog, action: Any) -> None:
    with qtbot.waitSignal(dialog.library_loaded, timeout=WAIT_MS):
        action()


def test_path_column_fits_and_elides_in_the_middle(qtbot, dialog, model_path, tmp_path):
    deep = tmp_path / ("a-rather-long-folder-name-" * 4) / "more" / "and-more"
    deep.mkdir(parents=True)
    copy = deep / "SmolLM2-135M-Instruct-with-a-long-file-name.Q4_1.gguf"
    shutil.copy(model_path, copy)
    refreshed(qtbot, dialog, lambda: dialog.add_folder(deep))
    table = dialog.library_table
    row = paths(dialog).index(str(copy))
    item = table.item(row, PATH_COLUMN)
    assert item.toolTip() == str(copy)  # whole on hover
    header = table.horizontalHeader()
    right = header.sectionPosition(PATH_COLUMN) + header.sectionSize(PATH_COLUMN)
    assert right <= table.viewport().width()  # the column ends inside the table
    assert table.horizontalScrollBar().maximum() == 0
    assert table.textElideMode().name == "ElideMiddle"


def test_remove_folder_stops_listing_it_and_keeps_its_files(qtbot, dialog, model_path, tmp_path):
    folder = tmp_path / "extra"
    folder.mkdir()
    copy = folder / "copy.gguf"
    shutil.copy(model_path, copy)
    refreshed(qtbot, dialog, lambda: dialog.add_folder(folder))
    assert str(copy) in paths(dialog)
    offered: list[list[Path]] = []

    def choose(folders: list[Path]) -> Path:
        offered.append(folders)
        return folders[0]

    dialog.choose_folder = choose
    refreshed(qtbot, dialog, dialog.remove_folder_button.click)
    assert offered == [[folder.resolve()]]
    assert str(copy) not in paths(dialog) and copy.is_file()
    assert "Removed" in dialog.library_status.text()


def test_delete_file_in_our_models_folder_asks_then_deletes(qtbot, dialog, model_path):
    ours = models_dir() / "to-delete.gguf"
    shutil.copy(model_path, ours)
    refreshed(qtbot, dialog, dialog.refresh_library)
    asked: list[tuple[str, str]] = []
    answers = iter([False, True])

    def confirm(title: str, text: str) -> bool:
        asked.append((title, text))
        return next(answers)

    dialog.confirm = confirm
    assert dialog.select_path(ours)
    dialog.delete_button.click()
    qtbot.waitUntil(lambda: "Nothing deleted" in dialog.library_status.text(), timeout=WAIT_MS)
    assert ours.is_file()
    assert "Glassbox models folder" in asked[0][1] and "outside" not in asked[0][1]
    assert dialog.select_path(ours)
    with qtbot.waitSignal(dialog.library_changed, timeout=WAIT_MS):
        dialog.delete_button.click()
    qtbot.waitUntil(lambda: str(ours) not in paths(dialog), timeout=WAIT_MS)
    assert not ours.exists()


def test_delete_outside_our_places_says_so_first(qtbot, dialog, model_path, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    theirs = folder / "my-own.gguf"
    shutil.copy(model_path, theirs)
    refreshed(qtbot, dialog, lambda: dialog.add_folder(folder))
    asked: list[str] = []
    dialog.confirm = lambda _title, text: asked.append(text) or False
    assert dialog.select_path(theirs)
    dialog.delete_button.click()
    qtbot.waitUntil(lambda: bool(asked), timeout=WAIT_MS)
    assert "outside the Glassbox models folder and the Hugging Face cache" in asked[0]
    assert str(theirs) in asked[0]
    qtbot.waitUntil(lambda: "Nothing deleted" in dialog.library_status.text(), timeout=WAIT_MS)
    assert theirs.is_file()

    # The bundled model is the installed package's: refused without asking.
    asked.clear()
    assert dialog.select_path(model_path)
    dialog.delete_button.click()
    qtbot.waitUntil(lambda: "bundled model" in dialog.library_status.text(), timeout=WAIT_MS)
    assert asked == [] and Path(model_path).is_file()


def test_delete_plan_for_the_hf_cache_takes_the_link_and_its_blob(offline_hub, model_path):
    repo = offline_hub / "models--org--name"
    blob = repo / "blobs" / "0123abcd"
    blob.parent.mkdir(parents=True)
    shutil.copy(model_path, blob)
    link = repo / "snapshots" / "rev1" / "model.Q4_1.gguf"
    link.parent.mkdir(parents=True)
    link.symlink_to(Path("../../blobs/0123abcd"))
    plan = plan_delete(ModelEntry(path=link, source="hf cache", repo_id="org/name"))
    assert plan.owned and plan.place == "the Hugging Face cache"
    assert plan.paths == [link.absolute(), blob.resolve()]


def test_the_loaded_model_is_marked(qtbot, dialog, model_path):
    dialog.set_loaded(model_path)
    row = dialog.loaded_row()
    assert row is not None and paths(dialog)[row] == model_path
    item = dialog.library_table.item(row, 0)
    assert item.text().endswith("(loaded)") and item.font().bold()
    refreshed(qtbot, dialog, dialog.refresh_library)  # kept across a rescan
    assert dialog.library_table.item(dialog.loaded_row(), 0).text().endswith("(loaded)")
    dialog.set_loaded(None)
    assert not dialog.library_table.item(row, 0).text().endswith("(loaded)")


def test_hub_tab_says_offline_up_front_and_download_needs_a_selection(qtbot, offline_hub):
    gc.collect()
    dlg = ModelsDialog(None)
    qtbot.addWidget(dlg)
    tab = dlg.hub_tab
    # Offline is known before any search, from a check made off the GUI thread.
    with qtbot.waitSignal(tab.online_checked, timeout=WAIT_MS) as checked:
        pass
    assert checked.args == [False] and "offline" in tab.status.text()
    assert not tab.download_button.isEnabled()  # nothing selected
    assert dlg.jobs.wait(30)
    dlg.close()


def test_settings_is_not_cramped_and_links_to_gpu_help(qtbot):
    from app.settings import RuntimeSettings, SamplingSettings
    from ui.dialogs.settings import README_PATH, SettingsDialog, gpu_help_url

    dialog = SettingsDialog(RuntimeSettings(), SamplingSettings(), n_layers=30)
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.width() >= 560 and dialog.height() >= 520
    hint = dialog.runtime_form.gpu_hint
    assert "How to enable GPU offload" in hint.text() and "pip" not in hint.text()
    url = gpu_help_url()
    assert url.fragment() == "gpu-builds" and url.toLocalFile() == str(README_PATH)
    assert "### GPU builds" in README_PATH.read_text()
