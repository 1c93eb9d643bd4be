"""The estimate made before loading against llama.cpp's own figures after loading."""

from __future__ import annotations

import pytest

from app.engine.kv_log import parse_kv_report
from app.models.fit_check import estimate_vs_loaded, format_memory_rows
from app.settings import RuntimeSettings

from helpers import load_engine

LOG = """\
load_tensors:   CPU_Mapped model buffer size =    92.10 MiB
llama_context:        CPU  output buffer size =     0.19 MiB
llama_kv_cache:        CPU KV buffer size =    45.00 MiB
llama_kv_cache: size =   45.00 MiB (  2048 cells,  30 layers,  1/1 seqs), K (f16):   22.50 MiB
sched_reserve:        CPU compute buffer size =    99.38 MiB
sched_reserve:      CUDA0 compute buffer size =     1.50 MiB
"""


def test_parse_reports_every_buffer_summed_over_devices():
    report = parse_kv_report(LOG.splitlines())
    assert report.cells == 2048
    assert report.buffer_mib == 45.0
    assert report.model_mib == 92.10
    assert report.compute_mib == pytest.approx(99.38 + 1.50)


# As logged on a Xeon with AMX (issue 7): the weights twice, mapped and repacked.
AMX_LOG = """\
load_tensors:   CPU_Mapped model buffer size =    92.10 MiB
load_tensors:          AMX model buffer size =    95.34 MiB
llama_kv_cache:        CPU KV buffer size =    45.00 MiB
sched_reserve:        CPU compute buffer size =    99.38 MiB
"""


def test_repacked_copies_are_their_own_row_not_weights():
    report = parse_kv_report(AMX_LOG.splitlines())
    assert report.model_mib == 92.10  # the mapped file, as the estimate counts it
    assert report.extra_mib == {"AMX": 95.34}
    assert parse_kv_report(LOG.splitlines()).extra_mib == {}


def test_memory_rows_show_repacking_without_a_wrong_estimate(bundled_model):
    engine, loaded = load_engine(bundled_model, RuntimeSettings(n_ctx=2048, n_threads=2))
    engine.close()
    loaded.extra_buffers_mib = {"AMX": 95.34}
    rows = {row.part: row for row in estimate_vs_loaded(loaded)}
    repacked = rows["repacked weights"]
    assert repacked.estimate_bytes is None  # not knowable before loading
    assert repacked.reported_bytes == round(95.34 * 2**20) and "AMX" in repacked.note
    total = rows["total"]
    assert total.reported_bytes == sum(
        rows[p].reported_bytes for p in ("weights", "repacked weights", "KV cache", "compute")
    )
    line = format_memory_rows(list(rows.values()))
    assert "repacked weights ? / 95.3 MiB" in line and "+ repacked" in line


@pytest.mark.parametrize(
    "settings",
    [
        RuntimeSettings(n_ctx=2048),
        RuntimeSettings(n_ctx=700, flash_attn=True, kv_cache_type="q8_0"),
    ],
)
def test_estimate_next_to_llama_cpp(bundled_model, settings):
    engine, loaded = load_engine(bundled_model, settings)
    engine.close()
    rows = {row.part: row for row in estimate_vs_loaded(loaded)}
    assert rows["KV cache"].estimate_bytes == rows["KV cache"].reported_bytes
    # The mapped weights are the file's tensors on every CPU; a repacked copy,
    # where llama.cpp makes one, is a row of its own and not part of this.
    weights = rows["weights"]
    assert abs(weights.estimate_bytes - weights.reported_bytes) <= 0.01 * 2**20  # log rounding
    assert ("repacked weights" in rows) == bool(loaded.extra_buffers_mib)
    compute = rows["compute"]
    assert compute.reported_bytes > 0
    assert abs(compute.estimate_bytes - compute.reported_bytes) <= 0.10 * compute.reported_bytes
    assert rows["total"].reported_bytes == sum(
        row.reported_bytes for part, row in rows.items() if part != "total"
    )
    line = format_memory_rows(list(rows.values()))
    print(f"n_ctx {settings.n_ctx} {settings.kv_cache_type}: {line}")
    assert line.startswith("memory, estimated / llama.cpp: weights")
