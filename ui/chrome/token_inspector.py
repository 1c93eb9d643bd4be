"""Feeds the token view: the last reply's token probabilities, and branches from it.

While the view's switch is on, new turns ask the engine for token probabilities
(ChatSession.top_logprobs): the decode loop reads them as each token is drawn
(app.engine.token_logprobs) and the session stores them with the reply, so when
a turn ends the view draws them from the store, with nothing computed again.
With the switch off nothing is asked, and the decode loop installs nothing.

A reply that has none stored (sent while the switch was off, or on an engine
that cannot compute them) is scored after the fact instead: app.logprobs
evaluates it in a process of its own holding a copy of the model. Branching
uses that process too (it regenerates from the chosen token); it starts only
when one of them is needed, and switching the view off ends it. The view says
which source its figures came from.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QWidget

from app.logprobs import MAX_TOP, TokenScorer
from app.turn_trace import TurnTrace
from ui.infra.tasks import BackgroundTasks, describe_error
from ui.internals.panel import InternalsPanel
from ui.internals.token_view import SOURCE_DECODE_LOOP, SOURCE_SCORED

# (history before the reply, the reply's token ids, messages dropped to fit): what a
# branch needs to regenerate from one of the reply's tokens.
Scored = tuple[list[dict[str, str]], list[int], int]


class TokenInspector(QObject):
    def __init__(
        self,
        session: Any,
        controller: Any,
        engine: Any,
        panel: InternalsPanel,
        sampling_of: Callable[[], Any],
        window: QWidget,
    ) -> None:
        super().__init__(window)
        self.session, self.controller, self.engine = session, controller, engine
        self.panel, self.sampling_of = panel, sampling_of
        self.tasks = BackgroundTasks(self, thread_name="glassbox-tokens")
        self.scorer: TokenScorer | None = None
        self._scorer_model = ""
        self._scored: Scored | None = None
        self.source = ""  # where the shown figures came from: SOURCE_DECODE_LOOP or SOURCE_SCORED
        view = panel.inside.token_view
        self._ask_engine(view.switch.isChecked())
        view.enabled_changed.connect(self._on_token_view_enabled_changed)
        view.branch_requested.connect(self._on_token_view_branch_requested)
        panel.inside.turn_shown.connect(self._on_inside_turn_shown)
        window.destroyed.connect(self.stop)

    @property
    def view(self) -> Any:
        return self.panel.inside.token_view

    def stop(self) -> None:
        """End the scoring process (the view went off, or the window closes)."""
        scorer, self.scorer = self.scorer, None
        if scorer is not None:
            scorer.close()

    def _ask_engine(self, on: bool) -> None:
        """New turns compute token probabilities in the decode loop, or nothing."""
        self.session.top_logprobs = MAX_TOP if on else 0

    def _on_token_view_enabled_changed(self, on: bool) -> None:
        self._ask_engine(on)
        if not on:
            scorer, self.scorer = self.scorer, None
            if scorer is not None:
                self.tasks.run(scorer.close)  # its process may be mid-job: not waited on here
            self.view.set_status("Token probabilities are off.")
            return
        trace = self.panel.inside.last_trace
        if trace is not None:
            self._on_inside_turn_shown(trace)
        else:
            self.view.set_status("Send a message to see its tokens.")

    def _scorer_for(self, info: Any) -> TokenScorer:
        if self.scorer is None or self._scorer_model != info.model_path:
            self.stop()
            self.scorer = TokenScorer(info.model_path, n_ctx=info.n_ctx or 2048)
            self._scorer_model = info.model_path
        return self.scorer

    def _stored_reply(self, conversation: int) -> tuple[list[dict[str, Any]] | None, Any]:
        """The last reply's stored tokens (None when it has none) and its sampling settings."""
        store = getattr(self.session, "store", None)
        if store is None:
            return None, None
        replies = [m for m in store.messages(conversation) if m.role == "assistant"]
        if not replies:
            return None, None
        return store.reply_tokens(replies[-1].id), replies[-1].sampling_settings

    def _on_inside_turn_shown(self, trace: TurnTrace) -> None:
        view = self.view
        info = getattr(self.engine, "model_info", None)
        conversation = self.controller.conversation_id
        if not view.switch.isChecked() or conversation is None:
            return
        if info is None or info.backend == "remote":
            view.set_status("Token probabilities need a local model.")
            return
        dropped = trace.dropped_messages
        settings = self.sampling_of()
        fallback = settings.to_dict() if settings is not None else None
        view.set_status("Reading the reply's tokens…")

        def read() -> tuple[list[dict[str, str]], str, list[dict[str, Any]] | None, Any]:
            history = self.session.history(conversation)
            reply = (
                history.pop()["content"] if history and history[-1]["role"] == "assistant" else ""
            )
            tokens, sampling = self._stored_reply(conversation)
            return history, reply, tokens, sampling or fallback

        def show(
            messages: list[dict[str, str]], tokens: list[dict[str, Any]], source: str, sampling: Any
        ) -> None:
            self._scored = (messages, [t["id"] for t in tokens], dropped)
            self.source = source
            view.set_tokens(tokens, sampling, source)

        def on_error(exc: BaseException) -> None:
            view.set_status(f"Could not score: {describe_error(exc)}")

        def on_read(result: tuple[list[dict[str, str]], str, Any, Any]) -> None:
            messages, reply, tokens, sampling = result
            if tokens is not None:  # computed in the decode loop as the reply was drawn
                show(messages, tokens, SOURCE_DECODE_LOOP, sampling)
                return
            view.set_status("Scoring the reply's tokens…")
            scorer = self._scorer_for(info)  # made here, on the GUI thread, as stop() runs
            self.tasks.run(
                lambda: scorer.score_text(messages, reply, MAX_TOP, dropped),
                lambda scored: show(messages, scored, SOURCE_SCORED, sampling),
                on_error,
            )

        self.tasks.run(read, on_read, on_error)

    def _on_token_view_branch_requested(self, at: int, token_id: int) -> None:
        scored, info = self._scored, getattr(self.engine, "model_info", None)
        if scored is None or info is None:
            return
        scorer = self._scorer_for(info)
        messages, ids, dropped = scored
        self.tasks.run(
            lambda: scorer.branch(messages, ids, at, token_id, dropped_messages=dropped),
            lambda branch: self.view.set_branch(at, branch["text"]),
            lambda e: self.view.set_branch(at, f"(could not branch: {describe_error(e)})"),
        )
