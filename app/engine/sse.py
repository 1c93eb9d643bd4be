"""Server-sent events, read line by line (the OpenAI-compatible streaming format).

Only what chat completion streams use: `data:` fields (joined with newlines
when an event has several), `event:` names, comments (`:` lines, servers send
them as keep-alive pings) and the blank line that ends an event. No network
here, so the parser is tested with plain strings.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

DONE = "[DONE]"  # the OpenAI end-of-stream marker, sent as an event's data


@dataclass
class SseEvent:
    data: str
    event: str = "message"


class SseParser:
    """Feed lines (without their line ending); complete events come back."""

    def __init__(self) -> None:
        self._data: list[str] = []
        self._event = ""
        self.comments = 0  # keep-alive pings seen; they count as life, not as tokens

    def feed(self, line: str) -> SseEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            self.comments += 1
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        # "id" and "retry" matter to browsers that reconnect; not to a chat reply.
        return None

    def finish(self) -> SseEvent | None:
        """The stream ended: an event without its closing blank line still counts."""
        return self._dispatch()

    def _dispatch(self) -> SseEvent | None:
        if not self._data:
            self._event = ""
            return None
        event = SseEvent("\n".join(self._data), self._event or "message")
        self._data, self._event = [], ""
        return event


def parse_lines(lines: Iterable[str]) -> Iterator[SseEvent]:
    parser = SseParser()
    for line in lines:
        event = parser.feed(line)
        if event is not None:
            yield event
    last = parser.finish()
    if last is not None:
        yield last
