"""Per-conversation sampling overrides (merge, validation, a real SQLite file, the
migration from schema 2) and system-prompt presets (built-in, saved in the GUI settings)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from app.conversation_settings import (
    BUILTIN_PRESETS,
    OverridesError,
    PromptPreset,
    all_presets,
    apply_overrides,
    conversation_sampling,
    effective_sampling,
    overrides_between,
    save_overrides,
    with_user_preset,
)
from app.errors import SettingsError
from app.gui_settings import GuiSettings
from app.settings import SamplingSettings
from app.storage.schema import MIGRATIONS, latest_version, migrate
from app.storage.store import NotFoundError, StorageError, Store

FIXTURES = Path(__file__).parents[1] / "reliability" / "fixtures"
DEFAULTS = SamplingSettings(temperature=0.7, top_k=40, max_tokens=512)


# -- merge rules -------------------------------------------------------------------------------


def test_no_overrides_gives_the_defaults() -> None:
    assert effective_sampling(DEFAULTS, None) == DEFAULTS
    assert effective_sampling(DEFAULTS, {}) == DEFAULTS


def test_overrides_replace_only_their_fields() -> None:
    result = effective_sampling(DEFAULTS, {"temperature": 0.1, "stop": ["###"], "seed": 9})
    assert result == DEFAULTS.with_changes(temperature=0.1, stop=("###",), seed=9)
    # A later change of a default reaches the fields the conversation did not override.
    later = DEFAULTS.with_changes(max_tokens=64, temperature=1.2)
    assert effective_sampling(later, {"temperature": 0.1}).max_tokens == 64
    assert effective_sampling(later, {"temperature": 0.1}).temperature == 0.1


def test_json_numbers_and_unknown_keys() -> None:
    # JSON writes 1.0 as 1; a key from a newer Glassbox is ignored.
    result = apply_overrides(DEFAULTS, {"temperature": 1, "mirostat": 2, "seed": None})
    assert result.temperature == 1.0 and isinstance(result.temperature, float)
    assert result.seed is None


def test_overrides_between_lists_the_changed_fields() -> None:
    chosen = DEFAULTS.with_changes(top_p=0.5, stop=("a",))
    assert overrides_between(DEFAULTS, chosen) == {"top_p": 0.5, "stop": ("a",)}
    assert overrides_between(DEFAULTS, DEFAULTS) == {}


# -- validation: a clear one-line error, never a crash ------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"temperature": -1}, "temperature must be 0 or more"),
        ({"temperature": "hot"}, "temperature must be a number"),
        ({"temperature": True}, "temperature must be a number"),
        ({"top_k": 2.5}, "top_k must be a whole number"),
        ({"top_k": "40"}, "top_k must be a whole number"),
        ({"top_p": 0}, "top-p must be in (0, 1]"),
        ({"max_tokens": 0}, "max tokens must be at least 1"),
        ({"seed": -3}, "seed must be in [0, 2^32)"),
        ({"stop": "###"}, "stop must be a list of strings"),
        ({"stop": [1]}, "stop must be a list of strings"),
        ({"stop": [""]}, "stop strings must not be empty"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_invalid_overrides_give_a_one_line_error(overrides, words) -> None:
    with pytest.raises(OverridesError) as raised:
        effective_sampling(DEFAULTS, overrides, conversation_id=12)
    message = str(raised.value)
    assert words in message and "conversation 12" in message and "\n" not in message
    assert isinstance(raised.value, SettingsError)


# -- persistence in a real SQLite file ----------------------------------------------------------


def test_overrides_are_stored_with_the_conversation(tmp_path: Path) -> None:
    path = tmp_path / "glassbox.sqlite3"
    with Store.open(path) as store:
        tuned = store.create_conversation("tuned")
        plain = store.create_conversation("plain")
        save_overrides(store, tuned.id, {"temperature": 0.2, "stop": ("END",), "seed": 5})
    with Store.open(path) as store:  # a new connection reads what the file holds
        assert store.sampling_overrides(tuned.id) == {
            "temperature": 0.2,
            "stop": ["END"],
            "seed": 5,
        }
        assert store.sampling_overrides(plain.id) is None
        assert conversation_sampling(store, tuned.id, DEFAULTS) == DEFAULTS.with_changes(
            temperature=0.2, stop=("END",), seed=5
        )
        assert conversation_sampling(store, plain.id, DEFAULTS) == DEFAULTS
        save_overrides(store, tuned.id, {})  # back to the defaults
        assert store.sampling_overrides(tuned.id) is None
        with pytest.raises(NotFoundError):
            store.sampling_overrides(999)
        with pytest.raises(NotFoundError):
            save_overrides(store, 999, {"temperature": 0.1})


def test_an_invalid_value_is_refused_before_it_is_stored(tmp_path: Path) -> None:
    with Store.open(tmp_path / "db.sqlite3") as store:
        conversation = store.create_conversation()
        save_overrides(store, conversation.id, {"top_k": 5})
        with pytest.raises(SettingsError, match="top-p"):
            save_overrides(store, conversation.id, {"top_p": 7.0})
        assert store.sampling_overrides(conversation.id) == {"top_k": 5}


def test_a_hand_edited_row_gives_an_error_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    with Store.open(path) as store:
        bad_json = store.create_conversation("bad json").id
        bad_value = store.create_conversation("bad value").id
    conn = sqlite3.connect(path)
    conn.execute("UPDATE conversations SET sampling_overrides = '{oops' WHERE id = ?", (bad_json,))
    conn.execute(
        "UPDATE conversations SET sampling_overrides = ? WHERE id = ?",
        (json.dumps({"temperature": float("nan")}), bad_value),
    )
    conn.commit()
    conn.close()
    with Store.open(path) as store:
        with pytest.raises(StorageError, match="not a JSON object"):
            conversation_sampling(store, bad_json, DEFAULTS)
        with pytest.raises(OverridesError, match="temperature must be a finite number"):
            conversation_sampling(store, bad_value, DEFAULTS)
        # The listing and the messages still read.
        assert len(store.list_conversations()) == 2


def test_an_imported_copy_keeps_the_overrides(tmp_path: Path) -> None:
    with Store.open(tmp_path / "db.sqlite3") as store:
        original = store.create_conversation("original")
        save_overrides(store, original.id, {"max_tokens": 32})
        store.add_message(original.id, "user", "hi")
        copy = store.import_conversation(
            "copy",
            "",
            1.0,
            2.0,
            store.messages(original.id),
            sampling_overrides=store.sampling_overrides(original.id),
        )
        assert store.sampling_overrides(copy.id) == {"max_tokens": 32}
        plain = store.import_conversation("plain", "", 1.0, 2.0, [])
        assert store.sampling_overrides(plain.id) is None


# -- migration from schema version 2 ---------------------------------------------------------


def _database_from_fixture(name: str, target: Path) -> Path:
    conn = sqlite3.connect(target, isolation_level=None)
    conn.executescript(FIXTURES.joinpath(name).read_text(encoding="utf-8"))
    conn.close()
    return target


def _schema(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    return conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name"
    ).fetchall()


def test_the_version_2_fixture_has_the_version_2_schema(tmp_path: Path) -> None:
    fixture = sqlite3.connect(_database_from_fixture("schema_v2.sql", tmp_path / "v2.sqlite3"))
    fresh = sqlite3.connect(tmp_path / "fresh.sqlite3", isolation_level=None)
    try:
        assert migrate(fresh, MIGRATIONS[:2]) == 2
        assert fixture.execute("PRAGMA user_version").fetchone()[0] == 2
        # Whitespace aside (sqlite_master keeps the text as written).
        assert [(n, " ".join(s.split())) for n, s in _schema(fixture)] == [
            (n, " ".join(s.split())) for n, s in _schema(fresh)
        ]
    finally:
        fixture.close()
        fresh.close()


def test_a_version_2_database_keeps_every_row_and_gains_the_column(tmp_path: Path) -> None:
    path = _database_from_fixture("schema_v2.sql", tmp_path / "v2.sqlite3")
    before = sqlite3.connect(path)
    tables = ("conversations", "messages", "turn_metrics")
    rows = {t: before.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in tables}
    before.close()
    assert [len(rows[t]) for t in tables] == [3, 7, 3]

    with Store.open(path) as store:
        assert store._conn.execute("PRAGMA user_version").fetchone()[0] == latest_version() >= 3
        for table in tables:
            after = store._conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
            assert [row[: len(rows[table][0])] for row in after] == rows[table]
        assert [store.sampling_overrides(c) for c in (1, 2, 3)] == [None, None, None]
        assert store.messages(3)[1].sampling_settings == {
            "max_tokens": 512,
            "seed": 7,
            "stop": [],
            "temperature": 0.2,
        }
        # The search index written at version 2 still answers, and new rows join it.
        assert [c.id for c in store.list_conversations("fjord")] == [3]
        save_overrides(store, 3, {"temperature": 0.0})
        assert conversation_sampling(store, 3, DEFAULTS).temperature == 0.0
        assert store.integrity_check() == "ok"


# -- system-prompt presets -----------------------------------------------------------------------


def test_built_in_presets_come_first_and_cannot_be_replaced() -> None:
    names = [p.name for p in BUILTIN_PRESETS]
    assert {
        "Helpful assistant",
        "Concise",
        "Teacher: explain step by step",
        "Code reviewer",
    } <= set(names)
    assert all(p.builtin and p.text.strip() for p in BUILTIN_PRESETS)
    user = with_user_preset([], "Pirate", "Talk like a pirate.")
    assert [p.name for p in all_presets(user)] == [*names, "Pirate"]
    with pytest.raises(SettingsError, match="built-in"):
        with_user_preset(user, "concise", "Short.")
    with pytest.raises(SettingsError, match="needs a name"):
        with_user_preset(user, "  ", "Short.")
    with pytest.raises(SettingsError, match="empty"):
        with_user_preset(user, "Blank", "  ")


def test_saving_a_preset_of_the_same_name_replaces_it() -> None:
    user = with_user_preset([], "Pirate", "Talk like a pirate.")
    user = with_user_preset(user, "Haiku", "Answer in a haiku.")
    user = with_user_preset(user, "pirate", "Arr.")
    assert user == [PromptPreset("Haiku", "Answer in a haiku."), PromptPreset("pirate", "Arr.")]


def test_user_presets_live_in_the_gui_settings_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GLASSBOX_HOME", str(tmp_path))
    settings = GuiSettings()
    settings.prompt_presets = with_user_preset([], "Pirate", "Talk like a pirate.")
    settings.save()
    assert GuiSettings.load().prompt_presets == [PromptPreset("Pirate", "Talk like a pirate.")]


def test_an_older_settings_file_without_presets_still_loads(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GLASSBOX_HOME", str(tmp_path))
    GuiSettings.path().write_text(
        json.dumps({"version": 2, "theme": "dark", "sampling": {"temperature": 0.3}}),
        encoding="utf-8",
    )
    loaded = GuiSettings.load()
    assert loaded.prompt_presets == [] and loaded.theme == "dark"
    assert loaded.sampling.temperature == 0.3
    # Bad entries are skipped, good ones kept.
    GuiSettings.path().write_text(
        json.dumps({"prompt_presets": [{"name": "ok", "text": "fine"}, {"name": 3}, "x"]}),
        encoding="utf-8",
    )
    assert GuiSettings.load().prompt_presets == [PromptPreset("ok", "fine")]


def test_a_branch_keeps_the_overrides_of_its_original(tmp_path: Path) -> None:
    from app.branching import branch_before

    with Store.open(tmp_path / "db.sqlite3") as store:
        original = store.create_conversation("original")
        save_overrides(store, original.id, {"temperature": 0.0, "max_tokens": 16})
        store.add_message(original.id, "user", "first")
        store.add_message(original.id, "assistant", "reply")
        second = store.add_message(original.id, "user", "second")
        branch = branch_before(store, original.id, second.id)
        assert store.sampling_overrides(branch.id) == {"temperature": 0.0, "max_tokens": 16}


# -- the CLI: glassbox chat --conversation ID ------------------------------------------------


def _chat(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GLASSBOX_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "app.cli.main", "chat", "--ctx", "512", *args],
        input="Say hi.",
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def _last_reply_sampling(home: Path) -> dict:
    with Store.open(home / "glassbox.sqlite3") as store:
        return store.messages(1)[-1].sampling_settings or {}


def test_cli_chat_applies_the_stored_overrides_and_typed_flags_win(tmp_path: Path) -> None:
    with Store.open(tmp_path / "glassbox.sqlite3") as store:
        conversation = store.create_conversation("tuned")
        save_overrides(store, conversation.id, {"max_tokens": 3, "temperature": 0.0, "seed": 4})

    result = _chat(tmp_path, "--conversation", "1")
    assert result.returncode == 0, result.stderr
    assert "conversation 1 uses its own max_tokens=3, seed=4, temperature=0.0" in result.stderr
    used = _last_reply_sampling(tmp_path)
    assert (used["max_tokens"], used["temperature"], used["seed"]) == (3, 0.0, 4)
    assert used["top_k"] == SamplingSettings().top_k  # not overridden: the flag's default

    # A flag typed on the command line wins over the stored value; the others still apply.
    result = _chat(tmp_path, "--conversation", "1", "--max-tokens", "5")
    assert result.returncode == 0, result.stderr
    used = _last_reply_sampling(tmp_path)
    assert (used["max_tokens"], used["temperature"], used["seed"]) == (5, 0.0, 4)


def test_cli_chat_with_invalid_stored_overrides_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "glassbox.sqlite3"
    with Store.open(path) as store:
        store.create_conversation("broken")
        store.set_sampling_overrides(1, {"top_p": 3.5})  # bypasses save_overrides' check
    result = _chat(tmp_path, "--conversation", "1")
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("glassbox:")]
    assert len(errors) == 1 and "conversation 1 are invalid: top-p must be in (0, 1]" in errors[0]
    with Store.open(path) as store:
        assert store.messages(1) == []  # nothing was sent


def test_a_json_export_carries_the_overrides_and_an_import_restores_them(tmp_path: Path) -> None:
    from app.export.document import ConversationDocument, ExportError, document_from_store
    from app.export.json_format import import_document, read_json, write_json

    with Store.open(tmp_path / "db.sqlite3") as store:
        tuned = store.create_conversation("tuned")
        save_overrides(store, tuned.id, {"temperature": 0.3, "stop": ["END"]})
        store.add_message(tuned.id, "user", "hi")
        plain = store.create_conversation("plain")
        for conversation, name in ((tuned, "tuned.json"), (plain, "plain.json")):
            write_json(document_from_store(store, conversation), tmp_path / name)
        copy = import_document(store, read_json(tmp_path / "tuned.json"))
        assert store.sampling_overrides(copy.id) == {"temperature": 0.3, "stop": ["END"]}
        copy = import_document(store, read_json(tmp_path / "plain.json"))
        assert store.sampling_overrides(copy.id) is None

    data = json.loads((tmp_path / "tuned.json").read_text(encoding="utf-8"))
    del data["conversation"]["sampling_overrides"]  # a file from before the key
    assert ConversationDocument.from_dict(data).sampling_overrides is None
    data["conversation"]["sampling_overrides"] = {"top_p": 9}
    with pytest.raises(ExportError, match="sampling_overrides: top-p must be in"):
        ConversationDocument.from_dict(data)


def test_conversations_show_prints_the_overrides(tmp_path: Path) -> None:
    with Store.open(tmp_path / "glassbox.sqlite3") as store:
        save_overrides(store, store.create_conversation("tuned").id, {"top_k": 7, "seed": 3})
        store.create_conversation("plain")
    env = {**os.environ, "GLASSBOX_HOME": str(tmp_path)}
    shown = [
        subprocess.run(
            [sys.executable, "-m", "app.cli.main", "conversations", "show", which],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        for which in ("1", "2")
    ]
    assert all(result.returncode == 0 for result in shown), [r.stderr for r in shown]
    assert "[sampling overrides] seed=3, top_k=7" in shown[0].stdout.splitlines()
    assert "sampling overrides" not in shown[1].stdout
