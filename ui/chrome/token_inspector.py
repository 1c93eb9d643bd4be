"""Feeds the token view: the last reply's token probabilities, and branches from it.

Only while the view's switch is on: then, after each finished turn, a background
job reads the prompt and reply from the session and has app.logprobs score the
reply in its own process (the decode loop is never touched). The scoring
process holds a copy of the model; switching the view off ends it.
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
        self._scored: tuple[list[dict[str, str]], list[int], int] | None = None
        view = panel.inside.token_view
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

    def _on_token_view_enabled_changed(self, on: bool) -> None:
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

    def _on_inside_turn_shown(self, trace: TurnTrace) -> None:
        view = self.view
        info = getattr(self.engine, "model_info", None)
        conversation = self.controller.conversation_id
        if not view.switch.isChecked() or conversation is None:
            return
        if info is None or info.backend == "remote":
            view.set_status("Token probabilities need a local model.")
            return
        scorer = self._scorer_for(info)
        dropped = trace.dropped_messages
        sampling = self.sampling_of()
        view.set_status("Scoring the reply's tokens…")

        def job() -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
            history = self.session.history(conversation)
            reply = (
                history.pop()["content"] if history and history[-1]["role"] == "assistant" else ""
            )
            return history, scorer.score_text(history, reply, MAX_TOP, dropped)

        def done(result: tuple[list[dict[str, str]], list[dict[str, Any]]]) -> None:
            messages, tokens = result
            self._scored = (messages, [t["id"] for t in tokens], dropped)
            view.set_tokens(tokens, sampling.to_dict() if sampling is not None else None)

        self.tasks.run(
            job, done, lambda e: view.set_status(f"Could not score: {describe_error(e)}")
        )

    def _on_token_view_branch_requested(self, at: int, token_id: int) -> None:
        scorer, scored = self.scorer, self._scored
        if scorer is None or scored is None:
            return
        messages, ids, dropped = scored
        self.tasks.run(
            lambda: scorer.branch(messages, ids, at, token_id, dropped_messages=dropped),
            lambda branch: self.view.set_branch(at, branch["text"]),
            lambda e: self.view.set_branch(at, f"(could not branch: {describe_error(e)})"),
        )
