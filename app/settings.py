"""Runtime settings (need a model reload) and sampling settings (per request).

Both validate themselves; `validate()` raises SettingsError with a message
that names the field and the reason, so dialogs and the CLI show it as is.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from app.errors import SettingsError

# llama.cpp's ggml_type ids for the KV cache types we offer.
KV_CACHE_TYPES: dict[str, int] = {
    "f32": 0,
    "f16": 1,
    "q4_0": 2,
    "q4_1": 3,
    "q5_0": 6,
    "q5_1": 7,
    "q8_0": 8,
}

# -1 means "offload every layer", as in llama.cpp.
GPU_LAYERS_ALL = -1

# Parallel sequences (local batched decode): 1 is the plain one-at-a-time engine.
MAX_PARALLEL_SEQUENCES = 8

# Weight repacking (llama.cpp's "extra buffer types": AMX, CPU_REPACK, ...).
# "auto" repacks and falls back to no repacking if the kernels crash; see
# app.engine.repack_guard. Passed to llama.cpp as use_extra_bufts.
REPACK_MODES = ("auto", "on", "off")


def physical_core_count() -> int:
    """Physical cores usable by this process.

    llama-cpp-python defaults to half the logical CPUs, which on a 2-core
    machine without SMT is one thread: measured there, half the prefill speed
    and about 90% of the decode speed of two threads.
    """
    try:
        usable = os.sched_getaffinity(0)
    except AttributeError:  # not Linux
        usable = set(range(os.cpu_count() or 1))
    cores: set[str] = set()
    for cpu in usable:
        siblings = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list")
        try:
            cores.add(siblings.read_text().strip())
        except OSError:
            return max(1, len(usable))
    return max(1, len(cores))


@dataclass(frozen=True)
class RuntimeSettings:
    """Settings fixed when the model is loaded."""

    n_ctx: int = 4096
    n_gpu_layers: int = 0
    # Decode threads. None: not chosen by the user; the engine fills in the
    # counts measured on this machine (app.engine.thread_tuning), else every
    # usable core, before the load reaches the worker. A number always wins.
    n_threads: int | None = None
    # Prefill (batch) threads; None: the same as n_threads (tuned when both are None).
    n_threads_batch: int | None = None
    n_batch: int = 512
    flash_attn: bool = False
    kv_cache_type: str = "f16"
    repack: str = "auto"
    # Requests decoded together, each in its own sequence of one llama_decode per step
    # (app.engine.batched); they share n_ctx, so each gets n_ctx / n_parallel tokens.
    n_parallel: int = 1

    def validate(self) -> RuntimeSettings:
        if self.n_ctx <= 0:
            raise SettingsError(f"n_ctx must be a positive number of tokens, got {self.n_ctx}")
        if self.n_ctx > 1 << 20:
            raise SettingsError(f"n_ctx {self.n_ctx} is larger than 1048576 tokens")
        if self.n_gpu_layers < GPU_LAYERS_ALL:
            raise SettingsError(
                f"gpu layers must be -1 (all), 0 or a positive layer count, got {self.n_gpu_layers}"
            )
        if self.n_threads is not None and self.n_threads <= 0:
            raise SettingsError(f"threads must be at least 1, got {self.n_threads}")
        if self.n_threads_batch is not None and self.n_threads_batch <= 0:
            raise SettingsError(f"prefill threads must be at least 1, got {self.n_threads_batch}")
        if self.n_batch <= 0:
            raise SettingsError(f"batch size must be at least 1, got {self.n_batch}")
        if self.kv_cache_type not in KV_CACHE_TYPES:
            choices = ", ".join(KV_CACHE_TYPES)
            raise SettingsError(
                f"KV cache type must be one of {choices}, got {self.kv_cache_type!r}"
            )
        if self.kv_cache_type not in ("f16", "f32") and not self.flash_attn:
            raise SettingsError(
                f"a quantized KV cache ({self.kv_cache_type}) needs flash attention turned on"
            )
        parallel = self.n_parallel
        if isinstance(parallel, bool) or not isinstance(parallel, int):
            raise SettingsError(f"parallel sequences must be a whole number, got {parallel!r}")
        if not 1 <= parallel <= MAX_PARALLEL_SEQUENCES:
            raise SettingsError(
                f"parallel sequences must be 1..{MAX_PARALLEL_SEQUENCES}, got {self.n_parallel}"
            )
        if self.n_parallel > 1 and self.n_batch < self.n_parallel:
            raise SettingsError(
                f"the batch size ({self.n_batch}) must hold one token per parallel sequence "
                f"({self.n_parallel})"
            )
        if self.repack not in REPACK_MODES:
            raise SettingsError(
                f"repack must be one of {', '.join(REPACK_MODES)}, got {self.repack!r}"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RuntimeSettings:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def with_changes(self, **changes: Any) -> RuntimeSettings:
        return replace(self, **changes)


def gui_runtime_defaults() -> RuntimeSettings:
    """Defaults for a process that also draws a window.

    Threads are left unset: the window's own CPU use changes the best decode
    count (one thread fewer than the cores was 35% faster on one 2-core
    machine and 40% slower on another), so the app measures it with the
    window streaming and uses what it measured.
    """
    return RuntimeSettings()


# SamplingSettings' float fields and their names in messages.
_SAMPLING_FLOATS = {
    "temperature": "temperature",
    "top_p": "top-p",
    "min_p": "min-p",
    "repeat_penalty": "repeat penalty",
}


@dataclass(frozen=True)
class SamplingSettings:
    """Settings that apply to one request."""

    temperature: float = 0.7
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    repeat_penalty: float = 1.1
    seed: int | None = None
    max_tokens: int = 512
    stop: tuple[str, ...] = ()

    def validate(self) -> SamplingSettings:
        # NaN compares false with everything, so it would slip through the range checks.
        for name, label in _SAMPLING_FLOATS.items():
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value):
                raise SettingsError(f"{label} must be a finite number, got {value!r}")
        if self.temperature < 0:
            raise SettingsError(f"temperature must be 0 or more, got {self.temperature}")
        if self.top_k < 0:
            raise SettingsError(f"top-k must be 0 (off) or more, got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise SettingsError(f"top-p must be in (0, 1], got {self.top_p}")
        if not 0 <= self.min_p <= 1:
            raise SettingsError(f"min-p must be in [0, 1], got {self.min_p}")
        if self.repeat_penalty <= 0:
            raise SettingsError(f"repeat penalty must be above 0, got {self.repeat_penalty}")
        if self.max_tokens <= 0:
            raise SettingsError(f"max tokens must be at least 1, got {self.max_tokens}")
        if self.seed is not None and not 0 <= self.seed < 2**32:
            raise SettingsError(f"seed must be in [0, 2^32), got {self.seed}")
        if any(not s for s in self.stop):
            raise SettingsError("stop strings must not be empty")
        return self

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stop"] = list(self.stop)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SamplingSettings:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "stop" in values:
            values["stop"] = tuple(values["stop"])
        return cls(**values)

    def with_changes(self, **changes: Any) -> SamplingSettings:
        return replace(self, **changes)
