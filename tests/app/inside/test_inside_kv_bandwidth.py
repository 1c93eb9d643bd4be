"""KV cache arithmetic against llama.cpp's own report; the bandwidth measurement and ceiling."""

from __future__ import annotations

import dataclasses
import json

import pytest

from app import bandwidth
from app.kv_geometry import context_fill, kv_geometry
from app.models.gguf_file import read_gguf_info
from app.paths import cache_dir


def test_kv_arithmetic_equals_llama_cpp_reported_buffer(loaded_engine, bundled_model):
    _engine, loaded = loaded_engine
    geometry = kv_geometry(read_gguf_info(bundled_model), loaded.n_ctx)
    assert loaded.kv_buffer_mib_reported is not None
    assert geometry.total_bytes / 2**20 == pytest.approx(loaded.kv_buffer_mib_reported, abs=0.005)
    assert geometry.total_bytes == loaded.kv_bytes_total
    assert geometry.bytes_per_cell == loaded.kv_bytes_per_token
    assert geometry.cells == loaded.kv_cells_total
    lines = geometry.lines()
    assert "x 2 (K and V) x" in lines[0] and "bytes (f16)" in lines[0]
    assert lines[-1].startswith(f"total = {geometry.total_bytes:,} bytes")


def test_sliding_window_layers_get_fewer_cells(bundled_model):
    info = read_gguf_info(bundled_model)
    gemma = dataclasses.replace(
        info,
        architecture="gemma2",
        n_layers=6,
        n_kv_heads_per_layer=None,
        metadata={**info.metadata, "gemma2.attention.sliding_window": 1024},
    )
    geometry = kv_geometry(gemma, 8192)
    by_kind = {g.sliding_window: g for g in geometry.groups}
    assert by_kind[True].layers == 3 and by_kind[True].cells == 1536  # pad256(1024 + 512)
    assert by_kind[False].layers == 3 and by_kind[False].cells == 8192
    assert "sliding-window layers" in " ".join(geometry.lines())


def test_context_fill_says_what_was_dropped_and_evaluated_again():
    fill = context_fill(3, 800, 900, 1024, "eos")
    assert fill.reevaluated_tokens == 800
    assert "3 oldest messages" in fill.sentence()
    assert context_fill(0, 40, 100, 1024, "eos").sentence() == "The context did not fill this turn."
    assert context_fill(0, 40, 1024, 1024, "length").stopped_full


def test_bandwidth_is_measured_once_then_read_from_the_cache():
    first = bandwidth.measure(force=True, copy_mib=8)  # the session's cache may hold one
    assert first.bytes_per_s > 0 and first.copy_mib == 8
    stored = json.loads((cache_dir() / bandwidth.CACHE_FILE).read_text())
    assert stored["bytes_per_s"] == first.bytes_per_s
    assert bandwidth.measure(copy_mib=8) == first  # cached: no new measurement
    again = bandwidth.measure(force=True, copy_mib=8)
    assert again.measured_at >= first.measured_at
    assert bandwidth.cached() == again


def test_a_damaged_cache_is_measured_again():
    (cache_dir() / bandwidth.CACHE_FILE).write_text("{not json")
    assert bandwidth.cached() is None
    assert bandwidth.measure(copy_mib=8).bytes_per_s > 0


def test_ceiling_is_bandwidth_over_bytes_per_token():
    report = bandwidth.ceiling_report(10e9, 90 * 10**6, 10 * 10**6, 50.0, 300.0)
    assert report.bytes_per_token == 100 * 10**6
    assert report.ceiling_tok_s == pytest.approx(100.0)
    assert report.share_of_ceiling == pytest.approx(0.5)
    assert report.prefill_over_decode == pytest.approx(6.0)
    assert "6.0x" in report.evidence()
    assert report.prefill_label == "compute-bound" and report.decode_label == "bandwidth-bound"
    assert bandwidth.decode_ceiling_tok_s(0.0, 1, 0) is None
