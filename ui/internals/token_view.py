"""The token view: the last reply as its tokens, each shaded by the probability it had.

Hover a token for its id, probability, log-probability, the most likely
alternatives and the sampler settings that chose it; click it to list the
alternatives, and click one of those to branch: the reply is regenerated from
there with that token forced (the result shows below). Probabilities are only
computed while "Show token probabilities" is on: in the decode loop as each token
is drawn (app.engine.token_logprobs), or, for a reply sent while it was off, by
scoring it afterwards (app.logprobs); a line under the switch says which.

The probabilities are the model's, after the repeat penalty and before top-k, top-p,
min-p and temperature (app.engine.token_logprobs), so a token those settings chose
over the most probable one says so.
"""

from __future__ import annotations

import html
import math
from typing import Any

from PySide6.QtCore import QUrl, Signal
from PySide6.QtGui import QCursor
from PySide6.QtWidgets import (
    QCheckBox,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QTextBrowser,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

TOKENS_TIP = (
    "The reply as the model's tokens. Darker means the model was more sure of the token it "
    "gave; pale tokens were close calls, where higher temperature or another seed could have "
    "taken a different path. Hover for the alternatives; click a token to branch from it."
)
SWITCH_TIP = (
    "Compute each new reply's token probabilities in the decode loop, as each token is drawn "
    "(a pass over the vocabulary per token: about 5% of the bundled model's decode speed, "
    "less on larger models). Replies sent "
    "while this was off are scored afterwards in a second process. Off: nothing is computed."
)
SOURCE_TIP = (
    "Where these probabilities come from: read in the decode loop as the reply was generated, "
    "or scored afterwards by a second copy of the model (same model, same tokens; near-ties "
    "can order differently in the last bits)."
)
# Where the figures shown came from (set_tokens' source).
SOURCE_DECODE_LOOP = "decode loop"
SOURCE_SCORED = "scored after the turn"
SOURCE_TEXT = {
    SOURCE_DECODE_LOOP: "Computed in the decode loop as each token was drawn.",
    SOURCE_SCORED: "Scored after the turn (this reply was sent without token probabilities).",
}
ALTERNATIVES_TIP = (
    "What the model thought could come here, most likely first. Click one to regenerate the "
    "reply from this point with that token forced."
)
BRANCH_TIP = "The reply regenerated with the chosen token forced (greedy decoding after it)."


def _shade(p: float) -> str:
    """Orange with opacity following the probability: sure tokens dark, close calls pale."""
    alpha = 0.15 + 0.75 * max(0.0, min(1.0, p))
    return f"rgba(230, 159, 0, {alpha:.2f})"


def _piece(text: str) -> str:
    return html.escape(text.replace("\n", "\u21b5\n")) or "&nbsp;"


def token_tooltip(token: dict[str, Any], sampling: dict[str, Any] | None) -> str:
    p = math.exp(token["logprob"])
    rows = "".join(
        f"<tr><td>{html.escape(repr(a['text']), quote=False)}</td><td align='right'>"
        f"{math.exp(a['logprob']):.1%}</td><td align='right'>{a['logprob']:.2f}</td></tr>"
        for a in token["top"]
    )
    settings = ""
    top = token["top"]
    if top and top[0]["id"] != token["id"]:
        settings = (
            f"<br>the sampler's settings (temperature, top-k/p, min-p) chose it over the "
            "most probable, "
            f"{html.escape(repr(top[0]['text']), quote=False)}"
        )
    if sampling:
        keys = ("temperature", "top_k", "top_p", "min_p", "repeat_penalty", "seed")
        settings += "<br>chosen with " + ", ".join(
            f"{k} {sampling[k]}" for k in keys if k in sampling
        )
    return (
        f"<b>{html.escape(repr(token['text']), quote=False)}</b> id {token['id']}: p {p:.1%}, "
        f"log p {token['logprob']:.3f}<table><tr><td>alternative</td><td>p</td><td>log p</td>"
        f"</tr>{rows}</table>{settings}"
    )


class TokenView(QWidget):
    """Signals:
    enabled_changed(bool): the user turned token probabilities on or off.
    branch_requested(int, int): branch at token index (first arg) with token id (second).
    """

    enabled_changed = Signal(bool)
    branch_requested = Signal(int, int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Token view")
        self.switch = QCheckBox("Show token probabilities")
        self.switch.setToolTip(SWITCH_TIP)
        self.switch.setAccessibleName("Show token probabilities")
        self.switch.toggled.connect(self.enabled_changed)
        self.source = QLabel()
        self.source.setAccessibleName("Token probabilities source")
        self.source.setToolTip(SOURCE_TIP)
        self.source.setWordWrap(True)
        self.text = QTextBrowser()
        self.text.setAccessibleName("Reply tokens")
        self.text.setToolTip(TOKENS_TIP)
        self.text.setOpenLinks(False)
        self.text.highlighted.connect(self._on_text_highlighted)
        self.text.anchorClicked.connect(self._on_text_anchor_clicked)
        self.alternatives = QListWidget()
        self.alternatives.setAccessibleName("Alternatives")
        self.alternatives.setToolTip(ALTERNATIVES_TIP)
        self.alternatives.setMaximumHeight(110)
        self.alternatives.itemClicked.connect(self._on_alternatives_item_clicked)
        self.branch = QLabel()
        self.branch.setAccessibleName("Branched reply")
        self.branch.setToolTip(BRANCH_TIP)
        self.branch.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.switch)
        layout.addWidget(self.source)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.alternatives)
        layout.addWidget(self.branch)
        self.tokens: list[dict[str, Any]] = []
        self.sampling: dict[str, Any] | None = None
        self.selected: int | None = None
        self.last_tooltip = ""
        self.set_status("Turn on token probabilities, then send a message.")

    def set_status(self, text: str) -> None:
        self.source.setText("")
        self.text.setHtml(f"<i>{html.escape(text)}</i>")

    def set_tokens(
        self, tokens: list[dict[str, Any]], sampling: dict[str, Any] | None, source: str = ""
    ) -> None:
        """Show a reply's tokens ({id, text, logprob, top} each); source: SOURCE_DECODE_LOOP
        or SOURCE_SCORED, said under the switch."""
        self.tokens, self.sampling, self.selected = tokens, sampling, None
        self.source.setText(SOURCE_TEXT.get(source, source))
        self.alternatives.clear()
        self.branch.setText("")
        spans = [
            f"<a href='t:{i}' style='text-decoration:none; color:inherit'>"
            f"<span style='background:{_shade(math.exp(t['logprob']))}'>{_piece(t['text'])}"
            "</span></a>"
            for i, t in enumerate(tokens)
        ]
        # A hair space between tokens, so each token's edges show.
        self.text.setHtml("<p style='line-height:160%'>" + "&#8202;".join(spans) + "</p>")

    def set_branch(self, at: int, text: str) -> None:
        self.branch.setText(
            f"<b>Branch from token {at + 1}:</b> {html.escape(text)}" if text else ""
        )

    def select(self, index: int) -> None:
        """List token `index`'s alternatives (what a click on it does)."""
        self.selected = index
        self.alternatives.clear()
        for alt in self.tokens[index]["top"]:
            item = QListWidgetItem(f"{alt['text']!r}  {math.exp(alt['logprob']):.1%}")
            item.setData(256, alt["id"])  # Qt.UserRole
            self.alternatives.addItem(item)

    def _on_text_highlighted(self, url: QUrl) -> None:
        index = self._index(url)
        if index is None:
            QToolTip.hideText()
            return
        self.last_tooltip = token_tooltip(self.tokens[index], self.sampling)
        QToolTip.showText(QCursor.pos(), self.last_tooltip, self.text)

    def _on_text_anchor_clicked(self, url: QUrl) -> None:
        index = self._index(url)
        if index is not None:
            self.select(index)

    def _on_alternatives_item_clicked(self, item: QListWidgetItem) -> None:
        if self.selected is not None:
            self.branch.setText("<i>Branching…</i>")
            self.branch_requested.emit(self.selected, int(item.data(256)))

    def _index(self, url: QUrl) -> int | None:
        text = url.toString()
        if not text.startswith("t:"):
            return None
        index = int(text[2:])
        return index if 0 <= index < len(self.tokens) else None
