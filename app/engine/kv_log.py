"""Reads llama.cpp's own KV cache report from its log lines.

llama.cpp prints, at context creation:
  llama_kv_cache:        CPU KV buffer size =    22.50 MiB
  llama_kv_cache: size =   22.50 MiB (  1024 cells,  30 layers,  1/1 seqs), K (f16): ...
We take the cell count from it (n_ctx is padded) and the reported MiB to check
our exact byte count against.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_BUFFER = re.compile(r"KV buffer size\s*=\s*([\d.]+)\s*MiB")
_SIZE = re.compile(r"llama_kv_cache: size\s*=\s*([\d.]+)\s*MiB\s*\(\s*(\d+)\s*cells")


@dataclass
class KvReport:
    cells: int | None = None
    buffer_mib: float | None = None  # summed over devices


def parse_kv_report(lines: Iterable[str]) -> KvReport:
    report = KvReport()
    buffers: list[float] = []
    for line in lines:
        if m := _BUFFER.search(line):
            buffers.append(float(m.group(1)))
        elif m := _SIZE.search(line):
            report.cells = int(m.group(2))
    if buffers:
        report.buffer_mib = sum(buffers)
    return report
