"""What the parent knows about one chat request, enough to report it if the worker dies."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from app.engine import events as ev
from app.metrics import TurnMetrics, decode_figures, ns_to_ms
from app.settings import SamplingSettings

Messages = Sequence[dict[str, str]]
MessagesSource = Messages | Callable[[], Messages]


@dataclass
class PendingTurn:
    request_id: int
    messages: MessagesSource
    sampling: SamplingSettings
    submit_ns: int
    top_logprobs: int = 0  # token probabilities asked for (app.engine.token_logprobs)
    # Filled in as the turn runs, so a crash can still report what was seen.
    first_token_ns: int | None = None
    token_times: list[int] = field(default_factory=list)
    started: ev.TurnStarted | None = None

    def crashed_metrics(self) -> TurnMetrics:
        """What the parent saw of a turn whose worker died; the rest stays None."""
        m = TurnMetrics(
            stop_reason="error",
            total_ms=ns_to_ms(time.monotonic_ns() - self.submit_ns),
            output_tokens=len(self.token_times),
        )
        if self.started is not None:
            m.queue_ms = self.started.queue_ms
            m.prompt_tokens = self.started.prompt_tokens
            m.prompt_tokens_cached = self.started.prompt_tokens_cached
            m.prompt_tokens_evaluated = m.prompt_tokens - m.prompt_tokens_cached
        if self.first_token_ns is not None:
            m.ttft_ms = ns_to_ms(self.first_token_ns - self.submit_ns)
        if self.token_times:
            for name, value in decode_figures(self.token_times).items():
                setattr(m, name, value)
        return m


def exit_signal_name(exit_code: int | None) -> str | None:
    """multiprocessing reports death by signal N as exit code -N."""
    if exit_code is None or exit_code >= 0:
        return None
    try:
        return signal.Signals(-exit_code).name
    except ValueError:
        return f"signal {-exit_code}"
