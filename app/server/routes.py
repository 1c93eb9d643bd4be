"""The HTTP side: a Starlette app with /v1/models and /v1/chat/completions.

Starlette rather than FastAPI: two routes whose errors must be in OpenAI's shape
(FastAPI's request validation answers 422 in its own shape, which we would have
to override), and no need for pydantic models or generated docs. FastAPI is
Starlette underneath; uvicorn serves it either way.

Every failure is a JSON error with a one-line message: a bad request 400, a
wrong key 401, an unknown model or path 404, an engine error 500.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from app.engine import events as ev
from app.errors import EngineUnavailableError, GlassboxError
from app.metrics import TurnMetrics
from app.server import protocol
from app.server.protocol import ApiError, ChatRequest
from app.server.served_turns import ServedTurn, ServedTurns
from app.settings import SamplingSettings

SamplingSource = Callable[[], SamplingSettings]
# Sent to nobody: the client went away before its reply was ready (nginx's name for it).
CLIENT_CLOSED = 499


def model_ids(served: ServedTurns) -> tuple[str, ...]:
    """The loaded model's id: its file name without .gguf (stable, and what users see),
    or, for a window on a remote server, the server's own name for its model."""
    info = served.session.engine.model_info
    if info is None:
        return ()
    if info.backend == "remote":
        return (info.model_name,)
    return (Path(info.model_path).stem,)


def build_app(
    served: ServedTurns,
    executor: Executor,
    *,
    api_key: str | None = None,
    sampling: SamplingSource = SamplingSettings,
) -> Starlette:
    """The ASGI app. executor runs the store writes off the event loop; sampling gives
    the defaults a request's own fields override (the GUI's current settings)."""
    started = int(time.time())

    async def list_models(request: Request) -> Response:
        return JSONResponse(protocol.models_body(model_ids(served), started))

    async def chat_completions(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"the request body is not valid JSON: {exc}") from None
        chat = protocol.parse_chat_request(body, model_ids(served), sampling())
        loop = asyncio.get_running_loop()
        try:
            turn = await loop.run_in_executor(executor, served.begin, chat, loop)
        except EngineUnavailableError as exc:
            raise ApiError(503, str(exc), kind="server_error") from None
        except GlassboxError as exc:
            raise ApiError(400, str(exc)) from None
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        if chat.stream:
            return StreamingResponse(
                _stream(served, chat, turn, completion_id),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        return await _complete(served, chat, turn, completion_id, request)

    async def authorize(request: Request) -> Response | None:
        if api_key is None:
            return None
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), api_key):
            return None
        message = (
            "missing API key: send it as 'Authorization: Bearer <key>'"
            if not header
            else "the API key is not valid"
        )
        return _error(ApiError(401, message, code="invalid_api_key"))

    def guarded(
        endpoint: Callable[[Request], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            if (refusal := await authorize(request)) is not None:
                return refusal
            try:
                return await endpoint(request)
            except ApiError as exc:
                return _error(exc)

        return handle

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
        message = f"{exc.detail}: {request.method} {request.url.path}"
        return JSONResponse(protocol.error_body(message, kind), status_code=exc.status_code)

    async def internal_error(request: Request, exc: Exception) -> Response:
        traceback.print_exception(exc)
        line = f"internal error: {type(exc).__name__}: {exc}".splitlines()[0]
        return JSONResponse(protocol.error_body(line, "server_error"), status_code=500)

    return Starlette(
        routes=[
            Route("/v1/models", guarded(list_models), methods=["GET"]),
            Route("/v1/chat/completions", guarded(chat_completions), methods=["POST"]),
        ],
        exception_handlers={HTTPException: http_error, Exception: internal_error},
    )


def _error(exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status)


async def _next_event(turn: ServedTurn, request: Request) -> ev.EngineEvent | None:
    """The turn's next event, or None once the client has closed its connection.

    Starlette's request.is_disconnected() never reports a disconnect once the body has
    been read (it polls receive() inside an already-cancelled scope), so a watcher task
    waits on the ASGI receive() itself: after the body, the server's next message for
    this request is http.disconnect.
    """
    watcher = getattr(request.state, "disconnect_watcher", None)
    if watcher is None:
        watcher = asyncio.ensure_future(_wait_for_disconnect(request))
        request.state.disconnect_watcher = watcher
    getter = asyncio.ensure_future(turn.events.get())
    done, _pending = await asyncio.wait({getter, watcher}, return_when=asyncio.FIRST_COMPLETED)
    if getter in done:
        return getter.result()
    getter.cancel()
    return None


async def _wait_for_disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _complete(
    served: ServedTurns,
    chat: ChatRequest,
    turn: ServedTurn,
    completion_id: str,
    request: Request,
) -> Response:
    """Wait for the whole reply; the store already holds it when TurnFinished comes.
    A client that gives up meanwhile (a timeout) cancels the turn: no one would read it."""
    error = ""
    try:
        while True:
            event = await _next_event(turn, request)
            if event is None:
                served.session.cancel(turn.request_id)
                return Response(status_code=CLIENT_CLOSED)
            if isinstance(event, ev.EngineError | ev.EngineCrashed):
                error = error or event.message
            elif isinstance(event, ev.TurnFinished):
                break
    finally:
        served.end(turn.request_id)
        watcher = getattr(request.state, "disconnect_watcher", None)
        if watcher is not None:
            watcher.cancel()
    if error or event.metrics.stop_reason == "error":
        raise ApiError(500, error or "the engine failed this request", kind="server_error")
    if event.metrics.stop_reason != "cancelled":
        served.remember(chat, event.text, turn.conversation_id)
    return JSONResponse(
        protocol.completion_body(
            completion_id, chat.model, event.text, event.metrics, turn.conversation_id
        )
    )


def _sse(data: object) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


async def _stream(
    served: ServedTurns, chat: ChatRequest, turn: ServedTurn, completion_id: str
) -> AsyncIterator[str]:
    """Server-sent events: a role chunk, one chunk per token with text, the finish
    chunk, the usage chunk when asked, then [DONE]. A client that goes away
    cancels the turn (the reply so far stays stored, marked partial)."""
    created = int(time.time())

    def chunk(delta: dict[str, str], finish: str | None = None) -> str:
        return _sse(protocol.chunk_body(completion_id, chat.model, created, delta, finish))

    finished = False
    streamed = ""
    error = ""
    try:
        yield chunk({"role": "assistant", "content": ""})
        while True:
            event = await turn.events.get()
            if isinstance(event, ev.Token) and event.text:
                streamed += event.text
                yield chunk({"content": event.text})
            elif isinstance(event, ev.EngineError | ev.EngineCrashed):
                error = error or event.message
            elif isinstance(event, ev.TurnFinished):
                finished = True
                break
        metrics: TurnMetrics = event.metrics
        if error or metrics.stop_reason == "error":
            yield _sse(
                protocol.error_body(error or "the engine failed this request", "server_error")
            )
        else:
            # Text held back as a possible stop string that was not one after all.
            if event.text.startswith(streamed) and len(event.text) > len(streamed):
                yield chunk({"content": event.text[len(streamed) :]})
            yield chunk({}, protocol.finish_reason(metrics))
            if chat.include_usage:
                usage_chunk = protocol.chunk_body(completion_id, chat.model, created, {})
                usage_chunk["choices"] = []
                usage_chunk["usage"] = protocol.usage(metrics)
                usage_chunk["glassbox"] = protocol.glassbox_extra(turn.conversation_id, metrics)
                yield _sse(usage_chunk)
            if metrics.stop_reason != "cancelled":
                served.remember(chat, event.text, turn.conversation_id)
        yield "data: [DONE]\n\n"
    finally:
        if not finished:
            served.session.cancel(turn.request_id)
        served.end(turn.request_id)
