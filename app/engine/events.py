"""Events that flow one way: worker -> LocalEngine (parent) -> listeners.

Every event is a small picklable dataclass. request_id ties turn events to the
request returned by LocalEngine.submit(); it is None for engine-wide events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.metrics import TurnMetrics


@dataclass
class EngineEvent:
    request_id: int | None = None


@dataclass
class ModelLoadStarted(EngineEvent):
    model_path: str = ""


@dataclass
class ModelLoadProgress(EngineEvent):
    fraction: float = 0.0  # llama.cpp's own progress through the tensor data, 0..1


@dataclass
class ModelLoaded(EngineEvent):
    model_path: str = ""
    model_name: str = ""
    load_ms: float = 0.0
    n_layers: int = 0
    n_layers_offloaded: int = 0
    backend: str = "CPU"
    gpu_offload_supported: bool = False
    n_ctx: int = 0
    n_ctx_train: int = 0
    n_threads: int = 0
    kv_bytes_per_token: int = 0
    kv_bytes_total: int = 0
    kv_cells_total: int = 0
    kv_buffer_mib_reported: float | None = None  # llama.cpp's own log line, for checking
    model_buffer_mib_reported: float | None = None  # weights, as llama.cpp logged them
    compute_buffer_mib_reported: float | None = None  # scratch buffers, as llama.cpp logged them
    has_chat_template: bool = False
    chat_format: str = "plain"  # "template" (model's own Jinja template) or "plain" fallback
    n_params: int = 0
    model_size_bytes: int = 0
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class RequestQueued(EngineEvent):
    position: int = 0  # requests ahead of this one, the running one included


@dataclass
class TurnStarted(EngineEvent):
    t_ns: int = 0
    queue_ms: float = 0.0
    prompt_tokens: int = 0
    prompt_tokens_cached: int = 0
    dropped_messages: int = 0  # oldest messages left out so the history fits the context


@dataclass
class Token(EngineEvent):
    index: int = 0
    token_id: int = 0
    # New reply text this token makes certain. Text that could begin a stop
    # string is held back (text may then be ""); TurnFinished.text is the whole
    # reply, so its tail beyond the streamed text was never streamed.
    text: str = ""
    t_ns: int = 0  # engine (worker) timestamp, time.monotonic_ns()


@dataclass
class TurnFinished(EngineEvent):
    text: str = ""  # the whole reply, stop strings removed
    metrics: TurnMetrics = field(default_factory=TurnMetrics)


@dataclass
class EngineError(EngineEvent):
    message: str = ""  # one line, for the user


@dataclass
class EngineCrashed(EngineEvent):
    exit_code: int | None = None
    signal_name: str | None = None
    log_tail: list[str] = field(default_factory=list)
    message: str = ""
