from __future__ import annotations

import shutil

import pytest
from recorded_chat import record_conversation


@pytest.fixture(scope="module")
def recorded(bundled_model, tmp_path_factory):
    """(database file, conversation id): three greedy turns on the bundled model, recorded once
    per module; tests copy the file before changing it."""
    database = tmp_path_factory.mktemp("recorded") / "glassbox.sqlite3"
    return database, record_conversation(bundled_model, database)


@pytest.fixture
def home(tmp_path, recorded, monkeypatch):
    """A GLASSBOX_HOME holding a copy of the recorded database; (home, conversation id)."""
    database, conversation_id = recorded
    home = tmp_path / "home"
    home.mkdir()
    for suffix in ("", "-wal", "-shm"):
        source = database.with_name(database.name + suffix)
        if source.exists():
            shutil.copy(source, home / (database.name + suffix))
    monkeypatch.setenv("GLASSBOX_HOME", str(home))
    return home, conversation_id
