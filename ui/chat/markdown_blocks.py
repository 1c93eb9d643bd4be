"""Where a growing Markdown reply can be cut into finished blocks and an open tail.

A streamed reply is shown as its finished blocks, rendered as Markdown, and a
tail of plain text that grows token by token. The tail is rendered only when it
becomes a finished block: after a blank line, a heading, a list item, a rule,
or a code fence's opening or closing line. No Qt here: plain string scanning.
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)")
_HEADING = re.compile(r"^ {0,3}#{1,6}(\s|$)")
_LIST_ITEM = re.compile(r"^\s*([-*+]|\d{1,9}[.)])\s")
_RULE = re.compile(r"^ {0,3}([-*_])(\s*\1){2,}\s*$")


class BlockSplitter:
    """Follows a growing text; `stable` is the length of its finished blocks.

    While a code fence is open, `fence_start` is where its opening line starts and
    `fence_language` its language ("" for none); both are None otherwise.
    """

    def __init__(self) -> None:
        self.text = ""
        self.stable = 0
        self.fence_start: int | None = None
        self.fence_language: str | None = None
        self._fence_marker = ""
        self._scanned = 0  # lines before this offset have been classified

    def feed(self, piece: str) -> bool:
        """Add streamed text; True when it finished at least one block."""
        self.text += piece
        moved = False
        while (end := self.text.find("\n", self._scanned)) >= 0:
            start, self._scanned = self._scanned, end + 1
            if self._ends_block(self.text[start:end], start):
                self.stable = self._scanned
                moved = True
        return moved

    def _ends_block(self, line: str, start: int) -> bool:
        if self.fence_start is not None:
            stripped = line.strip()
            closes = (
                stripped.startswith(self._fence_marker)
                and not stripped.strip(self._fence_marker[0])
                and len(line) - len(line.lstrip(" ")) <= 3
            )
            if closes:
                self.fence_start = self.fence_language = None
                self._fence_marker = ""
            return closes
        if fence := _FENCE.match(line):
            self.fence_start, self._fence_marker = start, fence.group(1)
            self.fence_language = fence.group(2)
            return True
        return (
            not line.strip()
            or bool(_HEADING.match(line))
            or bool(_LIST_ITEM.match(line))
            or bool(_RULE.match(line))
        )
