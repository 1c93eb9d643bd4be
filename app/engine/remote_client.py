"""HTTP to an OpenAI-compatible server (httpx): models, /slots, /metrics, a streamed chat.

Plain blocking calls, made from the remote engine's own threads, never the
GUI's. A StreamHandle lets another thread stop a running stream at once: it
shuts the socket down, which wakes the blocked read (closing alone would wait
for the server's next byte).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from app.endpoints import Endpoint
from app.engine.remote_faults import (
    RemoteError,
    closed_mid_reply,
    malformed,
    server_message,
    status_fault,
    transport_fault,
)
from app.engine.remote_figures import ServerFigures, kv_fill_from_metrics
from app.engine.sse import DONE, SseEvent, SseParser

CONNECT_TIMEOUT_S = 5.0
TOKEN_TIMEOUT_S = 120.0  # the longest silence between two streamed chunks (or before the first)
PROBE_TIMEOUT_S = 3.0  # /slots and /metrics: extras, never worth a long wait
ERROR_BODY_BYTES = 16_384

TextSink = Callable[[str, int], None]  # (text, arrival time in monotonic ns)


class StreamHandle:
    """Stop for one streamed request, usable from any thread."""

    def __init__(self) -> None:
        self.cancelled = threading.Event()
        self._lock = threading.Lock()
        self._response: httpx.Response | None = None

    def attach(self, response: httpx.Response | None) -> None:
        with self._lock:
            self._response = response

    def cancel(self) -> None:
        self.cancelled.set()
        with self._lock:
            response = self._response
        if response is None:
            return
        stream = response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if isinstance(sock, socket.socket):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the other side


@dataclass
class StreamResult:
    done: bool = False  # [DONE] arrived
    chunks: int = 0  # content chunks streamed
    cancelled: bool = False


class RemoteClient:
    """One connection pool to one server; thread-safe (httpx.Client is)."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        token_timeout_s: float = TOKEN_TIMEOUT_S,
    ) -> None:
        self.endpoint = endpoint.validate()
        self.token_timeout_s = token_timeout_s
        headers = {"Accept": "application/json"}
        key = endpoint.api_key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(token_timeout_s, connect=connect_timeout_s),
            follow_redirects=True,
        )
        self._metrics_exposed: bool | None = None  # unknown until the first try

    def close(self) -> None:
        self._client.close()

    # -- server facts ---------------------------------------------------------------

    def list_models(self) -> list[str]:
        url = self.endpoint.api_base + "/models"
        try:
            response = self._client.get(url)
        except httpx.HTTPError as exc:
            raise transport_fault(exc, url, tokens=0, timeout_s=self.token_timeout_s) from None
        if response.status_code != 200:
            raise status_fault(response.status_code, response.content, url, "")
        try:
            data = response.json()
            return [str(item["id"]) for item in data["data"]]
        except (ValueError, KeyError, TypeError):
            raise RemoteError(
                f"{url} did not answer with a model list: {server_message(response.content)}"
            ) from None

    def slot_n_ctx(self) -> int | None:
        """llama.cpp server's per-slot context size (/slots); None where not exposed."""
        data = self._probe("/slots")
        if isinstance(data, list) and data and isinstance(data[0], dict):
            value = data[0].get("n_ctx")
            return int(value) if isinstance(value, int) else None
        return None

    def kv_fill(self) -> float | None:
        """Server-wide KV cache fill from Prometheus /metrics; None where not exposed.
        A server that has no /metrics is not asked again."""
        if self._metrics_exposed is False:
            return None
        try:
            response = self._client.get(self.endpoint.root + "/metrics", timeout=PROBE_TIMEOUT_S)
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            self._metrics_exposed = False
            return None
        self._metrics_exposed = True
        return kv_fill_from_metrics(response.text)

    def _probe(self, path: str) -> Any:
        try:
            response = self._client.get(self.endpoint.root + path, timeout=PROBE_TIMEOUT_S)
            return response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None

    # -- a streamed chat ---------------------------------------------------------------

    def stream_chat(
        self,
        body: dict[str, Any],
        handle: StreamHandle,
        on_text: TextSink,
        figures: ServerFigures,
    ) -> StreamResult:
        """POST /chat/completions with stream=true; content goes to on_text as it arrives.
        Raises RemoteError; a cancel ends it quietly (result.cancelled)."""
        url = self.endpoint.api_base + "/chat/completions"
        result = StreamResult()
        try:
            with self._client.stream("POST", url, json=body) as response:
                handle.attach(response)
                if handle.cancelled.is_set():
                    result.cancelled = True
                    return result
                if response.status_code != 200:
                    raw = response.read()[:ERROR_BODY_BYTES]
                    if _rejects_stream_options(response.status_code, raw, body):
                        handle.attach(None)
                        trimmed = {k: v for k, v in body.items() if k != "stream_options"}
                        return self.stream_chat(trimmed, handle, on_text, figures)
                    raise status_fault(
                        response.status_code,
                        raw,
                        url,
                        str(body.get("model", "")),
                        response.headers.get("retry-after"),
                    )
                content_type = response.headers.get("content-type", "")
                if "text/event-stream" not in content_type:
                    raise malformed(f"content type {content_type or 'missing'}", 0)
                self._read_events(response, result, on_text, figures)
        except httpx.HTTPError as exc:
            if handle.cancelled.is_set():
                result.cancelled = True
                return result
            raise transport_fault(
                exc, url, tokens=result.chunks, timeout_s=self.token_timeout_s
            ) from None
        finally:
            handle.attach(None)
        if handle.cancelled.is_set():
            result.cancelled = True
        elif not result.done and figures.finish_reason is None:
            raise closed_mid_reply(result.chunks)
        return result

    def _read_events(
        self,
        response: httpx.Response,
        result: StreamResult,
        on_text: TextSink,
        figures: ServerFigures,
    ) -> None:
        parser = SseParser()
        last_life = time.monotonic()
        for line in response.iter_lines():
            event = parser.feed(line)
            if event is None:
                # Keep-alive pings reset httpx's read timeout; the silence
                # between chunks is what the user waits through, so count it here.
                if time.monotonic() - last_life > self.token_timeout_s:
                    raise RemoteError(
                        f"the server sent only keep-alive pings for {self.token_timeout_s:g} s"
                    )
                continue
            last_life = time.monotonic()
            if self._on_event(event, result, on_text, figures):
                return
        last = parser.finish()
        if last is not None:
            self._on_event(last, result, on_text, figures)

    def _on_event(
        self, event: SseEvent, result: StreamResult, on_text: TextSink, figures: ServerFigures
    ) -> bool:
        """One event; True at the end-of-stream marker."""
        if event.data.strip() == DONE:
            result.done = True
            return True
        try:
            chunk = json.loads(event.data)
        except ValueError:
            raise malformed(f"not JSON: {event.data[:60]!r}", result.chunks) from None
        if not isinstance(chunk, dict):
            raise malformed(f"not a JSON object: {event.data[:60]!r}", result.chunks)
        if chunk.get("error") or event.event == "error":
            raise RemoteError(
                f"the server reported an error mid-reply: {server_message(event.data)}"
            )
        choices = chunk.get("choices")
        usage, timings = chunk.get("usage"), chunk.get("timings")
        if not isinstance(choices, list) and not isinstance(usage, dict):
            raise malformed("an event with neither choices nor usage", result.chunks)
        if isinstance(usage, dict):
            figures.usage = usage
        if isinstance(timings, dict):
            figures.timings = timings
        for choice in choices or []:
            if not isinstance(choice, dict):
                raise malformed("a choice that is not an object", result.chunks)
            delta = choice.get("delta") or {}
            content = delta.get("content") if isinstance(delta, dict) else None
            if isinstance(content, str) and content:
                result.chunks += 1
                on_text(content, time.monotonic_ns())
            if choice.get("finish_reason"):
                figures.finish_reason = str(choice["finish_reason"])
        return False


def _rejects_stream_options(status: int, raw: bytes, body: dict[str, Any]) -> bool:
    """An older server that refuses the usage request: it is asked again without it."""
    return status in (400, 422) and "stream_options" in body and b"stream_options" in raw


def fetch_models(endpoint: Endpoint, timeout_s: float = CONNECT_TIMEOUT_S) -> list[str]:
    """The server's model names (/v1/models), for a settings page; raises RemoteError."""
    client = RemoteClient(endpoint, connect_timeout_s=timeout_s, token_timeout_s=timeout_s)
    try:
        return client.list_models()
    finally:
        client.close()
