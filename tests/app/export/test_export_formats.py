"""Export to JSON, CSV, HTML and SVG, and JSON import, on a conversation recorded with the
bundled model in a real SQLite file; the CLI runs in-process through app.cli.main.main."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest
from recorded_chat import PROMPTS

from app.cli.main import main
from app.export.csv_format import CSV_COLUMNS
from app.export.document import document_from_store
from app.export.svg_plots import plot_specs
from app.metrics import FIELD_NAMES
from app.storage.store import Store

PLOT_KEYS = [spec.key for spec in plot_specs([])]


def _comparable(document) -> dict:
    data = document.to_dict()
    del data["exported_at"], data["conversation"]["id"]
    return data


def _document(home, conversation_id):
    with Store.open(home / "glassbox.sqlite3") as store:
        return document_from_store(store, store.get_conversation(conversation_id))


def test_json_export_then_import_equals_the_original(home, tmp_path, monkeypatch, capsys):
    home_dir, conversation_id = home
    original = _document(home_dir, conversation_id)
    assert len(original.turns()) == len(PROMPTS)
    assert all(m.metrics is not None and m.metrics.output_tokens for _, m in original.turns())

    out = tmp_path / "conversation.json"
    assert main(["export", "latest", "--format", "json", "--out", str(out)]) == 0
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["metrics_fields"] == list(FIELD_NAMES)
    reply = data["messages"][1]
    assert set(reply["metrics"]) == set(FIELD_NAMES)
    assert reply["model"] and reply["runtime_settings"]["n_ctx"] == 1024
    assert reply["sampling_settings"]["temperature"] == 0.0

    other_home = tmp_path / "other-home"
    monkeypatch.setenv("GLASSBOX_HOME", str(other_home))
    capsys.readouterr()
    assert main(["import", str(out)]) == 0
    new_id = int(capsys.readouterr().out.strip())
    imported = _document(other_home, new_id)
    assert _comparable(imported) == _comparable(original)
    with Store.open(other_home / "glassbox.sqlite3") as store:
        assert [m for _, m in store.turn_metrics(new_id)] == [
            m.metrics for _, m in original.turns()
        ]


def test_csv_has_one_row_per_turn_with_every_schema_field(home, tmp_path):
    home_dir, conversation_id = home
    out = tmp_path / "turns.csv"
    assert main(["export", str(conversation_id), "--format", "csv", "--out", str(out)]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    original = _document(home_dir, conversation_id)
    assert len(rows) == len(original.turns()) == len(PROMPTS)
    assert tuple(rows[0]) == CSV_COLUMNS
    assert set(FIELD_NAMES) <= set(rows[0])
    for row, (turn, message) in zip(rows, original.turns()):
        assert int(row["turn"]) == turn
        for name in FIELD_NAMES:
            value = getattr(message.metrics, name)
            assert row[name] == ("" if value is None else str(value)), name


class _ReportParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.svg_ids: list[str] = []
        self.tags: list[str] = []
        self.table_rows = 0
        self._in_table = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "svg" and attrs.get("id"):
            self.svg_ids.append(attrs["id"])
        if tag == "table" and attrs.get("id") == "metrics-table":
            self._in_table = True
        if tag == "tr" and self._in_table:
            self.table_rows += 1

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_table = False


def test_html_report_opens_and_holds_each_plot(home, tmp_path):
    _, conversation_id = home
    out = tmp_path / "report.html"
    assert main(["export", str(conversation_id), "--format", "html", "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    parser = _ReportParser()
    parser.feed(text)
    parser.close()
    assert parser.svg_ids == [f"plot-{key}" for key in PLOT_KEYS]
    assert parser.table_rows == 1 + len(PROMPTS)  # header + one a turn
    assert "src=" not in text and "<link" not in text  # self-contained: nothing to fetch
    for prompt in PROMPTS:
        assert prompt in text
    for key in PLOT_KEYS:  # each plot is well-formed SVG with something drawn in it
        start = text.index(f'<svg xmlns="http://www.w3.org/2000/svg" id="plot-{key}"')
        svg = ET.fromstring(text[start : text.index("</svg>", start) + len("</svg>")])
        drawn = [e for e in svg.iter() if e.get("class") in ("bar", "point")]
        assert drawn, key


def test_svg_export_is_one_document_with_every_plot(home, tmp_path):
    _, conversation_id = home
    out = tmp_path / "plots.svg"
    assert main(["export", str(conversation_id), "--format", "svg", "--out", str(out)]) == 0
    root = ET.parse(out).getroot()
    ids = [e.get("id") for e in root.iter() if e.get("id")]
    assert ids == [f"plot-{key}" for key in PLOT_KEYS]


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("not json at all", "is not JSON"),
        ('{"format": "something-else"}', "not a Glassbox conversation export"),
        ('{"format": "glassbox-conversation", "version": 99}', "newer than this Glassbox"),
        (
            '{"format": "glassbox-conversation", "version": 1, "conversation": {"title": "t",'
            ' "system_prompt": "", "created_at": 1, "updated_at": 1},'
            ' "messages": [{"role": "robot", "content": "x", "created_at": 1}]}',
            "message 1: role must be one of",
        ),
    ],
)
def test_import_of_a_bad_file_is_one_line_and_stores_nothing(
    tmp_path, monkeypatch, capsys, content, fragment
):
    monkeypatch.setenv("GLASSBOX_HOME", str(tmp_path / "home"))
    bad = tmp_path / "bad.json"
    bad.write_text(content, encoding="utf-8")
    assert main(["import", str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and fragment in err, err
    with Store.open() as store:
        assert store.list_conversations() == []


def test_export_of_an_unknown_conversation_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GLASSBOX_HOME", str(tmp_path / "home"))
    out = tmp_path / "x.json"
    assert main(["export", "latest", "--format", "json", "--out", str(out)]) == 1
    assert "there are no conversations yet" in capsys.readouterr().err
    assert main(["export", "41", "--format", "csv", "--out", str(out)]) == 1
    assert "no conversation with id 41" in capsys.readouterr().err
    assert not out.exists()
