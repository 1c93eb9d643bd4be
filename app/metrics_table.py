"""The per-turn metrics table: one format for `glassbox chat`, `glassbox bench` and the demo.

Columns, headers and number formats come from app.metrics_columns (TABLE_FIELDS);
this module decides how a table is laid out and printed: a header, then one row
a turn, labelled by the turn's number. MetricsTable prints rows as turns finish
(chat, bench); render_table gives a whole table at once (demo, conversations show).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from app.metrics import TurnMetrics
from app.metrics_columns import TABLE_FIELDS, table_header, table_row

FIRST_COLUMN = "turn"


class MetricsTable:
    """Prints through `write` (one line a call): the header before the first row, then
    a row per add(). repeat_header: the header again before every row, for a chat
    whose replies scroll the last header away."""

    def __init__(
        self,
        write: Callable[[str], None],
        *,
        repeat_header: bool = False,
        fields: Sequence[str] = TABLE_FIELDS,
    ) -> None:
        self._write = write
        self._repeat_header = repeat_header
        self._fields = fields
        self._rows = 0
        self._header_shown = False

    @property
    def header(self) -> str:
        return table_header(self._fields, FIRST_COLUMN)

    def begin(self) -> None:
        """The header now, before the first turn has finished (bench shows it at once)."""
        if not self._header_shown:
            self._write(self.header)
            self._header_shown = True

    def add(self, metrics: TurnMetrics, label: object | None = None) -> None:
        """One turn's row; label defaults to the turn's number in this table (from 1)."""
        if self._repeat_header and self._rows:
            self._header_shown = False
        self.begin()
        self._rows += 1
        self._write(table_row(self._rows if label is None else label, metrics, self._fields))


def render_table(turns: Iterable[TurnMetrics], fields: Sequence[str] = TABLE_FIELDS) -> str:
    """A whole table, turns numbered from 1 (empty string for no turns)."""
    lines: list[str] = []
    table = MetricsTable(lines.append, fields=fields)
    for metrics in turns:
        table.add(metrics)
    return "\n".join(lines)
