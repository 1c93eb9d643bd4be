"""Will this model fit? Weights + KV cache + compute buffers against free memory.

The KV figure follows llama.cpp's own allocation (llama_kv_cache): for every
layer and every cell, one K row of n_kv_heads * key_length elements of the K
type and one V row of n_kv_heads * value_length elements of the V type, with
n_ctx padded up to a multiple of 256 cells. Quantized cache types use ggml's
block sizes, so q8_0 rows are 34/32 bytes per element. The compute buffer is
an estimate of llama.cpp's scheduler reservation: the larger of the logits
(n_ubatch x n_vocab floats) and, without flash attention, the KQ scores
(n_heads x n_cells x n_ubatch floats), plus the hidden states.

Not modelled: sliding-window layers (Gemma 2/3 keep fewer cells for them),
recurrent state (Mamba, RWKV), and VRAM: the parent process cannot ask the
GPU backend without importing llama.cpp, so available_vram_bytes is None.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from app.errors import ModelFileError, SettingsError
from app.models.gguf_file import GGUFInfo, read_gguf_info, tensor_nbytes
from app.settings import KV_CACHE_TYPES

KV_CELL_PADDING = 256  # llama.cpp rounds n_ctx up to this many cells
TIGHT_FRACTION = 0.8  # above this share of available memory the verdict is "tight"

FITS = "fits"
TIGHT = "tight"
WONT_FIT = "won't fit"
UNKNOWN = "unknown"  # available memory could not be read


@dataclass(frozen=True)
class FitEstimate:
    """Memory needed to load a model with given settings, and the verdict."""

    model_path: str
    n_ctx: int
    kv_cells: int  # n_ctx padded as llama.cpp does
    kv_type_k: str
    kv_type_v: str
    weights_bytes: int
    kv_bytes: int
    kv_bytes_per_token: int
    compute_bytes: int
    total_bytes: int
    available_bytes: int | None  # RAM (MemAvailable)
    available_vram_bytes: int | None  # unknown in the parent process: always None here
    verdict: str  # "fits", "tight", "won't fit" or "unknown" (memory only)
    n_ctx_train: int | None = None  # the context length the model was trained with
    context_warning: str = ""  # set when n_ctx goes beyond n_ctx_train

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def trained_context_warning(n_ctx: int, n_ctx_train: int | None) -> str:
    """A one-line warning when n_ctx is beyond the trained context length, else ""."""
    if not n_ctx_train or n_ctx <= n_ctx_train:
        return ""
    return (
        f"n_ctx {n_ctx} is beyond the {n_ctx_train} tokens this model was trained on: "
        f"past {n_ctx_train} tokens of conversation its replies may stop making sense"
    )


def padded_cells(n_ctx: int) -> int:
    return -(-n_ctx // KV_CELL_PADDING) * KV_CELL_PADDING


def _row_bytes(kv_type: str, n_elements: int) -> int:
    try:
        return tensor_nbytes(KV_CACHE_TYPES[kv_type], n_elements)
    except KeyError:
        choices = ", ".join(KV_CACHE_TYPES)
        raise SettingsError(f"KV cache type must be one of {choices}, got {kv_type!r}") from None
    except ValueError:
        raise SettingsError(
            f"KV cache type {kv_type} needs a head size that is a multiple of its block size"
        ) from None


def kv_bytes_per_cell(info: GGUFInfo, type_k: str = "f16", type_v: str | None = None) -> int:
    """Bytes one context cell (one token) takes in the KV cache, all layers together."""
    type_v = type_v or type_k
    if info.n_layers is None or info.key_length is None or info.value_length is None:
        raise ModelFileError(
            f"{info.path} does not say its layer count and head sizes; cannot size the KV cache"
        )
    per_layer = info.n_kv_heads_per_layer or [info.n_kv_heads or 0] * info.n_layers
    total = 0
    for n_kv_heads in per_layer:
        if n_kv_heads:  # 0: a recurrent layer without KV cache (hybrid models)
            total += _row_bytes(type_k, n_kv_heads * info.key_length)
            total += _row_bytes(type_v, n_kv_heads * info.value_length)
    return total


def compute_bytes_estimate(
    info: GGUFInfo, kv_cells: int, n_ubatch: int = 512, flash_attn: bool = False
) -> int:
    """Rough size of llama.cpp's compute and output buffers (within ~5% on llama models)."""
    n_vocab = info.vocab_size or 32000
    n_embd = info.embedding_length or 0
    n_heads = info.n_heads or 0
    logits = n_ubatch * n_vocab * 4
    attention = 0 if flash_attn else kv_cells * n_ubatch * (n_heads + 1) * 4  # KQ + mask
    hidden = n_ubatch * n_embd * 8
    output = n_vocab * 4  # the logits buffer for one sequence, kept outside the graph
    return max(logits, attention) + hidden + output


def available_memory_bytes(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """MemAvailable on Linux (free + reclaimable); free physical pages elsewhere."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def verdict_for(total_bytes: int, available_bytes: int | None) -> str:
    if available_bytes is None:
        return UNKNOWN
    if total_bytes <= available_bytes * TIGHT_FRACTION:
        return FITS
    if total_bytes <= available_bytes:
        return TIGHT
    return WONT_FIT


def rough_verdict_for_size(size_bytes: int | None, available_bytes: int | None = None) -> str:
    """A verdict before the header is known (a file on the Hub): weights ~ the file size,
    plus a fifth for KV cache and compute buffers at a modest context."""
    if size_bytes is None:
        return UNKNOWN
    if available_bytes is None:
        available_bytes = available_memory_bytes()
    return verdict_for(size_bytes + size_bytes // 5, available_bytes)


def estimate_fit(
    model: GGUFInfo | str | Path,
    n_ctx: int,
    kv_type: str = "f16",
    *,
    kv_type_v: str | None = None,
    n_batch: int = 512,
    flash_attn: bool | None = None,
    available_bytes: int | None = None,
) -> FitEstimate:
    """Estimate memory for loading `model` at n_ctx with the given KV cache type(s).

    flash_attn defaults to on for quantized cache types (llama.cpp requires it).
    available_bytes overrides the measured free RAM (tests, what-if questions).
    """
    info = model if isinstance(model, GGUFInfo) else read_gguf_info(model)
    if n_ctx <= 0:
        raise SettingsError(f"n_ctx must be a positive number of tokens, got {n_ctx}")
    kv_type_v = kv_type_v or kv_type
    if flash_attn is None:
        flash_attn = not {kv_type, kv_type_v} <= {"f16", "f32"}
    cells = padded_cells(n_ctx)
    per_cell = kv_bytes_per_cell(info, kv_type, kv_type_v)
    kv = per_cell * cells
    # llama-cpp-python caps n_batch at n_ctx, and n_ubatch (default 512) at n_batch.
    compute = compute_bytes_estimate(info, cells, min(n_batch, n_ctx, 512), flash_attn)
    total = info.tensor_bytes + kv + compute
    if available_bytes is None:
        available_bytes = available_memory_bytes()
    return FitEstimate(
        model_path=str(info.path),
        n_ctx=n_ctx,
        kv_cells=cells,
        kv_type_k=kv_type,
        kv_type_v=kv_type_v,
        weights_bytes=info.tensor_bytes,
        kv_bytes=kv,
        kv_bytes_per_token=per_cell,
        compute_bytes=compute,
        total_bytes=total,
        available_bytes=available_bytes,
        available_vram_bytes=None,
        verdict=verdict_for(total, available_bytes),
        n_ctx_train=info.context_length,
        context_warning=trained_context_warning(n_ctx, info.context_length),
    )


def format_bytes(n: int | None) -> str:
    if n is None:
        return "unknown"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
