"""Feeds the prompt view: the open conversation's last prompt, tokenized by the model.

On the prompt view's request, a background job reads the history the last turn
was sent with (ChatSession.history, without the reply that followed) and has
app.prompt_tokens tokenize it in a child process; the GUI thread never waits.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QWidget

from app.engine.prompt_tokenizer import prompt_tokens
from app.prompt_tokens import PromptTokens
from ui.infra.tasks import BackgroundTasks, describe_error
from ui.internals.panel import InternalsPanel


class PromptInspector(QObject):
    def __init__(
        self, session: Any, controller: Any, engine: Any, panel: InternalsPanel, window: QWidget
    ) -> None:
        super().__init__(window)
        self.session, self.controller, self.engine, self.panel = session, controller, engine, panel
        self.tasks = BackgroundTasks(self, thread_name="glassbox-prompt")
        panel.inside.prompt_view.show_requested.connect(self._on_prompt_view_show_requested)

    def _on_prompt_view_show_requested(self) -> None:
        view = self.panel.inside.prompt_view
        info = getattr(self.engine, "model_info", None)
        conversation = self.controller.conversation_id
        if info is None or info.backend == "remote" or conversation is None:
            view.set_failed("The prompt view needs a local model and a conversation.")
            return
        trace = self.panel.inside.last_trace
        dropped = trace.dropped_messages if trace is not None else 0
        cached = 0
        if trace is not None and trace.metrics is not None:
            cached = trace.metrics.prompt_tokens_cached or 0
        path = info.model_path

        def job() -> PromptTokens:
            messages = self.session.history(conversation)
            while messages and messages[-1]["role"] == "assistant":
                messages.pop()  # the reply is not part of the prompt it answered
            return prompt_tokens(path, messages, dropped)

        self.tasks.run(
            job,
            lambda prompt: view.set_tokens(prompt, cached),
            lambda error: view.set_failed(f"Could not tokenize: {describe_error(error)}"),
        )
