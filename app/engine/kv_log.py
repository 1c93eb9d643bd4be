"""Reads llama.cpp's own KV cache report from its log lines.

llama.cpp prints, at context creation:
  llama_kv_cache:        CPU KV buffer size =    22.50 MiB
  llama_kv_cache: size =   22.50 MiB (  1024 cells,  30 layers,  1/1 seqs), K (f16): ...
We take the cell count from it (n_ctx is padded), the reported MiB to check
our exact byte count against, and the weights and compute buffer sizes, which
the GUI and CLI show next to the memory estimate made before loading.

Weights can be logged twice: once as mapped from the file ("CPU_Mapped model
buffer size") and once more per "extra buffer type", a copy repacked into a
CPU-specific layout ("AMX model buffer size", "CPU_REPACK ..."). Those copies
are kept apart, so the weights row matches the file and repacking is visible.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

_BUFFER = re.compile(r"KV buffer size\s*=\s*([\d.]+)\s*MiB")
_MODEL = re.compile(r"(\S+) model buffer size\s*=\s*([\d.]+)\s*MiB")
_COMPUTE = re.compile(r"compute buffer size\s*=\s*([\d.]+)\s*MiB")
_SIZE = re.compile(r"llama_kv_cache: size\s*=\s*([\d.]+)\s*MiB\s*\(\s*(\d+)\s*cells")

# llama.cpp's extra (repacked-weight) buffer types. GPU buffers ("CUDA0") and
# host buffers ("CPU", "CPU_Mapped", "CUDA_Host") hold the weights themselves.
EXTRA_BUFFER_TYPES = ("AMX", "CPU_REPACK", "CPU_AARCH64", "KLEIDIAI")


def is_extra_buffer(name: str) -> bool:
    return name in EXTRA_BUFFER_TYPES or "REPACK" in name


@dataclass
class KvReport:
    cells: int | None = None
    buffer_mib: float | None = None  # summed over devices
    model_mib: float | None = None  # weights buffers, summed over devices
    compute_mib: float | None = None  # compute (scratch) buffers, summed over devices
    # Repacked copies of the weights, by llama.cpp's buffer type name ("AMX": 95.34).
    extra_mib: dict[str, float] = field(default_factory=dict)


def parse_kv_report(lines: Iterable[str]) -> KvReport:
    report = KvReport()
    sums: dict[str, list[float]] = {"kv": [], "model": [], "compute": []}
    for line in lines:
        if m := _BUFFER.search(line):
            sums["kv"].append(float(m.group(1)))
        elif m := _MODEL.search(line):
            name, size = m.group(1), float(m.group(2))
            if is_extra_buffer(name):
                report.extra_mib[name] = report.extra_mib.get(name, 0.0) + size
            else:
                sums["model"].append(size)
        elif m := _COMPUTE.search(line):
            sums["compute"].append(float(m.group(1)))
        elif m := _SIZE.search(line):
            report.cells = int(m.group(2))
    report.buffer_mib = sum(sums["kv"]) if sums["kv"] else None
    report.model_mib = sum(sums["model"]) if sums["model"] else None
    report.compute_mib = sum(sums["compute"]) if sums["compute"] else None
    return report
