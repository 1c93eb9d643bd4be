"""Events that flow one way: worker -> LocalEngine (parent) -> listeners.

Every event is a small picklable dataclass. request_id ties turn events to the
request returned by LocalEngine.submit(); it is None for engine-wide events.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.metrics import TurnMetrics

# The most alternatives a request may ask for per token (top_logprobs), as in OpenAI's API.
MAX_TOP_LOGPROBS = 10


@dataclass
class EngineEvent:
    request_id: int | None = None


EventSink = Callable[[EngineEvent], None]


@dataclass
class ModelLoadStarted(EngineEvent):
    model_path: str = ""
    load_id: int = 0  # ties ModelLoaded, or the EngineError of a failed load, to this load
    note: str = ""  # why this load happens, when the engine started it itself


@dataclass
class ModelLoadProgress(EngineEvent):
    fraction: float = 0.0  # llama.cpp's own progress through the tensor data, 0..1


@dataclass
class ModelLoaded(EngineEvent):
    model_path: str = ""
    model_name: str = ""  # for people: "SmolLM2 135M Instruct · Q4_1" (app.models.names)
    general_name: str = ""  # the GGUF's general.name as written, often a training-run label
    load_ms: float = 0.0
    n_layers: int = 0
    n_layers_offloaded: int = 0
    backend: str = "CPU"
    gpu_offload_supported: bool = False
    n_ctx: int = 0
    n_ctx_train: int = 0
    context_note: str = ""  # set when n_ctx is beyond n_ctx_train, naming both
    n_threads: int = 0
    kv_bytes_per_token: int = 0
    kv_bytes_total: int = 0
    kv_cells_total: int = 0
    kv_buffer_mib_reported: float | None = None  # llama.cpp's own log line, for checking
    model_buffer_mib_reported: float | None = None  # weights, as llama.cpp logged them
    compute_buffer_mib_reported: float | None = None  # scratch buffers, as llama.cpp logged them
    has_chat_template: bool = False
    chat_format: str = "plain"  # "template" (model's own Jinja template) or "plain" fallback
    # Why the model's own template is not used (it failed its sandboxed check), for the user.
    chat_template_note: str = ""
    n_params: int = 0
    model_size_bytes: int = 0
    settings: dict[str, Any] = field(default_factory=dict)
    load_id: int = 0
    # Weight repacking: the mode asked for ("auto", "on", "off"), whether llama.cpp
    # was allowed its extra buffer types, the ones it used with their sizes as it
    # logged them ({"AMX": 95.34}), and in plain words why, when it matters.
    repack: str = "auto"
    repack_used: bool = True
    extra_buffers_mib: dict[str, float] = field(default_factory=dict)
    repack_note: str = ""
    system_info: str = ""  # llama_print_system_info(): the CPU features llama.cpp sees
    # Where n_threads / n_threads_batch came from: "explicit" (--threads, Settings),
    # "tuned" (a stored measurement, app.engine.thread_tuning) or "default".
    threads_source: str = ""


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
    # Only when the request asked for top_logprobs (else None, and nothing was
    # computed): the model's log-probability of this token, and its most likely
    # alternatives at this position, [{id, text, logprob}, ...] most likely first.
    # The raw distribution, before sampler settings (app.engine.token_logprobs).
    logprob: float | None = None
    top: list[dict[str, Any]] | None = None


@dataclass
class TurnFinished(EngineEvent):
    text: str = ""  # the whole reply, stop strings removed
    metrics: TurnMetrics = field(default_factory=TurnMetrics)
    # When the request asked for top_logprobs: every sampled token of the turn, in
    # order, as {id, text, logprob, top: [{id, text, logprob}, ...]} (the Token
    # events' figures, gathered for whoever keeps the turn). Tokens of a stop
    # string count, as in output_tokens. None when not asked (or not computed).
    tokens: list[dict[str, Any]] | None = None


@dataclass
class EngineError(EngineEvent):
    message: str = ""  # one line, for the user
    load_id: int | None = None  # set when a load failed (request_id is then None)


def failed_turn(
    request_id: int | None, message: str, metrics: TurnMetrics | None = None
) -> tuple[EngineError, TurnFinished]:
    """A turn that ends in an error: the error for the user, then the turn's end.

    Every turn ends with exactly one TurnFinished, errors included, so listeners
    can release what they hold for it; this pair is how an error says so.
    """
    return (
        EngineError(request_id=request_id, message=message),
        TurnFinished(request_id=request_id, metrics=metrics or TurnMetrics(stop_reason="error")),
    )


@dataclass
class EngineCrashed(EngineEvent):
    exit_code: int | None = None
    signal_name: str | None = None
    log_tail: list[str] = field(default_factory=list)
    message: str = ""


@dataclass
class ThreadMeasurement:
    """One round of the thread measurement: prefill and decode rates at n_threads."""

    n_threads: int = 0
    prefill_tok_s: float = 0.0
    decode_tok_s: float = 0.0
    prompt_tokens: int = 0
    decode_tokens: int = 0


@dataclass
class TuneProgress(EngineEvent):
    """The thread measurement as it runs (LocalEngine.tune).

    phase "prefill": step `step` of `total` starts at n_threads; "decode": one
    more token, `text` is its text, so a window can stream it as in a chat;
    "measured": the step's rates are in.
    """

    step: int = 0
    total: int = 0
    n_threads: int = 0
    phase: str = ""
    text: str = ""
    prefill_tok_s: float | None = None
    decode_tok_s: float | None = None


@dataclass
class TuneFinished(EngineEvent):
    """rows: the best round per thread count. n_threads / n_threads_batch: the chosen
    decode and prefill counts (None when cancelled or failed). applied: the loaded
    model now runs with them (its settings did not name threads)."""

    rows: list[ThreadMeasurement] = field(default_factory=list)
    n_threads: int | None = None
    n_threads_batch: int | None = None
    context: str = "headless"
    applied: bool = False
    cancelled: bool = False
    error: str = ""
    stored_in: str = ""  # the cache file, once the parent stored the result
    # Other programs kept the cores busy meanwhile: what that means for the result.
    busy_note: str = ""
