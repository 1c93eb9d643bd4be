"""What went wrong talking to a remote server, in one line a user can act on.

Each fault of issue 12 maps to its own message: connection refused, a name that
does not resolve, timeouts (connect; between tokens), 401/403, an unknown model
(404), 429 and 5xx with the server's own words, a malformed event stream, and a
server that closes the connection mid-reply.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from app.errors import GlassboxError

SERVER_MESSAGE_CHARS = 300

# Words in a ConnectError that mean the host name did not resolve (glibc, macOS, Windows).
DNS_WORDS = (
    "name or service not known",
    "temporary failure in name resolution",
    "nodename nor servname",
    "no address associated",
    "getaddrinfo failed",
    "name resolution",
)


class RemoteError(GlassboxError):
    """A request to the server failed; str() is the user's one-line message."""


def server_message(body: bytes | str) -> str:
    """The server's own error text: OpenAI's {"error": {"message"}}, FastAPI's
    {"detail"}, a bare {"message"}, else the start of the body."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        data: Any = json.loads(text)
    except ValueError:
        data = None
    found: Any = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            found = error.get("message") or error.get("type")
        elif error:
            found = error
        found = found or data.get("detail") or data.get("message")
    if isinstance(found, list | dict):
        found = json.dumps(found)
    line = " ".join(str(found or text).split())
    return line[:SERVER_MESSAGE_CHARS] or "(no message)"


def status_fault(
    status: int, body: bytes, url: str, model: str, retry_after: str | None = None
) -> RemoteError:
    said = server_message(body)
    if status in (401, 403):
        what = "rejected the API key" if status == 401 else "refused access"
        return RemoteError(
            f"the server {what} ({status}): {said}; check the key (--api-key-env NAME)"
        )
    if status == 404:
        if "model" in said.lower() or (url.endswith("/chat/completions") and model):
            return RemoteError(f"the server does not know the model {model!r} (404): {said}")
        return RemoteError(f"nothing at {url} (404): is the base URL right? {said}")
    if status == 429:
        wait = f"; it asks to retry after {retry_after} s" if retry_after else ""
        return RemoteError(f"the server is rate limiting requests (429): {said}{wait}")
    if status >= 500:
        return RemoteError(f"the server failed ({status}): {said}")
    return RemoteError(f"the server refused the request ({status}): {said}")


def transport_fault(
    exc: httpx.HTTPError, url: str, *, tokens: int, timeout_s: float
) -> RemoteError:
    """A connection-level failure; `tokens` says how far the reply had come."""
    host = httpx.URL(url).host
    where = f"{host}:{httpx.URL(url).port or ''}".rstrip(":")
    if isinstance(exc, httpx.ConnectTimeout):
        return RemoteError(f"connecting to {where} timed out: is the server up and reachable?")
    if isinstance(exc, httpx.ConnectError):
        text = str(exc).lower()
        if any(word in text for word in DNS_WORDS):
            return RemoteError(f"cannot resolve the host name {host!r}: check the URL")
        if "refused" in text:
            return RemoteError(f"connection refused by {where}: is the server running there?")
        return RemoteError(f"cannot connect to {where}: {exc}")
    if isinstance(exc, httpx.ReadTimeout):
        if tokens:
            return RemoteError(
                f"the server sent nothing for {timeout_s:g} s after {tokens} tokens; "
                "the reply so far is kept"
            )
        return RemoteError(f"the server sent no reply within {timeout_s:g} s")
    if isinstance(exc, httpx.TimeoutException):
        return RemoteError(f"the request to {where} timed out ({type(exc).__name__})")
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        return closed_mid_reply(tokens)
    return RemoteError(f"the request to {where} failed: {type(exc).__name__}: {exc}")


def closed_mid_reply(tokens: int) -> RemoteError:
    if tokens:
        return RemoteError(
            f"the server closed the connection mid-reply after {tokens} tokens; "
            "the reply so far is kept"
        )
    return RemoteError("the server closed the connection before it sent a reply")


def malformed(detail: str, tokens: int) -> RemoteError:
    kept = f" after {tokens} tokens; the reply so far is kept" if tokens else ""
    return RemoteError(f"the server sent a malformed event stream ({detail}){kept}")
