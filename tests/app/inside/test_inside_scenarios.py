"""Each scenario, run on the bundled model, gets the diagnosis it was built to show."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from app.diagnosis import Thresholds
from app.scenarios import SCENARIOS, ScenarioRunner
from app.settings import RuntimeSettings

WARM = ["long-prompt", "long-answer", "queue", "full-context"]


@pytest.fixture(scope="module")
def runner(bundled_model):
    # Engines loaded here, for the module: a test's leak check sees them as already there.
    with ScenarioRunner(bundled_model, RuntimeSettings()) as r:
        r.load(WARM)
        yield r


# A scenario is seconds on a quiet 2-core machine; one busy with other programs' tests
# slowed it tenfold here, past the suite's 300 s per test.
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("name", WARM)
def test_scenario_gets_its_diagnosis(runner, name):
    result = runner.run(name)
    focus = result.focus
    assert focus.diagnosis.cause == SCENARIOS[name].cause, [
        (r.label, r.diagnosis.line()) for r in result.requests
    ]
    assert result.reproduced
    data = result.to_dict()
    assert data["diagnosis"]["cause"] == SCENARIOS[name].cause
    if name == "full-context":
        assert focus.trace.dropped_messages > 0
        assert result.requests[0].trace.dropped_messages == 0  # the first turn fitted
    if name == "queue":
        assert len(result.requests) == 3
        assert focus.trace.queue_ms > result.requests[0].trace.queue_ms


def test_unknown_scenario_is_a_clear_error(runner):
    from app.errors import GlassboxError

    with pytest.raises(GlassboxError, match="no scenario 'nope'"):
        runner.run("nope")


@pytest.mark.timeout(1200)
def test_cold_start_command_writes_json(tmp_path):
    out = tmp_path / "cold.json"
    result = subprocess.run(
        [sys.executable, "-m", "app.cli.main", "scenario", "cold-start", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert data["scenario"] == "cold-start" and data["expected_cause"] == "cold_start"
    load_wait = data["requests"][0]["trace"]["load_wait_ms"]
    assert load_wait > 0
    # A fast machine loads the small bundled model in under the "slow" wait (0.5 s): the
    # turn is then rightly "not slow"; whenever the load made it slow, it is the cause.
    if load_wait > Thresholds().slow_wait_ms:
        assert data["diagnosis"]["cause"] == "cold_start", data["requests"]
        assert "diagnosis: cold start" in result.stdout
    else:
        assert data["diagnosis"]["cause"] in ("cold_start", "not_slow"), data["requests"]
