"""Settings and chat inputs fuzzed with hypothesis: a clear refusal (SettingsError,
StorageError, argparse's usage error) or a correct result; never another exception, never
a stored row that differs from what was given."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from app.cli.common import runtime_from_args, sampling_from_args
from app.cli.main import build_parser
from app.engine.chat_template import checked_template
from app.engine.prompting import Message, find_stop, fit_history, held_stop_prefix
from app.errors import ContextOverflowError, SettingsError
from app.models.gguf_file import read_gguf_info
from app.settings import KV_CACHE_TYPES, RuntimeSettings, SamplingSettings
from app.storage.store import StorageError, Store

# No example database in the repository; a fixed budget keeps the run time steady.
FUZZ = settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

ints = st.one_of(st.integers(-(2**70), 2**70), st.sampled_from([0, -1, 1, 2**31, 2**63]))
floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -0.0, 1.0, 1e308])
)
# Every code point, surrogates and control characters included.
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=200)


@FUZZ
@given(
    n_ctx=ints,
    n_threads=st.one_of(st.none(), ints),
    n_batch=ints,
    n_gpu_layers=ints,
    kv=st.one_of(st.sampled_from(sorted(KV_CACHE_TYPES)), any_text),
    flash=st.booleans(),
)
def test_runtime_settings_validate_or_refuse(n_ctx, n_threads, n_batch, n_gpu_layers, kv, flash):
    candidate = RuntimeSettings(
        n_ctx=n_ctx,
        n_threads=n_threads,
        n_threads_batch=n_threads,
        n_batch=n_batch,
        n_gpu_layers=n_gpu_layers,
        kv_cache_type=kv,
        flash_attn=flash,
    )
    try:
        candidate.validate()
    except SettingsError as exc:
        assert "\n" not in str(exc)
        return
    assert 0 < candidate.n_ctx <= 1 << 20 and candidate.n_batch > 0
    assert candidate.n_threads is None or candidate.n_threads > 0


SAMPLING_WILD = {
    "temperature": floats,
    "top_k": ints,
    "top_p": floats,
    "min_p": floats,
    "repeat_penalty": floats,
    "seed": st.one_of(st.none(), ints),
    "max_tokens": ints,
}


@FUZZ
@given(
    # One field wild at a time, the rest valid, so each field's check is what is tested.
    wild=st.sampled_from(sorted(SAMPLING_WILD)).flatmap(
        lambda name: st.tuples(st.just(name), SAMPLING_WILD[name])
    ),
    stop=st.lists(any_text, max_size=4),
)
@example(wild=("temperature", math.nan), stop=[])
@example(wild=("temperature", math.inf), stop=[])
@example(wild=("repeat_penalty", math.inf), stop=[])
@example(wild=("top_p", math.nan), stop=[])
def test_sampling_settings_validate_or_refuse(wild, stop):
    name, value = wild
    candidate = SamplingSettings(stop=tuple(stop)).with_changes(**{name: value})
    try:
        candidate.validate()
    except SettingsError as exc:
        assert "\n" not in str(exc)
        return
    # What passes is something the sampler can use: finite numbers in range.
    for number in (candidate.temperature, candidate.top_p, candidate.min_p):
        assert math.isfinite(number), candidate
    assert math.isfinite(candidate.repeat_penalty) and candidate.repeat_penalty > 0
    assert candidate.max_tokens >= 1 and all(candidate.stop)


flag_values = st.one_of(
    st.integers(-(2**40), 2**40).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    any_text.filter(lambda t: not t.startswith("-")),
)


@FUZZ
@given(
    flags=st.lists(
        st.tuples(
            st.sampled_from(
                [
                    *("--ctx", "--threads", "--gpu-layers", "--temperature", "--top-k"),
                    *("--top-p", "--min-p", "--repeat-penalty", "--seed", "--max-tokens", "--stop"),
                ]
            ),
            flag_values,
        ),
        max_size=5,
    )
)
def test_cli_flags_parse_into_settings_or_refuse(flags, capsys):
    argv = ["chat"] + [part for flag, value in flags for part in (flag, value)]
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse's usage error: one line on stderr, exit 2
        assert exc.code == 2
        assert "error:" in capsys.readouterr().err
        return
    try:
        runtime_from_args(args)
        sampling_from_args(args)
    except SettingsError as exc:
        assert "\n" not in str(exc)


@pytest.fixture(scope="module")
def fuzz_store(tmp_path_factory: pytest.TempPathFactory):
    store = Store.open(tmp_path_factory.mktemp("fuzz") / "fuzz.sqlite3")
    yield store
    assert store.integrity_check() == "ok"
    store.close()


@FUZZ
@given(
    text=st.one_of(
        any_text,
        st.sampled_from(["", " ", "\0", "\0\0x\0", "\r\n\t\x1b[31m", "\u202eevil", "🙂" * 50]),
    ),
    role=st.sampled_from(["user", "assistant", "system"]),
)
def test_any_message_text_is_stored_exactly_or_refused(fuzz_store: Store, text: str, role: str):
    conversation = fuzz_store.create_conversation(title="fuzz")
    try:
        message = fuzz_store.add_message(conversation.id, role, text)
    except StorageError as exc:
        assert "\n" not in str(exc)
        # Refused: only text that is not valid Unicode (a lone surrogate) is.
        with pytest.raises(UnicodeEncodeError):
            text.encode("utf-8")
        assert fuzz_store.messages(conversation.id) == []
        return
    stored = fuzz_store.messages(conversation.id)
    assert [(m.id, m.role, m.content) for m in stored] == [(message.id, role, text)]
    fuzz_store.update_message_content(message.id, text + text, partial=True)
    assert fuzz_store.messages(conversation.id)[0].content == text + text


def test_a_megabyte_paste_round_trips_through_the_store(fuzz_store: Store):
    paste = ("Lorem ipsum, dolor sit amet. Ünïcödé ✓ \t\0 " * 25_000)[: 2**20]
    conversation = fuzz_store.create_conversation()
    message = fuzz_store.add_message(conversation.id, "user", paste)
    assert fuzz_store.messages(conversation.id)[0].content == paste
    assert message.content == paste
    assert fuzz_store.list_conversations(search="dolor sit")[0].id == conversation.id


def test_a_refused_write_leaves_no_half_row(tmp_path: Path):
    with Store.open(tmp_path / "db.sqlite3") as store:
        conversation = store.create_conversation()
        with pytest.raises(StorageError, match="not valid Unicode"):
            store.add_message(conversation.id, "user", "ok \ud800 not ok")
        with pytest.raises(ValueError, match="role"):
            store.add_message(conversation.id, "robot", "hi")
        assert store.messages(conversation.id) == []
        assert store.get_conversation(conversation.id).updated_at == conversation.updated_at
    conn = sqlite3.connect(tmp_path / "db.sqlite3")
    assert conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 0
    conn.close()


# -- prompt building ---------------------------------------------------------------------------


def _reference_fit(messages: Sequence[Message], count: Callable, n_ctx: int, reserve: int):
    """The original one-exchange-at-a-time trimming, kept to check the bisection against."""
    system = [m for m in messages if m["role"] == "system"]
    rest = [m for m in messages if m["role"] != "system"]
    dropped = 0
    while True:
        kept = system + rest
        tokens = count(kept)
        if tokens + reserve <= n_ctx:
            return kept, dropped, tokens
        if len(rest) <= 1:
            if tokens < n_ctx:
                return kept, dropped, tokens
            raise ContextOverflowError("too long")
        rest.pop(0)
        dropped += 1
        while len(rest) > 1 and rest[0]["role"] == "assistant":
            rest.pop(0)
            dropped += 1


@FUZZ
@given(
    history=st.lists(
        st.tuples(st.sampled_from(["system", "user", "assistant"]), st.integers(0, 60)),
        min_size=1,
        max_size=40,
    ),
    n_ctx=st.integers(1, 400),
    reserve=st.integers(0, 200),
)
def test_history_trimming_by_bisection_matches_the_linear_rule(history, n_ctx, reserve):
    messages = [{"role": role, "content": "w " * n} for role, n in history]
    calls: list[list[Message]] = []

    def count(candidate: Sequence[Message]) -> int:
        calls.append(list(candidate))
        return sum(len(m["content"].split()) + 3 for m in candidate)

    try:
        expected = _reference_fit(messages, count, n_ctx, reserve)
    except ContextOverflowError:
        with pytest.raises(ContextOverflowError):
            fit_history(messages, count, n_ctx, reserve)
        return
    calls.clear()
    assert fit_history(messages, count, n_ctx, reserve) == expected
    assert calls[-1] == expected[0], "the last count is of the kept messages"


@FUZZ
@given(text=any_text, stops=st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=3))
def test_stop_string_search_agrees_with_a_plain_search(text, stops):
    hits = [i for i in (text.find(s) for s in stops) if i >= 0]
    assert find_stop(text, stops, 0) == (min(hits) if hits else -1)
    held = held_stop_prefix(text, stops)
    assert 0 <= held < max(len(s) for s in stops)
    if held:
        assert any(s.startswith(text[len(text) - held :]) for s in stops)


@pytest.fixture(scope="module")
def real_template(bundled_model: Path):
    template, note = checked_template(
        read_gguf_info(bundled_model).chat_template or "", eos_token="<|im_end|>"
    )
    assert template is not None, note
    return template


@FUZZ
@given(content=any_text)
def test_message_text_reaches_the_template_verbatim(real_template, content):
    # Jinja syntax inside a message is text, never code.
    for text in (content, "{{ 7 * 7 }}{% for x in range(9) %}x{% endfor %}" + content):
        prompt = real_template.render([{"role": "user", "content": text}])
        assert f"<|im_start|>user\n{text}<|im_end|>" in prompt
