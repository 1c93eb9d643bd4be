"""Threads tuned per machine: usable cores, the choice, the cache, the engine and the CLI.

The measurement's clock is injected where a test needs specific counts to be
fastest; the rest uses the real bundled model in the real worker. Every test
here has its own cache directory, so no stored result leaks into other tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.engine import events as ev
from app.engine import thread_tuning as tt
from app.engine.events import ThreadMeasurement
from app.engine.local import LocalEngine
from app.engine.thread_probe import PROBE_PROMPT, probe_threads, step_order
from app.settings import RuntimeSettings, SamplingSettings

from helpers import load_engine, run_turn

TIMEOUT_S = 120.0


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("GLASSBOX_CACHE", str(cache))
    return cache


# -- usable cores from fixture files ------------------------------------------------


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize(
    ("text", "cpus"),
    [("max 100000\n", None), ("200000 100000\n", 2.0), ("150000 100000", 1.5), ("", None)],
)
def test_cpu_max_parsed(text, cpus):
    assert tt.parse_cpu_max(text) == cpus


def test_cgroup_v2_quota_of_an_ancestor_limits(tmp_path):
    root = tmp_path / "cgroup"
    self_cgroup = tmp_path / "self_cgroup"
    write(self_cgroup, "0::/user.slice/app.scope\n")
    write(root / "cpu.max", "max 100000\n")
    write(root / "user.slice" / "cpu.max", "150000 100000\n")  # 1.5 CPUs
    write(root / "user.slice" / "app.scope" / "cpu.max", "max 100000\n")
    assert tt.cgroup_cpu_limit(root, self_cgroup) == 1.5


def test_cgroup_v1_cfs_quota(tmp_path):
    root = tmp_path / "cgroup"
    self_cgroup = tmp_path / "self_cgroup"
    write(self_cgroup, "4:memory:/x\n3:cpu,cpuacct:/docker/abc\n0::/\n")
    write(root / "cpu,cpuacct" / "docker" / "abc" / "cpu.cfs_quota_us", "300000\n")
    write(root / "cpu,cpuacct" / "docker" / "abc" / "cpu.cfs_period_us", "100000\n")
    write(root / "cpu,cpuacct" / "cpu.cfs_quota_us", "-1\n")
    write(root / "cpu,cpuacct" / "cpu.cfs_period_us", "100000\n")
    assert tt.cgroup_cpu_limit(root, self_cgroup) == 3.0


def test_no_cgroup_files_means_no_limit(tmp_path):
    assert tt.cgroup_cpu_limit(tmp_path / "none", tmp_path / "none2") is None


def test_usable_cores_is_affinity_capped_by_the_quota():
    assert tt.usable_cores(affinity={0, 1, 2, 3}, cpu_limit=None) == 4
    assert tt.usable_cores(affinity={0, 1, 2, 3}, cpu_limit=2.0) == 2
    assert tt.usable_cores(affinity={0, 1, 2, 3}, cpu_limit=1.5) == 2  # rounded up
    assert tt.usable_cores(affinity={2, 5}, cpu_limit=8.0) == 2
    assert tt.usable_cores(affinity={0}, cpu_limit=0.2) == 1
    assert 1 <= tt.usable_cores() <= (os.cpu_count() or 1)


def test_candidate_counts():
    assert tt.candidate_counts(1) == [1]
    assert tt.candidate_counts(2) == [1, 2]
    assert tt.candidate_counts(8) == list(range(1, 9))
    many = tt.candidate_counts(64)
    assert many[0] == 1 and many[-1] == 64 and len(many) < 12


def test_rounds_alternate_their_order():
    assert step_order([1, 2, 3], 2) == [1, 2, 3, 3, 2, 1]


# -- the measurement with an injected clock ----------------------------------------


class ScriptedClock:
    """A clock whose prefill and decode steps take the times a test chooses per count.

    The probe reads the clock once before prefill and once per token; the
    progress callback says which count a step measures.
    """

    def __init__(self, prefill_ms: dict[int, float], token_ms: dict[int, float]) -> None:
        self.prefill_ms, self.token_ms = prefill_ms, token_ms
        self.now = self.calls = self.n = 0

    def on_progress(self, step, total, n_threads, phase, **extra) -> None:
        if phase == "prefill":
            self.n, self.calls = n_threads, 0

    def __call__(self) -> int:
        if self.calls == 1:
            self.now += int(self.prefill_ms[self.n] * 1e6)
        elif self.calls > 1:
            self.now += int(self.token_ms[self.n] * 1e6)
        self.calls += 1
        return self.now


@pytest.fixture(scope="module")
def llm_in_process(bundled_model):
    # The app never imports llama_cpp outside its worker; a test may, to drive
    # the probe with an injected clock.
    import llama_cpp

    llm = llama_cpp.Llama(str(bundled_model), n_ctx=512, n_threads=1, verbose=False)
    yield llama_cpp, llm
    llm.close()


def test_chosen_counts_are_the_fastest_measured(llm_in_process):
    llama_cpp, llm = llm_in_process
    tokens = llm.tokenize(PROBE_PROMPT.encode(), add_bos=True)
    # Decode fastest at 2 threads, prefill fastest at 3.
    clock = ScriptedClock(prefill_ms={1: 400, 2: 250, 3: 200}, token_ms={1: 20, 2: 10, 3: 15})
    before = (llama_cpp.llama_n_threads(llm.ctx), llama_cpp.llama_n_threads_batch(llm.ctx))
    texts: list[str] = []

    def progress(step, total, n_threads, phase, **extra):
        clock.on_progress(step, total, n_threads, phase, **extra)
        if phase == "decode":
            texts.append(extra["text"])

    outcome = probe_threads(
        llm, llama_cpp, tokens, [1, 2, 3], rounds=1, decode_tokens=6, clock=clock,
        on_progress=progress,
    )  # fmt: skip
    assert not outcome.cancelled
    rows = tt.best_per_count(outcome.rows)
    assert [r.n_threads for r in rows] == [1, 2, 3]
    by_count = {r.n_threads: r for r in rows}
    assert by_count[2].decode_tok_s == pytest.approx(100.0)  # 1 token per 10 ms
    assert by_count[3].prefill_tok_s == pytest.approx(len(tokens) / 0.2)
    assert tt.choose_threads(rows) == (2, 3)
    assert "".join(texts).strip()  # the decoded text went to the progress callback
    # The context gets its threads back.
    after = (llama_cpp.llama_n_threads(llm.ctx), llama_cpp.llama_n_threads_batch(llm.ctx))
    assert after == before


def test_a_stop_request_ends_the_measurement(llm_in_process):
    llama_cpp, llm = llm_in_process
    tokens = llm.tokenize(PROBE_PROMPT.encode(), add_bos=True)
    outcome = probe_threads(
        llm, llama_cpp, tokens, [1, 2], rounds=1, decode_tokens=4, should_stop=lambda: True
    )
    assert outcome.cancelled and outcome.rows == []


def test_ties_go_to_fewer_threads():
    rows = [
        ev.ThreadMeasurement(1, prefill_tok_s=100, decode_tok_s=50),
        ev.ThreadMeasurement(2, prefill_tok_s=100, decode_tok_s=50),
    ]
    assert tt.choose_threads(rows) == (1, 1)


def test_best_round_per_count():
    rows = [
        ev.ThreadMeasurement(1, prefill_tok_s=100, decode_tok_s=40),
        ev.ThreadMeasurement(1, prefill_tok_s=90, decode_tok_s=50),
    ]
    (best,) = tt.best_per_count(rows)
    assert (best.prefill_tok_s, best.decode_tok_s) == (100, 50)


# -- the cache and what a load uses --------------------------------------------------


def stored(model: Path, decode: int, prefill: int, context: str = "headless") -> tt.TunedThreads:
    result = tt.TunedThreads(
        n_threads=decode,
        n_threads_batch=prefill,
        rows=[ev.ThreadMeasurement(decode, 1.0, 1.0)],
        context=context,
    )
    tt.store_tuned(model, result)
    return result


def test_cache_is_keyed_per_model_and_context(bundled_model, tmp_path, own_cache):
    assert tt.load_tuned(bundled_model) is None
    stored(bundled_model, 1, 2)
    found = tt.load_tuned(bundled_model)
    assert found is not None and (found.n_threads, found.n_threads_batch) == (1, 2)
    assert found.key["usable_cores"] == tt.usable_cores()
    # The window falls back to the headless result until it has its own.
    assert tt.load_tuned(bundled_model, "window").context == "headless"
    stored(bundled_model, 2, 2, context="window")
    assert tt.load_tuned(bundled_model, "window").n_threads == 2
    assert tt.load_tuned(bundled_model, "headless").n_threads == 1
    # Another file (a copy: another path) has no entry.
    copy = tmp_path / "copy.gguf"
    copy.write_bytes(b"GGUF")
    assert tt.load_tuned(copy) is None
    data = json.loads((own_cache / tt.CACHE_FILE).read_text())
    assert data["version"] == tt.CACHE_VERSION and len(data["entries"]) == 2


def test_a_damaged_cache_file_is_ignored(bundled_model, own_cache):
    own_cache.mkdir(parents=True, exist_ok=True)
    (own_cache / tt.CACHE_FILE).write_text("{not json")
    assert tt.load_tuned(bundled_model) is None
    stored(bundled_model, 1, 1)  # and replaced
    assert tt.load_tuned(bundled_model) is not None


def test_explicit_threads_win_over_a_stored_result(bundled_model):
    stored(bundled_model, 1, 2)
    settings, source = tt.resolve_threads(RuntimeSettings(n_threads=2), bundled_model)
    assert (settings.n_threads, settings.n_threads_batch, source) == (2, 2, "explicit")
    settings, source = tt.resolve_threads(RuntimeSettings(), bundled_model)
    assert (settings.n_threads, settings.n_threads_batch, source) == (1, 2, "tuned")
    # A prefill count given alone keeps the tuned decode count.
    settings, source = tt.resolve_threads(RuntimeSettings(n_threads_batch=1), bundled_model)
    assert (settings.n_threads, settings.n_threads_batch) == (1, 1)


def test_without_a_measurement_every_usable_core(bundled_model):
    settings, source = tt.resolve_threads(RuntimeSettings(), bundled_model)
    cores = tt.usable_cores()
    assert (settings.n_threads, settings.n_threads_batch, source) == (cores, cores, "default")


def test_the_engine_loads_with_the_stored_counts_unless_told(bundled_model):
    stored(bundled_model, 1, 2)
    engine, loaded = load_engine(bundled_model, RuntimeSettings(n_ctx=1024))
    try:
        assert (loaded.n_threads, loaded.settings["n_threads_batch"]) == (1, 2)
        assert loaded.threads_source == "tuned"
        engine.load(bundled_model, RuntimeSettings(n_ctx=1024, n_threads=2))
        explicit = wait(engine, ev.ModelLoaded)
        assert (explicit.n_threads, explicit.settings["n_threads_batch"]) == (2, 2)
        assert explicit.threads_source == "explicit"
    finally:
        engine.close()


# -- the real measurement in the worker ------------------------------------------------


def wait(engine: LocalEngine, kind: type, seen: list | None = None):
    while True:
        event = engine.next_event(timeout=TIMEOUT_S)
        if seen is not None:
            seen.append(event)
        if isinstance(event, ev.EngineCrashed | ev.EngineError):
            pytest.fail(f"engine: {event}")
        if isinstance(event, kind):
            return event


def test_a_real_tune_measures_stores_and_applies(bundled_model, own_cache):
    engine, loaded = load_engine(bundled_model, RuntimeSettings(n_ctx=1024))
    try:
        assert loaded.threads_source == "default"
        assert engine.tune([1, 2], rounds=1, decode_tokens=8)
        assert not engine.tune([1])  # one at a time
        seen: list = []
        finished = wait(engine, ev.TuneFinished, seen)
        assert not finished.cancelled and not finished.error
        assert [row.n_threads for row in finished.rows] == [1, 2]
        assert all(r.prefill_tok_s > 0 and r.decode_tok_s > 0 for r in finished.rows)
        assert all(r.decode_tokens == 8 and r.prompt_tokens >= 64 for r in finished.rows)
        progress = [e for e in seen if isinstance(e, ev.TuneProgress)]
        assert [e.phase for e in progress if e.phase != "decode"] == [
            "prefill", "measured", "prefill", "measured",
        ]  # fmt: skip
        assert "".join(e.text for e in progress if e.phase == "decode").strip()
        # Stored, and applied to the loaded model (its settings left threads unset).
        # Remembered; marked when other programs kept the cores busy meanwhile (a
        # shared CI machine), so that a quieter measurement replaces it later.
        assert Path(finished.stored_in) == own_cache / tt.CACHE_FILE
        entry = tt.load_tuned(bundled_model)
        assert entry is not None and entry.n_threads == finished.n_threads
        assert (entry.busy_cores is not None) == bool(finished.busy_note)
        assert finished.applied and engine.model_info.threads_source == "tuned"
        assert engine.model_info.n_threads == finished.n_threads
        # The next chat turn is a normal turn: no KV cache left over from the probe.
        rid = engine.submit(
            [{"role": "user", "content": "Say hello."}],
            SamplingSettings(max_tokens=8, seed=1, temperature=0),
        )
        done = run_turn(engine, rid)[-1]
        assert done.metrics.stop_reason in ("eos", "length")
        assert done.metrics.prompt_tokens_cached == 0 and done.metrics.output_tokens > 0
    finally:
        engine.close()


def test_a_chat_submitted_while_tuning_stops_it_and_is_answered(bundled_model):
    settings = RuntimeSettings(n_ctx=1024, n_threads=2)
    engine, _ = load_engine(bundled_model, settings)
    try:
        assert engine.tune([1, 2], rounds=2, decode_tokens=40)
        seen: list = []
        event = wait(engine, ev.TuneProgress, seen)
        assert event.step == 1
        rid = engine.submit(
            [{"role": "user", "content": "Say hello."}],
            SamplingSettings(max_tokens=8, seed=1, temperature=0),
        )
        finished = wait(engine, ev.TuneFinished, seen)
        assert finished.cancelled and finished.n_threads is None and not finished.stored_in
        turn = run_turn(engine, rid)
        assert turn[-1].metrics.stop_reason in ("eos", "length")
        assert turn[-1].metrics.output_tokens > 0
        # Nothing stored; explicit threads stayed as they were.
        assert tt.load_tuned(bundled_model) is None
        assert engine.model_info.n_threads == 2
        assert engine.model_info.threads_source == "explicit"
    finally:
        engine.close()


def test_tune_refuses_without_a_model():
    with LocalEngine() as engine:
        assert not engine.tune([1])


# -- glassbox tune --------------------------------------------------------------------


def test_glassbox_tune_prints_the_table_and_stores_it(tmp_path, own_cache, bundled_model):
    env = {**os.environ, "GLASSBOX_HOME": str(tmp_path / "home"), "GLASSBOX_CACHE": str(own_cache)}
    result = subprocess.run(
        [sys.executable, "-m", "app.cli.main", "tune", "--counts", "1,2", "--rounds", "1",
         "--ctx", "1024", "--json"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [row["n_threads"] for row in data["rows"]] == [1, 2]
    assert data["n_threads"] in (1, 2) and data["n_threads_batch"] in (1, 2)
    assert Path(data["stored_in"]) == own_cache / tt.CACHE_FILE
    entry = tt.load_tuned(bundled_model)
    assert entry is not None and entry.n_threads == data["n_threads"]


def test_glassbox_tune_rejects_bad_counts(tmp_path):
    env = {**os.environ, "GLASSBOX_HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "app.cli.main", "tune", "--counts", "two"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "glassbox: --counts must be numbers separated by commas, got 'two'"
    ]


def _finished(n_threads: int, context: str = "headless") -> ev.TuneFinished:
    rows = [ThreadMeasurement(n_threads=n, prefill_tok_s=100.0, decode_tok_s=50.0) for n in (1, 2)]
    return ev.TuneFinished(rows=rows, n_threads=n_threads, n_threads_batch=2, context=context)


def test_a_busy_measurement_is_stored_marked_and_never_replaces_a_quiet_one(
    own_cache, bundled_model
):
    busy = _finished(1)
    tt.record_result(busy, bundled_model, None, True, True, busy_cores=1.4)
    assert "1.4 cores" in busy.busy_note and "until a quieter" in busy.busy_note
    assert tt.load_tuned(bundled_model).busy_cores == 1.4

    quiet = _finished(2)
    tt.record_result(quiet, bundled_model, None, True, True)
    assert not quiet.busy_note and tt.load_tuned(bundled_model).n_threads == 2

    again = _finished(1)
    tt.record_result(again, bundled_model, None, True, True, busy_cores=0.9)
    assert "quieter measurement stays" in again.busy_note and not again.stored_in
    kept = tt.load_tuned(bundled_model)
    assert kept.n_threads == 2 and kept.busy_cores is None
