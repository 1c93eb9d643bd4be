"""A Copy button at the top right of each fenced code block of a rendered message.

Qt's Markdown puts a fence's lines into consecutive text blocks marked with
BlockCodeFence; there is no widget per code block to hang a button on. The buttons
are children of the text view's viewport, placed over the first line of each run of
code blocks from the document layout's own geometry, and placed again whenever the
layout changes (a render, a new width).
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QGuiApplication, QTextBlock, QTextDocument, QTextFormat
from PySide6.QtWidgets import QTextEdit, QToolButton


@dataclass(frozen=True)
class CodeBlock:
    first: QTextBlock
    text: str


def code_blocks(document: QTextDocument) -> list[CodeBlock]:
    """Runs of consecutive fenced-code text blocks, each with its text (lines joined)."""
    found: list[CodeBlock] = []
    first: QTextBlock | None = None
    lines: list[str] = []
    block = document.begin()
    while block.isValid():
        fenced = block.blockFormat().hasProperty(QTextFormat.Property.BlockCodeFence)
        if fenced:
            if first is None:
                first, lines = block, []
            lines.append(block.text())
        elif first is not None:
            found.append(CodeBlock(first, "\n".join(lines)))
            first = None
        block = block.next()
    if first is not None:
        found.append(CodeBlock(first, "\n".join(lines)))
    return found


class CodeCopyButtons(QObject):
    """Keeps one Copy button per code block of `view`'s document.

    Signals:
        copied(str): a block's code was put on the clipboard.
    """

    copied = Signal(str)

    def __init__(self, view: QTextEdit) -> None:
        super().__init__(view)
        self._view = view
        self._buttons: list[QToolButton] = []
        self._texts: list[str] = []

    def buttons(self) -> list[QToolButton]:
        return [b for b in self._buttons if b.isVisible()]

    def place(self) -> None:
        """Match the buttons to the document's code blocks and put them in place."""
        blocks = code_blocks(self._view.document())
        self._texts = [b.text for b in blocks]
        while len(self._buttons) < len(blocks):
            self._buttons.append(self._new_button(len(self._buttons)))
        layout = self._view.document().documentLayout()
        viewport = self._view.viewport()
        for index, button in enumerate(self._buttons):
            if index >= len(blocks):
                button.hide()
                continue
            top = layout.blockBoundingRect(blocks[index].first).top()
            button.adjustSize()
            button.move(max(0, viewport.width() - button.width() - 4), int(top) + 2)
            button.show()
            button.raise_()

    def _new_button(self, index: int) -> QToolButton:
        button = QToolButton(self._view.viewport())
        button.setText("Copy code")
        button.setToolTip("Copy this code block to the clipboard")
        button.setAccessibleName("Copy code block")
        button.setAutoRaise(True)
        button.clicked.connect(lambda: self._copy(index))
        return button

    def _copy(self, index: int) -> None:
        if index < len(self._texts):
            QGuiApplication.clipboard().setText(self._texts[index])
            self.copied.emit(self._texts[index])
