"""How each TurnMetrics figure is shown: one spec per field, used by every view.

The bench and demo tables, the metrics line after a chat reply, and the GUI's
readout and tooltip all format figures through COLUMNS, so a figure reads the
same everywhere (same precision, same unit, same mark for "not known").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from app.metrics import FIELD_NAMES, TurnMetrics

MISSING = "-"  # a figure the backend could not know (None)
MIB = 1024 * 1024


@dataclass(frozen=True)
class MetricColumn:
    """One TurnMetrics field: its table header, label, unit and number format."""

    field: str
    header: str  # short, for table headers
    label: str  # a few words, for readouts and tooltips
    unit: str  # "ms", "tok", "tok/s", "%", "MiB" or "" (a word, like stop_reason)
    spec: str  # format() spec of the shown number
    scale: float = 1.0  # shown = value * scale (kv_fill as a percentage, bytes as MiB)

    def format(self, value: object, *, unit: bool = False) -> str:
        """The value as text ("-" when None); with unit=True, followed by the unit."""
        if value is None:
            return MISSING
        if isinstance(value, int | float) and not isinstance(value, bool):
            shown = value * self.scale if self.scale != 1.0 else value
            text = format(shown, self.spec)
        else:
            text = str(value)
        if not unit or not self.unit:
            return text
        return f"{text}{self.unit}" if self.unit == "%" else f"{text} {self.unit}"

    def of(self, metrics: TurnMetrics, *, unit: bool = False) -> str:
        return self.format(getattr(metrics, self.field), unit=unit)

    @property
    def table_header(self) -> str:
        return f"{self.header} {self.unit}" if self.unit in ("ms", "%", "MiB") else self.header


# One column per TurnMetrics field, in schema order (a test holds it to FIELD_NAMES).
COLUMNS: dict[str, MetricColumn] = {
    c.field: c
    for c in (
        MetricColumn("queue_ms", "queue", "queue", "ms", ".0f"),
        MetricColumn("ttft_ms", "ttft", "TTFT", "ms", ".0f"),
        MetricColumn("prefill_ms", "prefill", "prefill time", "ms", ".0f"),
        MetricColumn("prompt_tokens", "prompt", "prompt", "tok", "d"),
        MetricColumn("prompt_tokens_cached", "cached", "prompt cached", "tok", "d"),
        MetricColumn("prompt_tokens_evaluated", "eval", "prompt evaluated", "tok", "d"),
        MetricColumn("prefill_tok_s", "prefill t/s", "prefill", "tok/s", ".0f"),
        MetricColumn("output_tokens", "out", "output", "tok", "d"),
        MetricColumn("decode_ms", "decode", "decode time", "ms", ".0f"),
        MetricColumn("decode_tok_s", "decode t/s", "decode", "tok/s", ".1f"),
        MetricColumn("itl_ms_p50", "itl p50", "ITL p50", "ms", ".1f"),
        MetricColumn("itl_ms_p95", "itl p95", "ITL p95", "ms", ".1f"),
        MetricColumn("itl_ms_p99", "itl p99", "ITL p99", "ms", ".1f"),
        MetricColumn("kv_cells_used", "kv used", "KV cells used", "", "d"),
        MetricColumn("kv_cells_total", "kv cells", "KV cells", "", "d"),
        MetricColumn("kv_fill", "kv fill", "KV fill", "%", ".1f", scale=100.0),
        MetricColumn("kv_bytes_used", "kv used", "KV used", "MiB", ".1f", scale=1 / MIB),
        MetricColumn("kv_bytes_total", "kv size", "KV size", "MiB", ".1f", scale=1 / MIB),
        MetricColumn("stop_reason", "stop", "stop", "", "s"),
        MetricColumn("total_ms", "total", "total", "ms", ".0f"),
    )
}

# The per-turn table of `glassbox bench` and `glassbox demo`.
TABLE_FIELDS: tuple[str, ...] = (
    "queue_ms",
    "ttft_ms",
    "prompt_tokens",
    "prompt_tokens_cached",
    "prompt_tokens_evaluated",
    "prefill_tok_s",
    "output_tokens",
    "decode_tok_s",
    "itl_ms_p50",
    "itl_ms_p95",
    "kv_cells_used",
    "kv_fill",
    "stop_reason",
)
_FIRST_WIDTH = 4


def fmt(field: str, value: object, *, unit: bool = True) -> str:
    """One figure of `field` as text, with its unit by default ("12.3 tok/s", "-")."""
    return COLUMNS[field].format(value, unit=unit)


def _widths(fields: Sequence[str]) -> list[int]:
    return [max(len(COLUMNS[f].table_header), 7) for f in fields]


def table_header(fields: Sequence[str] = TABLE_FIELDS, first: str = "turn") -> str:
    cells = [first.rjust(_FIRST_WIDTH)]
    cells += [COLUMNS[f].table_header.rjust(w) for f, w in zip(fields, _widths(fields))]
    return "  ".join(cells)


def table_row(label: object, metrics: TurnMetrics, fields: Sequence[str] = TABLE_FIELDS) -> str:
    cells = [str(label).rjust(_FIRST_WIDTH)]
    cells += [COLUMNS[f].of(metrics).rjust(w) for f, w in zip(fields, _widths(fields))]
    return "  ".join(cells)


def format_table(turns: Iterable[TurnMetrics], fields: Sequence[str] = TABLE_FIELDS) -> str:
    """A header and one row a turn, numbered from 1."""
    rows = [table_header(fields)]
    rows += [table_row(i, m, fields) for i, m in enumerate(turns, start=1)]
    return "\n".join(rows)


def format_metrics_line(m: TurnMetrics) -> str:
    """One human line, as `glassbox chat` prints after each reply."""

    def num(field: str) -> str:
        return COLUMNS[field].of(m)

    return (
        f"queue {fmt('queue_ms', m.queue_ms)} | ttft {fmt('ttft_ms', m.ttft_ms)} | "
        f"prefill {num('prompt_tokens_evaluated')}/{num('prompt_tokens')} tok "
        f"@ {fmt('prefill_tok_s', m.prefill_tok_s)} | "
        f"decode {num('output_tokens')} tok @ {fmt('decode_tok_s', m.decode_tok_s)} "
        f"(itl p50 {fmt('itl_ms_p50', m.itl_ms_p50)}) | "
        f"kv {num('kv_cells_used')}/{num('kv_cells_total')} ({fmt('kv_fill', m.kv_fill)}) | "
        f"{num('stop_reason')} | total {fmt('total_ms', m.total_ms)}"
    )


def metrics_rows(m: TurnMetrics) -> list[tuple[str, str]]:
    """(field name, value with unit) for every field, in schema order: the full record."""
    return [(name, COLUMNS[name].of(m, unit=True)) for name in FIELD_NAMES]
