"""The event-stream parser, Prometheus parsing, and endpoint settings (no network)."""

from __future__ import annotations

import json

import pytest

from app.endpoints import Endpoint, endpoints_path, load_endpoints, save_endpoints, split_base_url
from app.engine.remote_figures import kv_fill_from_metrics, parse_prometheus
from app.engine.sse import SseEvent, parse_lines
from app.errors import SettingsError


def test_sse_events_comments_multiline_and_unterminated_last_event() -> None:
    lines = [": ping", "data: a", "", "event: error", "data: x", "data: y", "", "data:b"]
    assert list(parse_lines(lines)) == [
        SseEvent("a"),
        SseEvent("x\ny", "error"),
        SseEvent("b"),
    ]


def test_prometheus_samples_with_labels_and_comments() -> None:
    text = (
        "# TYPE a gauge\n"
        'vllm:gpu_cache_usage_perc{model_name="m",x="1 2"} 0.5\n'
        "llamacpp:requests_processing 3\n"
    )
    assert parse_prometheus(text) == {
        "vllm:gpu_cache_usage_perc": 0.5,
        "llamacpp:requests_processing": 3.0,
    }
    assert kv_fill_from_metrics(text) == 0.5
    assert kv_fill_from_metrics("llamacpp:requests_processing 3\n") is None


@pytest.mark.parametrize(
    ("typed", "root"),
    [
        ("http://h:8080", "http://h:8080"),
        ("http://h:8080/v1/", "http://h:8080"),
        (" https://api.example.com/v1 ", "https://api.example.com"),
    ],
)
def test_base_url_forms(typed: str, root: str) -> None:
    assert split_base_url(typed) == (root, root + "/v1")


@pytest.mark.parametrize("bad", ["localhost:8080", "ftp://h", "http://", ""])
def test_bad_base_url_is_one_clear_error(bad: str) -> None:
    with pytest.raises(SettingsError, match="endpoint URL must look like"):
        split_base_url(bad)


def test_saved_endpoints_hold_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GB_SAVED_KEY", "sk-secret-value")
    saved = [
        Endpoint("http://a:1/v1", model="m", key_source="env", api_key_env="GB_SAVED_KEY"),
        Endpoint("http://b:2", name="lab"),
    ]
    save_endpoints(saved)
    assert load_endpoints() == saved
    text = endpoints_path().read_text(encoding="utf-8")
    assert "sk-secret-value" not in text and "GB_SAVED_KEY" in text
    assert saved[0].api_key() == "sk-secret-value"


def test_broken_saved_entries_are_skipped() -> None:
    endpoints_path().write_text(
        json.dumps({"endpoints": [{"base_url": "nope"}, {"base_url": "http://ok:1"}, 3]}),
        encoding="utf-8",
    )
    assert load_endpoints() == [Endpoint("http://ok:1")]
