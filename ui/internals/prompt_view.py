"""The prompt view: the exact text the model saw after the chat template, as tokens.

Each token is a box: special (control) tokens are marked, tokens that came from
the KV cache are shaded green and those evaluated this turn blue; the counts per
role (system, user, assistant history, template) are above (app.prompt_tokens).
"""

from __future__ import annotations

import html

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QLabel, QPushButton, QTextBrowser, QVBoxLayout, QWidget

from app.prompt_tokens import PromptTokens
from ui.infra import theme

TOKENS_TIP = (
    "The prompt as the model saw it, one box per token. Bold boxes are special tokens the chat "
    "template adds (start and end of each message). Green: reused from the KV cache, costing "
    "nothing; blue: evaluated this turn (prefill). Long histories and pasted text add tokens; "
    "editing an early message makes everything after it be evaluated again."
)
COUNTS_TIP = (
    "Tokens per role. They add up to the turn's prompt tokens; the template row is the "
    "beginning-of-text token and the header that asks the model to answer."
)
BUTTON_TIP = "Tokenize the last turn's prompt with the model's own tokenizer (a second or so)"


CACHED_SHADES = (theme.CACHED_COLOR, "#7fd1b9")
EVALUATED_SHADES = (theme.EVALUATED_COLOR, "#a9daf5")


def _escape_piece(text: str) -> str:
    shown = text.replace("\n", "\u21b5").replace(" ", "\u00b7")
    return html.escape(shown) or "&nbsp;"


class PromptView(QWidget):
    """Signals:
    show_requested(): the user asked to see the last turn's prompt.
    """

    show_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Prompt view")
        self.button = QPushButton("Show the last turn's prompt as tokens")
        self.button.setToolTip(BUTTON_TIP)
        self.button.setAccessibleName("Show the prompt as tokens")
        self.button.clicked.connect(self._on_button_clicked)
        self.counts = QLabel()
        self.counts.setAccessibleName("Prompt tokens per role")
        self.counts.setToolTip(COUNTS_TIP)
        self.counts.setWordWrap(True)
        self.tokens = QTextBrowser()
        self.tokens.setAccessibleName("Prompt tokens")
        self.tokens.setToolTip(TOKENS_TIP)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.button)
        layout.addWidget(self.counts)
        layout.addWidget(self.tokens, 1)
        self.prompt: PromptTokens | None = None
        self.counts.setText("<i>Send a message, then ask for its prompt here.</i>")

    def _on_button_clicked(self) -> None:
        self.button.setEnabled(False)
        self.counts.setText("<i>Tokenizing…</i>")
        self.show_requested.emit()

    def set_failed(self, message: str) -> None:
        self.button.setEnabled(True)
        self.counts.setText(html.escape(message))

    def set_tokens(self, prompt: PromptTokens, cached: int) -> None:
        self.button.setEnabled(True)
        self.prompt = prompt
        counts = prompt.counts()
        total = sum(counts.values())
        cached = min(cached, total)
        self.counts.setText(
            f"<b>{total} prompt tokens</b> ({prompt.chat_format} format): "
            + ", ".join(f"{role} {n}" for role, n in counts.items())
            + f"<br><span style='background:{theme.CACHED_COLOR}'>&nbsp;{cached} from the KV "
            f"cache&nbsp;</span> <span style='background:{theme.EVALUATED_COLOR}'>&nbsp;"
            f"{total - cached} evaluated this turn&nbsp;</span>"
        )
        boxes = []
        for index, token in enumerate(prompt.tokens):
            # Neighbouring tokens alternate shades, so each token's edges show.
            shades = CACHED_SHADES if index < cached else EVALUATED_SHADES
            colour = shades[index % 2]
            piece = _escape_piece(token.text)
            if token.special:
                piece = f"<b><u>{piece}</u></b>"
            boxes.append(f"<span style='background:{colour}; color:#000'>{piece}</span>")
        self.tokens.setHtml("<p style='line-height:150%'>" + "&#8203; ".join(boxes) + "</p>")
