"""The quiet line of figures under a reply: tokens, decode rate, TTFT and why it stopped."""

from __future__ import annotations

from app.metrics import TurnMetrics

STOP_WORDS = {
    "eos": "finished",
    "length": "cut at the token limit",
    "stop": "stop string",
    "cancelled": "stopped",
    "error": "error",
}


def stats_line(metrics: TurnMetrics) -> str:
    """ "124 tokens · 96.1 tok/s · TTFT 48 ms · finished"; figures the turn lacks are left out."""
    parts = []
    if metrics.output_tokens is not None:
        plural = "" if metrics.output_tokens == 1 else "s"
        parts.append(f"{metrics.output_tokens} token{plural}")
    if metrics.decode_tok_s is not None and metrics.output_tokens:
        parts.append(f"{metrics.decode_tok_s:.1f} tok/s")
    if metrics.ttft_ms is not None:
        parts.append(f"TTFT {metrics.ttft_ms:.0f} ms")
    if metrics.stop_reason:
        parts.append(STOP_WORDS.get(metrics.stop_reason, metrics.stop_reason))
    return " · ".join(parts)


STATS_TIP = (
    "This reply's figures: tokens generated, decode speed, time to first token and why it "
    "stopped. Click to see the turn in the internals panel."
)
