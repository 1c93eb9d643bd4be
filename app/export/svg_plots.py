"""The internals panel's per-turn plots drawn as SVG text, without Qt.

The same three questions as ui/internals/turn_plots.py (what made up the time to
first token, prefill vs decode throughput, what fills the KV cache), the same
colours, drawn from a list of TurnMetrics. Used by the HTML report and
`glassbox export --format svg`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from app.metrics import TurnMetrics

# The panel's colours (ui/infra/theme.py): a colour-blind-safe palette.
QUEUE_COLOR = "#E69F00"
PREFILL_COLOR = "#0072B2"
DECODE_COLOR = "#D55E00"
CACHED_COLOR = "#009E73"
EVALUATED_COLOR = "#56B4E9"
OUTPUT_COLOR = "#CC79A7"
FOREGROUND = "#333333"

WIDTH, HEIGHT = 560, 240
LEFT, RIGHT, TOP, BOTTOM = 62, 16, 46, 38


@dataclass(frozen=True)
class Series:
    name: str
    color: str
    values: list[float | None]  # one per turn; None: no figure (no bar, no point)


@dataclass(frozen=True)
class PlotSpec:
    key: str  # id in the HTML report, file suffix
    title: str
    y_label: str
    series: list[Series]
    stacked_bars: bool  # True: series stack as bars; False: each series is a line


def plot_specs(metrics: Sequence[TurnMetrics]) -> list[PlotSpec]:
    def of(name: str) -> list[float | None]:
        return [_finite(getattr(m, name)) for m in metrics]

    queue = [_finite(m.queue_ms) or 0.0 for m in metrics]
    rest = [
        max(0.0, (_finite(m.ttft_ms) or 0.0) - q) if m.ttft_ms is not None else None
        for m, q in zip(metrics, queue)
    ]
    output = [_kv_output_cells(m) for m in metrics]
    return [
        PlotSpec(
            "ttft",
            "Time to first token: queue + prefill",
            "ms",
            [
                Series("queue", QUEUE_COLOR, list(queue)),
                Series("prefill + 1st token", PREFILL_COLOR, rest),
            ],
            stacked_bars=True,
        ),
        PlotSpec(
            "throughput",
            "Throughput: prefill vs decode",
            "tok/s",
            [
                Series("prefill", PREFILL_COLOR, of("prefill_tok_s")),
                Series("decode", DECODE_COLOR, of("decode_tok_s")),
            ],
            stacked_bars=False,
        ),
        PlotSpec(
            "kv",
            "KV cache cells after each turn",
            "cells",
            [
                Series("cached prompt", CACHED_COLOR, of("prompt_tokens_cached")),
                Series("evaluated prompt", EVALUATED_COLOR, of("prompt_tokens_evaluated")),
                Series("output", OUTPUT_COLOR, output),
            ],
            stacked_bars=True,
        ),
    ]


def render_svg(spec: PlotSpec, n_turns: int) -> str:
    """One plot as a standalone <svg> element (no XML declaration: it inlines in HTML)."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = _y_top(spec)
    slot = plot_w / max(n_turns, 1)

    def x_of(turn: int) -> float:
        return LEFT + (turn - 0.5) * slot

    def y_of(value: float) -> float:
        return TOP + plot_h - value / top * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="plot-{spec.key}" class="plot" '
        f'width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'font-family="sans-serif" font-size="11" role="img">',
        f"<title>{escape(spec.title)}</title>",
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>',
        f'<text x="{WIDTH / 2}" y="16" text-anchor="middle" font-size="13" '
        f'fill="{FOREGROUND}">{escape(spec.title)}</text>',
    ]
    for i in range(5):  # y grid and tick labels
        value = top * i / 4
        y = y_of(value)
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" '
            'stroke="#dddddd" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" '
            f'fill="{FOREGROUND}">{_tick(value)}</text>'
        )
    parts.append(
        f'<text x="14" y="{TOP + plot_h / 2:.1f}" text-anchor="middle" fill="{FOREGROUND}" '
        f'transform="rotate(-90 14 {TOP + plot_h / 2:.1f})">{escape(spec.y_label)}</text>'
    )
    step = max(1, math.ceil(n_turns / 20))
    for turn in range(1, n_turns + 1, step):
        parts.append(
            f'<text x="{x_of(turn):.1f}" y="{TOP + plot_h + 15}" text-anchor="middle" '
            f'fill="{FOREGROUND}">{turn}</text>'
        )
    parts.append(
        f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 6}" text-anchor="middle" '
        f'fill="{FOREGROUND}">assistant turn</text>'
    )
    if spec.stacked_bars:
        base = [0.0] * n_turns
        bar_w = slot * 0.6
        for series in spec.series:
            for i, bar in enumerate(series.values[:n_turns]):
                if not bar:
                    continue
                y0, y1 = y_of(base[i]), y_of(base[i] + bar)
                parts.append(
                    f'<rect class="bar" x="{x_of(i + 1) - bar_w / 2:.1f}" y="{y1:.1f}" '
                    f'width="{bar_w:.1f}" height="{y0 - y1:.1f}" fill="{series.color}"/>'
                )
                base[i] += bar
    else:
        for series in spec.series:
            points = [
                (x_of(i + 1), y_of(v))
                for i, v in enumerate(series.values[:n_turns])
                if v is not None
            ]
            if len(points) > 1:
                path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
                parts.append(
                    f'<polyline points="{path}" fill="none" stroke="{series.color}" '
                    'stroke-width="2"/>'
                )
            parts += [
                f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{series.color}"/>'
                for x, y in points
            ]
    parts.append(
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" '
        f'stroke="{FOREGROUND}" stroke-width="1"/>'
    )
    x = LEFT
    for series in spec.series:  # legend above the plot area
        parts.append(f'<rect x="{x}" y="26" width="10" height="10" fill="{series.color}"/>')
        parts.append(f'<text x="{x + 14}" y="35" fill="{FOREGROUND}">{escape(series.name)}</text>')
        x += 24 + 7 * len(series.name)
    parts.append("</svg>")
    return "\n".join(parts)


def render_all(metrics: Sequence[TurnMetrics]) -> dict[str, str]:
    """{plot key: <svg> text} for every plot of the panel."""
    return {spec.key: render_svg(spec, len(metrics)) for spec in plot_specs(metrics)}


def combined_svg(metrics: Sequence[TurnMetrics]) -> str:
    """Every plot stacked in one SVG document (the --format svg file)."""
    plots = list(render_all(metrics).values())
    inner = "\n".join(
        plot.replace("<svg ", f'<svg y="{i * HEIGHT}" ', 1) for i, plot in enumerate(plots)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" '
        f'height="{HEIGHT * len(plots)}" viewBox="0 0 {WIDTH} {HEIGHT * len(plots)}">\n'
        f"{inner}\n</svg>\n"
    )


def _y_top(spec: PlotSpec) -> float:
    if spec.stacked_bars:
        sums = [sum(v or 0.0 for v in values) for values in zip(*(s.values for s in spec.series))]
        peak = max(sums, default=0.0)
    else:
        peak = max((v for s in spec.series for v in s.values if v is not None), default=0.0)
    return _nice_ceiling(peak * 1.1) if peak > 0 else 1.0


def _nice_ceiling(value: float) -> float:
    """The next 1, 2, 2.5 or 5 times a power of ten: round tick labels."""
    power = 10 ** math.floor(math.log10(value))
    for factor in (1, 2, 2.5, 5, 10):
        if value <= factor * power:
            return factor * power
    return 10 * power


def _tick(value: float) -> str:
    return f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def _finite(value: float | int | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _kv_output_cells(m: TurnMetrics) -> float | None:
    # As the panel: llama.cpp's used cells minus the prompt are this turn's output.
    if m.kv_cells_used is not None and m.prompt_tokens is not None:
        return max(0.0, float(m.kv_cells_used - m.prompt_tokens))
    return _finite(m.output_tokens)
