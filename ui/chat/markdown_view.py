"""A message body: Markdown rendered by Qt, fenced code highlighted with Pygments.

QTextDocument.setMarkdown marks fenced code blocks with BlockCodeFence and the
fence's language; a QSyntaxHighlighter colours exactly those blocks, so the
Markdown parsing stays Qt's and only the colours are ours.

A streamed reply grows by appends: the new text goes at the end of a plain tail
block (inside a code block's format while a fence is open), and the Markdown is
rendered again only when a block is finished (ui/chat/markdown_blocks.py) and
once more, whole, at the end of the turn. A reply of B blocks costs about B
renders, not one per frame.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from PySide6.QtCore import QEvent, QSize, Qt
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontDatabase,
    QResizeEvent,
    QSyntaxHighlighter,
    QTextBlockFormat,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
    QTextFormat,
)
from PySide6.QtWidgets import QFrame, QSizePolicy, QTextBrowser, QWidget

from ui.chat.code_copy import CodeCopyButtons
from ui.chat.markdown_blocks import BlockSplitter
from ui.infra import theme

try:  # Pygments is optional: without it code blocks are monospace, uncoloured.
    from pygments.lexers import TextLexer, get_lexer_by_name, guess_lexer
    from pygments.styles import get_style_by_name
    from pygments.util import ClassNotFound
except ImportError:  # pragma: no cover - exercised only without pygments
    get_lexer_by_name = None


@lru_cache(maxsize=32)
def _lexer(language: str) -> Any:  # pygments has no type hints
    if get_lexer_by_name is None:
        return None
    try:
        return get_lexer_by_name(language or "text", stripnl=False, ensurenl=False)
    except ClassNotFound:
        return TextLexer(stripnl=False, ensurenl=False)


@lru_cache(maxsize=4)
def _style_formats(style_name: str) -> dict:
    style = get_style_by_name(style_name)
    formats: dict = {}
    for token_type, spec in style:
        fmt = QTextCharFormat()
        if spec["color"]:
            fmt.setForeground(QColor("#" + spec["color"]))
        if spec["bold"]:
            fmt.setFontWeight(QFont.Weight.Bold)
        if spec["italic"]:
            fmt.setFontItalic(True)
        formats[token_type] = fmt
    return formats


def code_language(block_format: QTextBlockFormat) -> str | None:
    """The fence language of a code block, "" for an unlabeled fence, None for prose."""
    if not block_format.hasProperty(QTextFormat.Property.BlockCodeFence):
        return None
    return str(block_format.property(QTextFormat.Property.BlockCodeLanguage) or "")


class CodeHighlighter(QSyntaxHighlighter):
    """Colours fenced code blocks line by line (good enough for chat replies)."""

    def __init__(self, document: QTextDocument, dark: bool) -> None:
        super().__init__(document)
        self.style_name = "monokai" if dark else "default"

    def highlightBlock(self, text: str) -> None:  # noqa: N802 - Qt override
        language = code_language(self.currentBlock().blockFormat())
        if language is None or get_lexer_by_name is None:
            return
        for start, length, fmt in _coloured_spans(language, text, self.style_name):
            self.setFormat(start, length, fmt)


# A streamed reply renders its Markdown again at every finished block, and each render
# colours every code line again: lexing is the costly part (Pygments is pure Python),
# so each line's spans are kept.
@lru_cache(maxsize=4096)
def _coloured_spans(language: str, text: str, style: str) -> tuple[tuple[int, int, Any], ...]:
    lexer = _lexer(language)
    if lexer is None:
        return ()
    if not language and text.strip():
        try:
            lexer = guess_lexer(text)
        except ClassNotFound:
            return ()
    formats = _style_formats(style)
    spans = []
    pos = 0
    for token_type, value in lexer.get_tokens(text):
        fmt = None
        ttype = token_type
        while ttype is not None and fmt is None:
            fmt = formats.get(ttype)
            ttype = ttype.parent
        if fmt is not None and value:
            spans.append((pos, len(value), fmt))
        pos += len(value)
    return tuple(spans)


GROW_STEP_PX = 64  # a streamed reply's height grows by this much at a time (about 3 lines)


class MessageBody(QTextBrowser):
    """Read-only Markdown view whose height follows its content (no inner scrollbar)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setOpenExternalLinks(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.viewport().setAutoFillBackground(False)
        self.setStyleSheet("QTextBrowser { background: transparent; }")
        self._stream = BlockSplitter()
        self._complete = True  # the document is the Markdown of all the text, no plain tail
        self._tail_start = 0  # offset in the text where the plain tail begins
        self.render_count = 0  # Markdown renders (setMarkdown calls), for tests
        self._tail_cursor: QTextCursor | None = None  # at the end of a streamed reply
        self._highlighter = CodeHighlighter(self.document(), theme.is_dark())
        self.code_copy = CodeCopyButtons(self)
        self.document().documentLayout().documentSizeChanged.connect(self._on_layout_size_changed)

    def markdown(self) -> str:
        return self._stream.text

    def set_markdown(self, text: str) -> None:
        """Show `text`, rendered whole (a stored message, or a streamed reply's end)."""
        if text == self._stream.text and self._complete:
            return
        self._stream = BlockSplitter()
        self._stream.feed(text)
        self._render(text)
        self._complete = True
        self._fit_height()
        self.code_copy.place()

    def append_markdown(self, piece: str) -> None:
        """Add streamed text: appended to the tail, rendered when it finishes a block."""
        if not piece:
            return
        stream = self._stream
        if stream.feed(piece) or self._complete:
            fence = stream.fence_start
            self._render(stream.text[: stream.stable if fence is None else fence])
            self._tail_start = stream.stable
            self._open_tail(stream.fence_language)
            piece = stream.text[self._tail_start :]
            self._complete = False
        if piece:
            if self._tail_cursor is None:
                self._tail_cursor = QTextCursor(self.document())
                self._tail_cursor.movePosition(QTextCursor.MoveOperation.End)
            # The cursor stays after what it inserted, at the end: no new cursor and no
            # move to the end per frame (0.1-0.2 ms each, with a reply streaming).
            self._tail_cursor.insertText(piece)
        self._fit_height()

    def _render(self, text: str) -> None:
        self.render_count += 1
        self._tail_cursor = None  # the document is built again
        self.document().setMarkdown(text, QTextDocument.MarkdownFeature.MarkdownDialectGitHub)
        self._style_code_blocks()
        self.code_copy.place()

    def _open_tail(self, fence_language: str | None) -> None:
        """A block at the end for the plain tail: prose, or code while a fence is open."""
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        block = QTextBlockFormat()
        char = QTextCharFormat()
        if fence_language is None:
            block.setTopMargin(6)
            block.setBottomMargin(6)
        else:
            block.setProperty(QTextFormat.Property.BlockCodeFence, "`")
            block.setProperty(QTextFormat.Property.BlockCodeLanguage, fence_language)
            self._code_formats(block, char)
        if self.document().isEmpty():
            cursor.setBlockFormat(block)
            cursor.setBlockCharFormat(char)
            cursor.setCharFormat(char)
        else:
            cursor.insertBlock(block, char)

    def _code_formats(self, block: QTextBlockFormat, char: QTextCharFormat) -> None:
        block.setBackground(QColor("#2b2b2b" if theme.is_dark() else "#f3f3f3"))
        block.setNonBreakableLines(False)  # wrap long code lines instead of clipping
        char.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))

    def _style_code_blocks(self) -> None:
        block = self.document().begin()
        cursor = QTextCursor(self.document())
        while block.isValid():
            if code_language(block.blockFormat()) is not None:
                fmt = block.blockFormat()
                char = QTextCharFormat()
                self._code_formats(fmt, char)
                cursor.setPosition(block.position())
                cursor.setBlockFormat(fmt)
                cursor.setPosition(
                    block.position() + max(0, block.length() - 1), QTextCursor.MoveMode.KeepAnchor
                )
                cursor.mergeCharFormat(char)
            block = block.next()

    def _fit_height(self) -> None:
        width = max(50, self.viewport().width())
        if self.document().textWidth() != width:  # setTextWidth lays out the whole document
            self.document().setTextWidth(width)
        height = int(self.document().size().height()) + self.contentsMargins().top() * 2 + 2
        if not self._complete and GROW_STEP_PX > 1:
            # Streaming: grow in steps, so most frames repaint only the new text instead of
            # laying out and repainting the whole column (and scrolling) for every line.
            height = -(-height // GROW_STEP_PX) * GROW_STEP_PX
        if height != self.height():
            self.setFixedHeight(height)

    def _on_layout_size_changed(self, _size: object) -> None:
        self._fit_height()
        if self._complete:  # while streaming the buttons move only at renders
            self.code_copy.place()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._fit_height()
        self.code_copy.place()

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt override
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self._restyle_code()

    def _restyle_code(self) -> None:
        """A live theme switch: code blocks take the new scheme's background and colours."""
        style = "monokai" if theme.is_dark() else "default"
        if self._highlighter.style_name != style:
            self._highlighter.style_name = style
            self._style_code_blocks()
            self._highlighter.rehighlight()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(300, self.height())
