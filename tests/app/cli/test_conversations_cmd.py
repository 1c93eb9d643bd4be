"""`glassbox conversations list|show|export|delete` on a real SQLite store (no model needed)."""

from __future__ import annotations

import io
import sys

import pytest

from app.cli.main import main
from app.metrics import TurnMetrics
from app.storage.store import Store

METRICS = TurnMetrics(
    queue_ms=2.0,
    ttft_ms=150.0,
    prompt_tokens=20,
    output_tokens=5,
    decode_tok_s=40.0,
    stop_reason="eos",
)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("GLASSBOX_HOME", str(tmp_path))
    with Store.open(tmp_path / "glassbox.sqlite3") as store:
        first = store.create_conversation("Cats", "Be brief.")
        store.add_message(first.id, "user", "Tell me about cats.")
        reply = store.add_message(first.id, "assistant", "", partial=True)
        store.finish_message(
            reply.id, "Cats purr.", partial=False, stop_reason="eos", metrics=METRICS, model="M"
        )
        second = store.create_conversation("Dogs")
        store.add_message(second.id, "user", "And dogs?")
    return {"cats": first.id, "dogs": second.id, "path": tmp_path}


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def run(capsys, *args):
    code = main(["conversations", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_list_shows_newest_first_with_ids(home, capsys):
    code, out, _err = run(capsys, "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["id", "updated", "msgs", "title"]
    assert lines[1].split()[0] == str(home["dogs"]) and lines[1].endswith("Dogs")
    assert lines[2].split()[0] == str(home["cats"]) and lines[2].endswith("Cats")


def test_list_search_and_limit(home, capsys):
    _code, out, _err = run(capsys, "list", "--search", "purr")
    assert [line.split()[-1] for line in out.splitlines()[1:]] == ["Cats"]
    _code, out, err = run(capsys, "list", "--limit", "1")
    assert len(out.splitlines()) == 2 and "1 more" in err


def test_show_prints_messages_and_the_metrics_table(home, capsys):
    code, out, _err = run(capsys, "show", str(home["cats"]))
    assert code == 0
    assert "[system]\nBe brief." in out
    assert "[user]\nTell me about cats." in out and "[assistant]\nCats purr." in out
    header, row = out.strip().splitlines()[-2:]
    assert header.split()[0] == "turn" and row.split()[0] == "1"


def test_export_markdown_to_stdout_and_to_a_file(home, capsys):
    code, out, _err = run(capsys, "export", str(home["cats"]))
    assert code == 0
    assert out.startswith("# Cats\n")
    assert "## User\n\nTell me about cats." in out
    assert "## Assistant\n\nCats purr." in out
    assert "ttft 150 ms" in out  # the reply's metrics line
    assert "## Metrics per turn" in out
    target = home["path"] / "cats.md"
    code, _out, err = run(capsys, "export", "latest", "--out", str(target))
    assert code == 0 and "wrote" in err
    assert target.read_text(encoding="utf-8").startswith("# Dogs\n")


def test_delete_refuses_without_yes_when_it_cannot_ask(home, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code, _out, err = run(capsys, "delete", str(home["cats"]))
    assert code == 1
    assert "add --yes" in err and len(err.strip().splitlines()) == 1
    _code, out, _err = run(capsys, "list")
    assert "Cats" in out


def test_delete_asks_on_a_terminal(home, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", _Terminal("n\n"))
    code, _out, err = run(capsys, "delete", str(home["cats"]))
    assert code == 1 and "not deleted" in err
    monkeypatch.setattr(sys, "stdin", _Terminal("y\n"))
    code, _out, err = run(capsys, "delete", str(home["cats"]))
    assert code == 0 and "deleted conversation" in err
    _code, out, _err = run(capsys, "list")
    assert "Cats" not in out


def test_delete_with_yes_hides_it_everywhere(home, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code, _out, _err = run(capsys, "delete", str(home["dogs"]), "--yes")
    assert code == 0
    with Store.open(home["path"] / "glassbox.sqlite3") as store:
        assert [c.title for c in store.list_conversations()] == ["Cats"]
    code, _out, err = run(capsys, "delete", str(home["dogs"]), "--yes")
    assert code == 1 and "already deleted" in err


@pytest.mark.parametrize("which", ["999", "cats"])
def test_a_bad_conversation_is_a_one_line_error(home, capsys, which):
    code, _out, err = run(capsys, "show", which)
    assert code == 1
    assert len(err.strip().splitlines()) == 1 and err.startswith("glassbox: ")
