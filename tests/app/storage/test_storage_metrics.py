"""TurnMetrics rows: every field round-trips, None stays None, writes are atomic."""

from __future__ import annotations

import sqlite3
from dataclasses import fields

import pytest

from app.metrics import FIELD_NAMES, TurnMetrics
from app.settings import RuntimeSettings, SamplingSettings
from app.storage import Store


def every_field_set() -> TurnMetrics:
    """Distinct non-None values, so a swapped column shows up."""
    values: dict[str, object] = {}
    for index, field in enumerate(fields(TurnMetrics)):
        if field.name == "stop_reason":
            values[field.name] = "length"
        elif "int" in str(field.type):
            values[field.name] = 1000 + index
        else:
            values[field.name] = index + 0.25
    return TurnMetrics(**values)  # type: ignore[arg-type]


def count_metric_rows(store: Store) -> int:
    with sqlite3.connect(store.path) as conn:
        return int(conn.execute("SELECT count(*) FROM turn_metrics").fetchone()[0])


def test_every_field_round_trips(store: Store) -> None:
    metrics = every_field_set()
    assert all(getattr(metrics, name) is not None for name in FIELD_NAMES)
    runtime = RuntimeSettings(n_threads=2).to_dict()
    sampling = SamplingSettings(seed=7, stop=("</s>",)).to_dict()
    conversation = store.create_conversation()
    reply = store.add_message(conversation.id, "assistant", "", partial=True)
    store.finish_message(
        reply.id,
        "done",
        partial=False,
        stop_reason="length",
        metrics=metrics,
        model="SmolLM2-135M-Instruct.Q4_1.gguf",
        runtime_settings=runtime,
        sampling_settings=sampling,
    )

    (loaded,) = store.messages(conversation.id)
    assert loaded.metrics == metrics
    assert loaded.metrics is not None
    for name in FIELD_NAMES:
        assert type(getattr(loaded.metrics, name)) is type(getattr(metrics, name)), name
    assert loaded.model == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert loaded.runtime_settings == runtime
    assert loaded.sampling_settings == sampling
    assert SamplingSettings.from_dict(loaded.sampling_settings) == SamplingSettings(
        seed=7, stop=("</s>",)
    )
    assert store.turn_metrics(conversation.id) == [(reply.id, metrics)]


def test_unknown_figures_stay_none(store: Store) -> None:
    # A remote backend knows no KV figures: they must come back as None, not 0.
    metrics = TurnMetrics(ttft_ms=12.5, output_tokens=3, stop_reason="eos")
    conversation = store.create_conversation()
    reply = store.add_message(conversation.id, "assistant", "hi")
    store.finish_message(reply.id, "hi", partial=False, stop_reason="eos", metrics=metrics)
    (loaded,) = store.messages(conversation.id)
    assert loaded.metrics == metrics
    assert loaded.metrics is not None and loaded.metrics.kv_fill is None
    assert (loaded.model, loaded.runtime_settings, loaded.sampling_settings) == (None, None, None)


def test_turn_metrics_in_turn_order_skips_messages_without(store: Store) -> None:
    conversation = store.create_conversation()
    expected = []
    for turn in range(3):
        store.add_message(conversation.id, "user", f"question {turn}")
        reply = store.add_message(conversation.id, "assistant", "", partial=True)
        metrics = TurnMetrics(output_tokens=turn + 1, decode_tok_s=100.0 + turn)
        store.finish_message(reply.id, "a", partial=False, stop_reason="eos", metrics=metrics)
        expected.append((reply.id, metrics))
    store.add_message(conversation.id, "assistant", "no metrics yet", partial=True)
    assert store.turn_metrics(conversation.id) == expected


def test_finishing_again_replaces_the_row(store: Store) -> None:
    conversation = store.create_conversation()
    reply = store.add_message(conversation.id, "assistant", "")
    first, second = TurnMetrics(output_tokens=1), TurnMetrics(output_tokens=2)
    store.finish_message(reply.id, "a", partial=False, stop_reason="eos", metrics=first)
    store.finish_message(reply.id, "b", partial=False, stop_reason="stop", metrics=second)
    assert store.turn_metrics(conversation.id) == [(reply.id, second)]
    assert count_metric_rows(store) == 1


def test_failed_finish_changes_nothing(store: Store) -> None:
    conversation = store.create_conversation()
    reply = store.add_message(conversation.id, "assistant", "streamed so far", partial=True)
    # Not JSON-serializable: fails after the content UPDATE, inside the transaction.
    with pytest.raises(TypeError):
        store.finish_message(
            reply.id,
            "final",
            partial=False,
            stop_reason="eos",
            metrics=TurnMetrics(output_tokens=5),
            runtime_settings={"bad": object()},
        )
    (loaded,) = store.messages(conversation.id)
    assert (loaded.content, loaded.partial, loaded.stop_reason) == ("streamed so far", True, None)
    assert loaded.metrics is None
    assert count_metric_rows(store) == 0
    # The connection is usable afterwards (no transaction left open).
    store.finish_message(reply.id, "final", partial=False, stop_reason="eos")
    assert store.messages(conversation.id)[0].content == "final"


def test_deleting_a_message_or_purging_removes_its_metrics(store: Store) -> None:
    conversation = store.create_conversation()
    for _ in range(2):
        reply = store.add_message(conversation.id, "assistant", "")
        store.finish_message(
            reply.id, "x", partial=False, stop_reason="eos", metrics=TurnMetrics(total_ms=1.0)
        )
    assert count_metric_rows(store) == 2
    store.delete_message(reply.id)
    assert count_metric_rows(store) == 1
    store.delete_conversation(conversation.id)
    store.purge_deleted()
    assert count_metric_rows(store) == 0
