"""What the GUI remembers: thread counts only when the user chose them."""

from __future__ import annotations

import json

from app.gui_settings import FORMAT_VERSION, GuiSettings
from app.settings import RuntimeSettings


def test_threads_saved_by_an_older_version_are_not_taken_as_chosen(tmp_path, monkeypatch):
    monkeypatch.setenv("GLASSBOX_HOME", str(tmp_path))
    # What the app before tuned threads wrote: its own default, cores - 1.
    GuiSettings.path().write_text(
        json.dumps({"runtime": {"n_ctx": 2048, "n_threads": 1, "n_threads_batch": 2}})
    )
    loaded = GuiSettings.load()
    assert loaded.runtime.n_ctx == 2048  # the rest of what was saved stays
    assert loaded.runtime.n_threads is None and loaded.runtime.n_threads_batch is None


def test_threads_the_user_chose_are_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("GLASSBOX_HOME", str(tmp_path))
    GuiSettings(runtime=RuntimeSettings(n_threads=1, n_threads_batch=2)).save()
    assert json.loads(GuiSettings.path().read_text())["version"] == FORMAT_VERSION
    loaded = GuiSettings.load()
    assert (loaded.runtime.n_threads, loaded.runtime.n_threads_batch) == (1, 2)
