"""ChatSession: one engine plus the store, shared by the CLI and the GUI.

It owns the rules that keep conversations safe: the user message is committed
before the request reaches the engine; streamed text is flushed to SQLite at
least every FLUSH_INTERVAL_S; a reply cut short by cancel or a crash stays
stored, marked partial; metrics and the settings used land with the reply.

Engine events are handled on the engine's reader thread, persisted, then
passed on to `listener` unchanged, together with the session's own events
below. The listener must not block (the GUI bridge re-emits them as Qt signals).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from app.engine import events as ev
from app.engine.base import Engine
from app.metrics import TurnMetrics
from app.settings import SamplingSettings
from app.storage.store import Message, Store

FLUSH_INTERVAL_S = 0.5
AUTO_TITLE_CHARS = 48
DEFAULT_TITLE = "New conversation"

Listener = Callable[[ev.EngineEvent], None]


@dataclass
class RequestSubmitted(ev.EngineEvent):
    conversation_id: int = 0
    user_message_id: int = 0
    assistant_message_id: int = 0  # the reply's row, empty and partial until the turn ends


@dataclass
class ReplyStored(ev.EngineEvent):
    conversation_id: int = 0
    message_id: int = 0
    partial: bool = False


@dataclass
class _Turn:
    conversation_id: int
    user_message_id: int
    sampling: SamplingSettings
    assistant_message_id: int
    started: bool = False
    parts: list[str] = field(default_factory=list)
    last_index: int = -1  # index of the last Token in parts
    last_flush: float = 0.0
    prefix: str = ""  # Continue: the reply's text before this turn, kept in front of it


class ChatSession:
    """Sends chat turns for stored conversations and persists what comes back."""

    # Token probabilities new turns ask the engine for (0: none, up to 10), computed in
    # its decode loop and stored with the reply (Store.reply_tokens); the token view
    # sets it. Only engines whose class says takes_top_logprobs are asked.
    top_logprobs = 0

    def __init__(self, engine: Engine, store: Store, listener: Listener | None = None) -> None:
        self.engine = engine
        self.store = store
        self._listener = listener or (lambda event: None)
        self._lock = threading.RLock()
        self._turns: dict[int, _Turn] = {}
        engine.set_listener(self._on_engine_event)

    def set_listener(self, listener: Listener) -> None:
        self._listener = listener

    # -- commands --------------------------------------------------------------

    def send(
        self,
        conversation_id: int,
        text: str,
        sampling: SamplingSettings,
        request_id: int | None = None,
    ) -> int:
        """Commit the user message, then queue the turn. Returns the request id.

        request_id: one the caller took from engine.new_request_id() beforehand,
        so it could key its own records on it (and even cancel it) before the send.
        """
        sampling.validate()
        conversation = self.store.get_conversation(conversation_id)
        if conversation is not None and conversation.title == DEFAULT_TITLE:
            title = " ".join(text.split())[:AUTO_TITLE_CHARS] or DEFAULT_TITLE
            self.store.rename_conversation(conversation_id, title)
        message = self.store.add_message(conversation_id, "user", text)
        return self._submit(conversation_id, message.id, sampling, request_id)

    def regenerate(
        self, conversation_id: int, sampling: SamplingSettings, request_id: int | None = None
    ) -> int:
        """Drop the last reply and ask again for the last user message."""
        last_user = self._drop_trailing_reply(conversation_id)
        return self._submit(conversation_id, last_user.id, sampling, request_id)

    def edit_last_user(
        self,
        conversation_id: int,
        text: str,
        sampling: SamplingSettings,
        request_id: int | None = None,
    ) -> int:
        """Replace the last user message (and drop the reply to it), then resend."""
        last_user = self._drop_trailing_reply(conversation_id)
        self.store.update_message_content(last_user.id, text, partial=False)
        return self._submit(conversation_id, last_user.id, sampling, request_id)

    def continue_reply(
        self, conversation_id: int, sampling: SamplingSettings, request_id: int | None = None
    ) -> int:
        """Generate more of the last reply (cut at the token limit), appended in place.

        The model sees the history with that reply as the start of its answer. The
        stored message keeps its text and gains the new text; its figures become the
        continuation's. A continuation that produces nothing leaves it as it was.
        """
        messages = self.store.messages(conversation_id)
        if not messages or messages[-1].role != "assistant" or not messages[-1].content:
            raise ValueError("the conversation does not end with a reply to continue")
        reply = messages[-1]
        users = [m for m in messages if m.role == "user"]
        if not users:
            raise ValueError("the conversation has no user message to answer")
        return self._submit(
            conversation_id, users[-1].id, sampling, request_id, continue_message=reply
        )

    def streamed(self, request_id: int) -> tuple[str, int] | None:
        """The reply's text so far and the index of its last token (-1: none yet), or
        None once the turn has ended. A view that shows this text skips the Token
        events it covers (index <= the one returned) still on their way to it."""
        with self._lock:
            turn = self._turns.get(request_id)
            return None if turn is None else (turn.prefix + "".join(turn.parts), turn.last_index)

    def cancel(self, request_id: int | None = None) -> None:
        self.engine.cancel(request_id)

    def history(
        self, conversation_id: int, up_to_message_id: int | None = None
    ) -> list[dict[str, str]]:
        """Messages as the engine wants them: system prompt first, then the turns
        up to and including up_to_message_id (later ones belong to queued requests)."""
        conversation = self.store.get_conversation(conversation_id)
        result: list[dict[str, str]] = []
        if conversation is not None and conversation.system_prompt.strip():
            result.append({"role": "system", "content": conversation.system_prompt})
        for message in self.store.messages(conversation_id):
            if up_to_message_id is not None and message.id > up_to_message_id:
                break
            if message.role == "assistant" and not message.content:
                continue
            result.append({"role": message.role, "content": message.content})
        return result

    # -- internals ---------------------------------------------------------------

    def _drop_trailing_reply(self, conversation_id: int) -> Message:
        messages = self.store.messages(conversation_id)
        while messages and messages[-1].role == "assistant":
            self.store.delete_message(messages.pop().id)
        users = [m for m in messages if m.role == "user"]
        if not users:
            raise ValueError("the conversation has no user message to answer")
        return users[-1]

    def _submit(
        self,
        conversation_id: int,
        user_message_id: int,
        sampling: SamplingSettings,
        request_id: int | None = None,
        continue_message: Message | None = None,
    ) -> int:
        if sampling.seed is None:
            # A seed left to chance is drawn here rather than in the worker, so the stored
            # settings hold the seed the reply used and a replay (app.replay) can repeat it.
            sampling = sampling.with_changes(seed=random.getrandbits(32))

        def messages() -> list[dict[str, str]]:
            if continue_message is not None:  # ends with the reply to go on from
                return self.history(conversation_id, continue_message.id)
            return self.history(conversation_id, user_message_id)

        # An engine that decodes several requests at once (BatchedEngine) keeps two
        # turns of one conversation apart by this, so the later one sees the reply.
        messages.conversation_key = conversation_id  # type: ignore[attr-defined]

        # The reply's row is created now, right after its user message, so the
        # stored order is user, reply, user, reply even when a second message is
        # sent before the first reply starts; history() relies on that order.
        if continue_message is not None:
            placeholder, prefix = continue_message, continue_message.content
        else:
            placeholder = self.store.add_message(conversation_id, "assistant", "", partial=True)
            prefix = ""
        # The id comes first, so the turn is registered and announced before any
        # of its events can arrive (they may come from inside submit()).
        if request_id is None:
            request_id = self.engine.new_request_id()
        with self._lock:
            self._turns[request_id] = _Turn(
                conversation_id, user_message_id, sampling, placeholder.id, prefix=prefix
            )
        self._listener(
            RequestSubmitted(
                request_id=request_id,
                conversation_id=conversation_id,
                user_message_id=user_message_id,
                assistant_message_id=placeholder.id,
            )
        )
        try:
            if self.top_logprobs and getattr(type(self.engine), "takes_top_logprobs", False):
                self.engine.submit(  # type: ignore[call-arg]
                    messages, sampling, request_id=request_id, top_logprobs=self.top_logprobs
                )
            else:
                self.engine.submit(messages, sampling, request_id=request_id)
        except BaseException:
            with self._lock:
                self._turns.pop(request_id, None)
            if continue_message is None:
                self.store.delete_message(placeholder.id)
            # It was announced: close it as every request is closed, then tell the caller.
            self._listener(
                ev.TurnFinished(request_id=request_id, metrics=TurnMetrics(stop_reason="error"))
            )
            raise
        return request_id

    def _on_engine_event(self, event: ev.EngineEvent) -> None:
        with self._lock:
            turn = self._turns.get(event.request_id) if event.request_id is not None else None
            stored: ReplyStored | None = None
            if turn is not None:
                if isinstance(event, ev.TurnStarted):
                    turn.started = True
                    turn.last_flush = time.monotonic()
                elif isinstance(event, ev.Token):
                    turn.parts.append(event.text)
                    turn.last_index = event.index
                    self._maybe_flush(turn)
                elif isinstance(event, ev.TurnFinished):
                    del self._turns[event.request_id]  # type: ignore[arg-type]
                    stored = self._store_reply(event, turn)
        self._listener(event)
        if stored is not None:
            self._listener(stored)

    def _store_reply_tokens(self, event: ev.TurnFinished, turn: _Turn) -> None:
        """The reply's token probabilities, when the turn brought them; a continued
        reply's go after the earlier part's, and without both, the stored ones
        (no longer the whole reply) go."""
        tokens = event.tokens
        if turn.prefix:
            before = self.store.reply_tokens(turn.assistant_message_id)
            if before is None and tokens is None:
                return  # nothing stored, nothing to store: no write at all
            tokens = before + tokens if before is not None and tokens is not None else None
        if tokens is not None or turn.prefix:
            self.store.set_reply_tokens(turn.assistant_message_id, tokens)

    def _maybe_flush(self, turn: _Turn) -> None:
        now = time.monotonic()
        if now - turn.last_flush >= FLUSH_INTERVAL_S:
            self.store.update_message_content(
                turn.assistant_message_id, turn.prefix + "".join(turn.parts)
            )
            turn.last_flush = now

    def _store_reply(self, event: ev.TurnFinished, turn: _Turn) -> ReplyStored | None:
        metrics = event.metrics
        # A worker-side error ends the turn without the text; the tokens seen hold it.
        text = event.text if event.text or metrics.stop_reason != "error" else "".join(turn.parts)
        partial = metrics.stop_reason in ("cancelled", "error")
        if turn.prefix:
            if not text:
                # Nothing new: the reply stays as it was (its text, figures and mark).
                self.store.update_message_content(
                    turn.assistant_message_id, turn.prefix, partial=False
                )
                return None
            text = turn.prefix + text
        elif not text and not turn.started:
            # Refused, cancelled while queued, or the engine died first: no reply to keep.
            self.store.delete_message(turn.assistant_message_id)
            return None
        info = self.engine.model_info
        self.store.finish_message(
            turn.assistant_message_id,
            text,
            partial=partial,
            stop_reason=metrics.stop_reason,
            metrics=metrics,
            model=info.model_name if info else None,
            # The file, not just its name: a replay loads the same model again.
            runtime_settings={**info.settings, "model_path": info.model_path} if info else None,
            sampling_settings=turn.sampling.to_dict(),
        )
        self._store_reply_tokens(event, turn)
        return ReplyStored(
            request_id=event.request_id,
            conversation_id=turn.conversation_id,
            message_id=turn.assistant_message_id,
            partial=partial,
        )
