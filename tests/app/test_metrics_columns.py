"""One column spec per TurnMetrics field, shared by the tables, the chat line and the GUI."""

from __future__ import annotations

from app.metrics import FIELD_NAMES, TurnMetrics
from app.metrics_columns import (
    COLUMNS,
    MISSING,
    fmt,
    format_metrics_line,
    format_table,
    metrics_rows,
    table_header,
    table_row,
)


def _metrics() -> TurnMetrics:
    return TurnMetrics(
        queue_ms=2.4,
        ttft_ms=61.7,
        prefill_ms=60.0,
        prompt_tokens=40,
        prompt_tokens_cached=8,
        prompt_tokens_evaluated=32,
        prefill_tok_s=533.33,
        output_tokens=20,
        decode_ms=150.0,
        decode_tok_s=126.66,
        itl_ms_p50=7.91,
        itl_ms_p95=9.05,
        itl_ms_p99=9.9,
        kv_cells_used=60,
        kv_cells_total=512,
        kv_fill=60 / 512,
        kv_bytes_used=60 * 30720,
        kv_bytes_total=512 * 30720,
        stop_reason="eos",
        total_ms=215.0,
    )


def test_one_column_per_field_in_schema_order() -> None:
    assert tuple(COLUMNS) == FIELD_NAMES
    assert all(c.field == name for name, c in COLUMNS.items())


def test_figures_have_one_format_everywhere() -> None:
    m = _metrics()
    assert fmt("decode_tok_s", m.decode_tok_s) == "126.7 tok/s"
    assert fmt("kv_fill", m.kv_fill) == "11.7%"
    assert fmt("kv_bytes_total", m.kv_bytes_total) == "15.0 MiB"
    assert fmt("ttft_ms", None) == MISSING
    assert COLUMNS["prompt_tokens"].of(m) == "40"
    assert COLUMNS["stop_reason"].of(m, unit=True) == "eos"
    line = format_metrics_line(m)
    assert "ttft 62 ms" in line and "decode 20 tok @ 126.7 tok/s" in line
    assert "kv 60/512 (11.7%)" in line and "total 215 ms" in line
    rows = dict(metrics_rows(m))
    assert list(rows) == list(FIELD_NAMES) and rows["decode_tok_s"] == "126.7 tok/s"


def test_table_columns_line_up_and_unknown_figures_are_marked() -> None:
    header = table_header()
    known = table_row(1, _metrics())
    unknown = table_row(2, TurnMetrics(stop_reason="error"))
    assert len(header) == len(known) == len(unknown)
    assert header.split()[0] == "turn" and "ttft ms" in header
    assert "126.7" in known and MISSING in unknown.split()
    table = format_table([_metrics(), TurnMetrics()])
    assert table.splitlines()[0] == header and len(table.splitlines()) == 3
