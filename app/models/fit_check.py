"""The memory estimate made before loading, next to what llama.cpp reported after.

Shown by `glassbox chat`/`bench` when a model loads and in the app's status bar,
so a user can see how far to trust the estimate on their machine and model.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.engine.events import ModelLoaded
from app.models.fit import estimate_fit, format_bytes

MIB = 1 << 20


REPACKED = "repacked weights"


@dataclass(frozen=True)
class MemoryRow:
    part: str  # "weights", "repacked weights", "KV cache", "compute", "total"
    # None: not knowable before loading. Whether llama.cpp keeps a repacked copy
    # of the weights depends on the CPU, the build and the quantization type.
    estimate_bytes: int | None
    reported_bytes: int | None  # None: llama.cpp did not log this figure
    note: str = ""


def estimate_vs_loaded(loaded: ModelLoaded) -> list[MemoryRow]:
    """Re-estimate for the loaded model and settings; reads the GGUF header (not the GUI thread)."""
    settings = loaded.settings
    estimate = estimate_fit(
        loaded.model_path,
        loaded.n_ctx,
        str(settings.get("kv_cache_type", "f16")),
        n_batch=int(settings.get("n_batch", 512)),
        flash_attn=bool(settings.get("flash_attn", False)),
        available_bytes=0,  # the verdict is not used here; skip reading /proc/meminfo
    )

    def mib(value: float | None) -> int | None:
        return None if value is None else round(value * MIB)

    rows = [MemoryRow("weights", estimate.weights_bytes, mib(loaded.model_buffer_mib_reported))]
    repacked = loaded.extra_buffers_mib
    if repacked:
        names = ", ".join(sorted(repacked))
        rows.append(
            MemoryRow(
                REPACKED,
                None,
                mib(sum(repacked.values())),
                note=f"{names}: a second copy in a CPU-specific layout, not known before loading",
            )
        )
    rows += [
        MemoryRow("KV cache", estimate.kv_bytes, loaded.kv_bytes_total),
        MemoryRow("compute", estimate.compute_bytes, mib(loaded.compute_buffer_mib_reported)),
    ]
    reported = [row.reported_bytes for row in rows]
    total = None if None in reported else sum(r for r in reported if r is not None)
    note = "the estimate leaves out the repacked copy" if repacked else ""
    rows.append(MemoryRow("total", estimate.total_bytes, total, note=note))
    return rows


def format_memory_rows(rows: list[MemoryRow]) -> str:
    """One line: "memory estimate/llama.cpp: weights 92.1/92.1 MiB, KV ..."."""
    parts = []
    for row in rows:
        estimate = format_bytes(row.estimate_bytes) if row.estimate_bytes is not None else "?"
        if row.part == "total" and any(r.part == REPACKED for r in rows):
            estimate += " + repacked"
        reported = format_bytes(row.reported_bytes) if row.reported_bytes is not None else "?"
        parts.append(f"{row.part} {estimate} / {reported}")
    return "memory, estimated / llama.cpp: " + ", ".join(parts)
