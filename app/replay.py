"""Replay: run a stored turn again with its recorded model, settings, seed and prompt.

The prompt is rebuilt from the stored conversation exactly as ChatSession built
it (system prompt, then the messages up to the turn's user message). With the
same seed, or at temperature 0, the sampler makes the same draws, so the reply
should come out token for token the same; the result says whether it did and,
if not, where the two texts part. The replay is a measurement: it is not stored
in the conversation.

The turns before it in the same conversation, back to the last change of model
or runtime settings (a reload empties the KV cache), are run first: the original
turn reused their cached tokens as its prompt prefix, and a prompt evaluated in
one pass gives slightly different floating-point sums than the same tokens
evaluated as prefix, then rest. That is enough to flip a near-tie between two
tokens even at temperature 0 (seen on the bundled model: turn 2 of a greedy
conversation differed from character 51 when replayed alone).
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from pathlib import Path

from app.engine import events as ev
from app.engine.local import LocalEngine
from app.errors import EngineTimeoutError, GlassboxError
from app.metrics import TurnMetrics
from app.models.resolve import resolve_model_path
from app.settings import RuntimeSettings, SamplingSettings
from app.storage.store import Message, Store

LOAD_TIMEOUT_S = 600.0
TURN_TIMEOUT_S = 600.0


class ReplayError(GlassboxError):
    """The turn cannot be replayed (unknown, never finished, no recorded model)."""


@dataclass(frozen=True)
class ReplayPlan:
    conversation_id: int
    turn: int  # assistant turn number, from 1
    message: Message  # the stored reply
    history: list[dict[str, str]]  # the prompt as the engine gets it
    # Earlier turns run first, as they ran then: (their prompt, their sampling settings).
    lead_in: list[tuple[list[dict[str, str]], SamplingSettings]]
    model_path: Path
    runtime: RuntimeSettings
    sampling: SamplingSettings

    @property
    def deterministic(self) -> bool:
        """Whether the recorded settings pin every draw (greedy, or a recorded seed)."""
        return self.sampling.temperature == 0 or self.sampling.seed is not None


@dataclass(frozen=True)
class ReplayResult:
    plan: ReplayPlan
    text: str
    metrics: TurnMetrics

    @property
    def reproduced(self) -> bool:
        return self.text == self.plan.message.content

    @property
    def first_difference(self) -> int | None:
        """Index of the first character where the replay differs; None when equal."""
        original = self.plan.message.content
        if self.text == original:
            return None
        for index, (a, b) in enumerate(zip(original, self.text)):
            if a != b:
                return index
        return min(len(original), len(self.text))

    def summary(self) -> str:
        """One line: whether the replay reproduced the stored reply."""
        recorded = self.plan.message.metrics
        tokens = self.metrics.output_tokens
        if self.reproduced:
            return f"reproduced: turn {self.plan.turn} came out the same ({tokens} tokens)"
        where = self.first_difference
        was = recorded.output_tokens if recorded else None
        note = "" if self.plan.deterministic else " (the turn recorded no seed at temperature > 0)"
        return (
            f"not reproduced: turn {self.plan.turn} differs from character {where} "
            f"({tokens} tokens now, {was} recorded){note}"
        )


def plan_replay(
    store: Store, conversation_id: int, turn: int | str, model: str | Path | None = None
) -> ReplayPlan:
    """What to run again for assistant turn `turn` (1-based, or "last") of the conversation.

    model: a GGUF to use instead of the recorded one (older turns did not record the file).
    """
    conversation = store.get_conversation(conversation_id)
    if conversation is None:
        raise ReplayError(f"no conversation with id {conversation_id}")
    messages = store.messages(conversation_id)
    replies = [(i, m) for i, m in enumerate(messages) if m.role == "assistant"]
    if not replies:
        raise ReplayError(f"conversation {conversation_id} has no reply to replay")
    number = _turn_number(turn, len(replies))
    index, reply = replies[number - 1]
    if reply.sampling_settings is None or reply.runtime_settings is None:
        raise ReplayError(f"turn {number} has no recorded settings (it never finished)")
    system = conversation.system_prompt

    history = _prompt(system, messages[:index])
    if not history or history[-1]["role"] != "user":
        raise ReplayError(f"turn {number} does not follow a user message")
    lead_in: list[tuple[list[dict[str, str]], SamplingSettings]] = []
    for earlier_index, earlier in reversed(replies[: number - 1]):
        same_load = (earlier.model, earlier.runtime_settings) == (
            reply.model,
            reply.runtime_settings,
        )
        if not same_load or earlier.sampling_settings is None:
            break  # the model was loaded anew after this turn: its cache was gone
        prompt = _prompt(system, messages[:earlier_index])
        sampling = SamplingSettings.from_dict(earlier.sampling_settings).validate()
        lead_in.insert(0, (prompt, sampling))
    recorded_path = reply.runtime_settings.get("model_path")
    if model is None and not recorded_path:
        raise ReplayError(
            f"turn {number} does not record its model file (recorded name: {reply.model}); "
            "pass --model PATH"
        )
    try:
        model_path = resolve_model_path(model or recorded_path)
    except GlassboxError as exc:
        raise ReplayError(f"the turn's model cannot be loaded: {exc}") from None
    return ReplayPlan(
        conversation_id=conversation_id,
        turn=number,
        message=reply,
        history=history,
        lead_in=lead_in,
        model_path=model_path,
        runtime=RuntimeSettings.from_dict(reply.runtime_settings).validate(),
        sampling=SamplingSettings.from_dict(reply.sampling_settings).validate(),
    )


def run_replay(plan: ReplayPlan, cancel: threading.Event | None = None) -> ReplayResult:
    """Load the recorded model with the recorded settings and run the turn again (blocks)."""
    events: queue.Queue[ev.EngineEvent] = queue.Queue()
    engine = LocalEngine()
    engine.set_listener(events.put)  # tokens too: a cancel is checked at each
    try:
        engine.load(plan.model_path, plan.runtime)
        while not isinstance(event := _next(events, LOAD_TIMEOUT_S), ev.ModelLoaded):
            if isinstance(event, ev.EngineError | ev.EngineCrashed):
                raise ReplayError(f"loading {plan.model_path.name} failed: {event.message}")
        for prompt, sampling in plan.lead_in:
            _run_turn(engine, events, prompt, sampling, cancel)
        text, metrics = _run_turn(engine, events, plan.history, plan.sampling, cancel)
        return ReplayResult(plan, text, metrics)
    finally:
        engine.close()


def _run_turn(
    engine: LocalEngine,
    events: queue.Queue[ev.EngineEvent],
    prompt: list[dict[str, str]],
    sampling: SamplingSettings,
    cancel: threading.Event | None,
) -> tuple[str, TurnMetrics]:
    request_id = engine.submit(lambda: list(prompt), sampling)
    while True:
        if cancel is not None and cancel.is_set():
            engine.cancel(request_id)
        event = _next(events, TURN_TIMEOUT_S)
        if event.request_id != request_id:
            continue
        if isinstance(event, ev.EngineError | ev.EngineCrashed):
            raise ReplayError(f"the replay failed: {event.message}")
        if isinstance(event, ev.TurnFinished):
            return event.text, event.metrics


def _prompt(system_prompt: str, messages: list[Message]) -> list[dict[str, str]]:
    """The messages as ChatSession.history() gives them to the engine."""
    prompt = [{"role": "system", "content": system_prompt}] if system_prompt.strip() else []
    prompt += [
        {"role": m.role, "content": m.content}
        for m in messages
        if not (m.role == "assistant" and not m.content)
    ]
    return prompt


def _next(events: queue.Queue[ev.EngineEvent], timeout_s: float) -> ev.EngineEvent:
    try:
        return events.get(timeout=timeout_s)
    except queue.Empty:
        raise EngineTimeoutError(f"the engine sent nothing for {timeout_s:g} s") from None


def _turn_number(turn: int | str, count: int) -> int:
    if turn == "last":
        return count
    try:
        number = int(turn)
    except ValueError:
        raise ReplayError(f"turn must be a number from 1 or 'last', got {turn!r}") from None
    if not 1 <= number <= count:
        raise ReplayError(f"turn {number} does not exist: the conversation has {count} replies")
    return number
