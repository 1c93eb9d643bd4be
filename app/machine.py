"""What identifies this machine, this llama.cpp build and a model file.

What Glassbox learns by running things (a repack decision after a crash, the
fastest thread counts) holds for one CPU model, one llama-cpp-python build and
one model file, and no further: the same file on another CPU, or after an
upgrade of llama-cpp-python, must be learned again. Plain Python: the parent
process never imports llama_cpp, so the version comes from package metadata.
"""

from __future__ import annotations

import importlib.metadata
import platform
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


def cpu_model(cpuinfo: Path = CPUINFO) -> str:
    """The CPU's model name as the kernel reports it ("AMD EPYC", "Intel(R) Xeon(R) ...")."""
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "cpu model") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_flags(cpuinfo: Path = CPUINFO) -> set[str]:
    """The CPU's feature flags (Linux), e.g. {"avx2", "amx_int8", ...}; empty elsewhere."""
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("flags", "Features"):
                return set(value.split())
    except OSError:
        pass
    return set()


def llama_cpp_version() -> str:
    try:
        return importlib.metadata.version("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def model_file_key(path: str | Path) -> str:
    """The file as a key: resolved path, size and modification time (a re-download is new)."""
    resolved = Path(path).expanduser().resolve()
    try:
        stat = resolved.stat()
        return f"{resolved}|{stat.st_size}|{stat.st_mtime_ns}"
    except OSError:
        return str(resolved)


def machine_model_key(path: str | Path) -> str:
    """CPU model, llama-cpp-python version and model file, as one cache key."""
    return f"{cpu_model()}|llama-cpp-python {llama_cpp_version()}|{model_file_key(path)}"
