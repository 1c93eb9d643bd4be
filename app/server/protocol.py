"""The OpenAI chat-completions wire format: requests parsed and checked, replies built.

Plain functions on plain dicts, no web framework: the routes (app.server.routes)
hand a decoded JSON body in and send what comes back out. Every bad request is an
ApiError with a one-line message in OpenAI's error shape, so a client library
shows it as it would show OpenAI's own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from app.errors import SettingsError
from app.metrics import TurnMetrics
from app.settings import SamplingSettings

ROLES = ("system", "user", "assistant")
# Glassbox's stop reasons as OpenAI's finish_reason; "cancelled" (the server
# shutting down, the client gone) ends the text, as a stop does.
FINISH_REASONS = {"length": "length"}


class ApiError(Exception):
    """A request the server refuses; str() is the one-line message for the client."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        kind: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.kind, self.param, self.code = status, kind, param, code

    def body(self) -> dict[str, Any]:
        return error_body(str(self), self.kind, self.param, self.code)


def error_body(
    message: str, kind: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


@dataclass
class ChatRequest:
    """A checked /v1/chat/completions body."""

    model: str
    messages: list[dict[str, str]]  # role and content, text only
    sampling: SamplingSettings
    stream: bool
    include_usage: bool  # stream_options.include_usage: a last chunk with the usage


def parse_chat_request(
    body: object, model_ids: tuple[str, ...], defaults: SamplingSettings
) -> ChatRequest:
    """The body checked field by field; ApiError (400, 404 for the model) when it is wrong."""
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "'model' is required: a model id from /v1/models", param="model")
    if model not in model_ids:
        loaded = ", ".join(model_ids) or "none (no model is loaded)"
        raise ApiError(
            404,
            f"model {model!r} is not loaded here; loaded: {loaded}",
            param="model",
            code="model_not_found",
        )
    messages = _parse_messages(body.get("messages"))
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError(400, "'stream' must be true or false", param="stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise ApiError(400, "'stream_options' must be an object", param="stream_options")
    n = body.get("n", 1)
    if n != 1:
        raise ApiError(400, "only n=1 is supported (one choice per request)", param="n")
    for unsupported in ("tools", "functions", "logit_bias"):
        if body.get(unsupported):
            raise ApiError(
                400, f"'{unsupported}' is not supported by this server", param=unsupported
            )
    return ChatRequest(
        model=model,
        messages=messages,
        sampling=_parse_sampling(body, defaults),
        stream=stream,
        include_usage=bool(options.get("include_usage", False)),
    )


def _parse_messages(value: object) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise ApiError(400, "'messages' must be a non-empty list of messages", param="messages")
    messages = []
    for index, item in enumerate(value):
        where = f"messages[{index}]"
        if not isinstance(item, dict):
            raise ApiError(400, f"{where} must be an object with role and content", param=where)
        role = item.get("role")
        if role == "developer":  # OpenAI's newer name for the system role
            role = "system"
        if role not in ROLES:
            raise ApiError(
                400,
                f"{where}.role must be one of {', '.join(ROLES)}, got {role!r}",
                param=f"{where}.role",
            )
        messages.append({"role": str(role), "content": _text_of(item.get("content"), where)})
    if messages[-1]["role"] != "user":
        raise ApiError(400, "the last message must be from the user", param="messages")
    if not messages[-1]["content"].strip():
        raise ApiError(400, "the last user message is empty", param="messages")
    return messages


def _text_of(content: object, where: str) -> str:
    """A message's text: a string, or a list of text parts (images are not supported)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise ApiError(
                    400,
                    f"{where}.content: only text parts are supported, got {kind!r}",
                    param=f"{where}.content",
                )
            texts.append(str(part.get("text", "")))
        return "".join(texts)
    raise ApiError(400, f"{where}.content must be a string", param=f"{where}.content")


# OpenAI's names first, then llama.cpp server's extensions that Glassbox samples with.
_NUMBERS: tuple[tuple[str, str, type], ...] = (
    ("temperature", "temperature", float),
    ("top_p", "top_p", float),
    ("top_k", "top_k", int),
    ("min_p", "min_p", float),
    ("repeat_penalty", "repeat_penalty", float),
    ("seed", "seed", int),
    ("max_tokens", "max_tokens", int),
    ("max_completion_tokens", "max_tokens", int),
)


def _parse_sampling(body: dict[str, Any], defaults: SamplingSettings) -> SamplingSettings:
    changes: dict[str, Any] = {}
    for name, field, kind in _NUMBERS:
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ApiError(400, f"'{name}' must be a number", param=name)
        if kind is int and value != int(value):
            raise ApiError(400, f"'{name}' must be a whole number", param=name)
        changes[field] = kind(value)
    stop = body.get("stop")
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else stop
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise ApiError(400, "'stop' must be a string or a list of strings", param="stop")
        changes["stop"] = tuple(stops)
    try:
        return defaults.with_changes(**changes).validate()
    except SettingsError as exc:
        raise ApiError(400, str(exc)) from None


# -- replies ------------------------------------------------------------------------


def finish_reason(metrics: TurnMetrics) -> str:
    return FINISH_REASONS.get(metrics.stop_reason or "", "stop")


def usage(metrics: TurnMetrics) -> dict[str, int]:
    prompt = metrics.prompt_tokens or 0
    completion = metrics.output_tokens or 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def glassbox_extra(conversation_id: int, metrics: TurnMetrics | None) -> dict[str, Any]:
    """Our own field beside OpenAI's: where the turn is stored and its measured figures."""
    extra: dict[str, Any] = {"conversation_id": conversation_id}
    if metrics is not None:
        extra["metrics"] = metrics.to_dict()
    return extra


def completion_body(
    completion_id: str,
    model: str,
    text: str,
    metrics: TurnMetrics,
    conversation_id: int,
    created: int | None = None,
) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created if created is not None else int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish_reason(metrics),
                "logprobs": None,
            }
        ],
        "usage": usage(metrics),
        "glassbox": glassbox_extra(conversation_id, metrics),
    }


def chunk_body(
    completion_id: str,
    model: str,
    created: int,
    delta: dict[str, str],
    finish: str | None = None,
) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
    }


def models_body(model_ids: tuple[str, ...], created: int) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"id": model_id, "object": "model", "created": created, "owned_by": "glassbox"}
            for model_id in model_ids
        ],
    }
