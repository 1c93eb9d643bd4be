"""ServedTurns: API requests as stored conversations, and their events back to the HTTP side.

Each request becomes a turn of a conversation in the store, sent through the same
ChatSession as the GUI's own turns, so it gets the same TurnMetrics (queue time
included) and shows in the conversations list. A client that sends back the
whole history plus one new message (as chat clients do) continues the
conversation its earlier request made, rather than a copy per request.

on_event runs on the engine's reader thread (it is part of the session's
listener) and must not block: it hands each event of a served request to that
request's asyncio queue with call_soon_threadsafe.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from dataclasses import dataclass

from app.engine import events as ev
from app.server.protocol import ChatRequest
from app.session import ChatSession

TITLE_PREFIX = "API · "
TITLE_CHARS = 48
# Histories remembered for continuing a client's conversation; the oldest go first.
CONTINUATIONS_KEPT = 256
# Request ids remembered as served after their turn ended (the GUI may ask late).
SERVED_IDS_KEPT = 1024

History = tuple[tuple[str, str], ...]


@dataclass
class _Route:
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue[ev.EngineEvent]


@dataclass
class ServedTurn:
    request_id: int
    conversation_id: int
    events: asyncio.Queue[ev.EngineEvent]


def history_key(messages: list[dict[str, str]]) -> History:
    return tuple((m["role"], m["content"]) for m in messages)


class ServedTurns:
    """Thread-safe. begin() runs off the event loop (it writes to SQLite)."""

    def __init__(self, session: ChatSession) -> None:
        self.session = session
        self._lock = threading.Lock()
        self._routes: dict[int, _Route] = {}
        self._continuations: collections.OrderedDict[History, int] = collections.OrderedDict()
        self._served_ids: collections.OrderedDict[int, None] = collections.OrderedDict()

    def serves(self, request_id: int | None) -> bool:
        """The request is or was one of ours (the GUI follows these), even when its
        turn is over by the time the GUI thread asks."""
        with self._lock:
            return request_id in self._served_ids

    def begin(self, chat: ChatRequest, loop: asyncio.AbstractEventLoop) -> ServedTurn:
        """Store the conversation (new, or the one this history continues) and send the
        last message. Events for the request go to the returned queue."""
        store = self.session.store
        with self._lock:
            conversation_id = self._continuations.pop(history_key(chat.messages[:-1]), None)
        if conversation_id is not None:
            found = store.get_conversation(conversation_id)
            if found is None or found.deleted_at is not None:
                conversation_id = None  # the user deleted it meanwhile: start afresh
        if conversation_id is None:
            conversation_id = self._new_conversation(chat.messages)
        route = _Route(loop, asyncio.Queue())
        request_id = self.session.engine.new_request_id()
        with self._lock:
            self._routes[request_id] = route  # before send: its events may come from inside it
            self._served_ids[request_id] = None
            while len(self._served_ids) > SERVED_IDS_KEPT:
                self._served_ids.popitem(last=False)
        try:
            self.session.send(
                conversation_id, chat.messages[-1]["content"], chat.sampling, request_id
            )
        except BaseException:
            self.end(request_id)
            raise
        return ServedTurn(request_id, conversation_id, route.events)

    def _new_conversation(self, messages: list[dict[str, str]]) -> int:
        """A conversation holding the request's earlier messages, its system messages
        joined into the system prompt (the store keeps one, at the start)."""
        store = self.session.store
        system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
        last = messages[-1]["content"]
        title = TITLE_PREFIX + (" ".join(last.split())[:TITLE_CHARS] or "request")
        conversation_id = store.create_conversation(title, system).id
        for message in messages[:-1]:
            if message["role"] != "system":
                store.add_message(conversation_id, message["role"], message["content"])
        return conversation_id

    def remember(self, chat: ChatRequest, reply: str, conversation_id: int) -> None:
        """The turn ended well: a next request that carries this history plus a new
        message continues this conversation."""
        key = history_key([*chat.messages, {"role": "assistant", "content": reply}])
        with self._lock:
            self._continuations[key] = conversation_id
            while len(self._continuations) > CONTINUATIONS_KEPT:
                self._continuations.popitem(last=False)

    def end(self, request_id: int) -> None:
        with self._lock:
            self._routes.pop(request_id, None)

    def cancel_all(self) -> None:
        """Stop every served request (the server is stopping): each still ends with
        its TurnFinished, so its stream closes properly."""
        with self._lock:
            request_ids = list(self._routes)
        for request_id in request_ids:
            self.session.cancel(request_id)

    def on_event(self, event: ev.EngineEvent) -> None:
        if event.request_id is None:
            return
        with self._lock:
            route = self._routes.get(event.request_id)
        if route is None:
            return
        try:
            route.loop.call_soon_threadsafe(route.events.put_nowait, event)
        except RuntimeError:
            pass  # the server's loop has closed; nobody waits for this any more
