"""The fit estimate, and its KV figure against llama.cpp's own buffer sizes.

llama.cpp's figures come from a subprocess (llama_cpp is never imported in the
test process): it loads the bundled model with verbose=True and we parse the
`llama_kv_cache: size = X MiB (N cells, ...)` and compute-buffer lines.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from app.errors import SettingsError
from app.models.fit import (
    FITS,
    TIGHT,
    UNKNOWN,
    WONT_FIT,
    available_memory_bytes,
    estimate_fit,
    format_bytes,
    padded_cells,
)
from app.models.gguf_file import read_gguf_info

MIB = 1024 * 1024

_LOAD_SCRIPT = """
import sys, llama_cpp
path, n_ctx, kv_type, flash = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
llama_cpp.Llama(path, n_ctx=n_ctx, type_k=kv_type, type_v=kv_type, flash_attn=flash,
                n_threads=1, verbose=True)
"""


def _llama_cpp_buffers(model: Path, n_ctx: int, kv_type: int, flash_attn: bool) -> dict[str, float]:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _LOAD_SCRIPT,
            str(model),
            str(n_ctx),
            str(kv_type),
            str(int(flash_attn)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    size = re.search(r"llama_kv_cache: size = +([\d.]+) MiB \( *(\d+) cells", proc.stderr)
    assert size, proc.stderr[-2000:]
    compute = re.search(r"CPU compute buffer size = +([\d.]+) MiB", proc.stderr)
    output = re.search(r"CPU +output buffer size = +([\d.]+) MiB", proc.stderr)
    assert compute and output, proc.stderr[-2000:]
    return {
        "kv_mib": float(size.group(1)),
        "cells": int(size.group(2)),
        "compute_mib": float(compute.group(1)) + float(output.group(1)),
    }


@pytest.mark.parametrize("kv_type", ["f16", "q8_0"])
@pytest.mark.parametrize("n_ctx", [300, 2048])
def test_kv_estimate_matches_llama_cpp(bundled_model: Path, n_ctx: int, kv_type: str) -> None:
    flash_attn = kv_type == "q8_0"  # a quantized V cache needs flash attention
    estimate = estimate_fit(bundled_model, n_ctx, kv_type, flash_attn=flash_attn)
    reported = _llama_cpp_buffers(bundled_model, n_ctx, {"f16": 1, "q8_0": 8}[kv_type], flash_attn)
    print(
        f"n_ctx={n_ctx} {kv_type}: estimate {estimate.kv_bytes / MIB:.4f} MiB "
        f"({estimate.kv_cells} cells), llama.cpp {reported['kv_mib']:.2f} MiB "
        f"({reported['cells']} cells); compute estimate {estimate.compute_bytes / MIB:.2f} MiB, "
        f"llama.cpp {reported['compute_mib']:.2f} MiB"
    )
    assert estimate.kv_cells == reported["cells"]
    # llama.cpp prints MiB with two decimals.
    assert abs(estimate.kv_bytes / MIB - reported["kv_mib"]) <= 0.005 + 1e-9
    assert estimate.compute_bytes / MIB == pytest.approx(reported["compute_mib"], rel=0.1)


def test_estimate_fields_on_bundled_model(bundled_model: Path) -> None:
    info = read_gguf_info(bundled_model)
    estimate = estimate_fit(info, 4096, "f16", available_bytes=64 * 1024 * MIB)
    assert estimate.weights_bytes == info.tensor_bytes
    # 30 layers x (3 KV heads x 64) x 2 bytes, for K and for V.
    assert estimate.kv_bytes_per_token == 30 * 192 * 2 * 2
    assert estimate.kv_bytes == estimate.kv_bytes_per_token * 4096
    assert (
        estimate.total_bytes == estimate.weights_bytes + estimate.kv_bytes + estimate.compute_bytes
    )
    assert estimate.verdict == FITS
    assert estimate.available_vram_bytes is None
    data = estimate.to_dict()
    for key in (
        "weights_bytes",
        "kv_bytes",
        "compute_bytes",
        "total_bytes",
        "available_bytes",
        "verdict",
    ):
        assert key in data


def test_quantized_cache_is_smaller(bundled_model: Path) -> None:
    f16 = estimate_fit(bundled_model, 4096, "f16")
    q8 = estimate_fit(bundled_model, 4096, "q8_0")
    q4 = estimate_fit(bundled_model, 4096, "q4_0")
    assert q4.kv_bytes < q8.kv_bytes < f16.kv_bytes
    assert q8.kv_bytes * 64 == f16.kv_bytes * 34  # 34-byte blocks of 32 vs 2 bytes each


def test_verdicts(bundled_model: Path) -> None:
    total = estimate_fit(bundled_model, 2048, available_bytes=1 << 40).total_bytes
    assert estimate_fit(bundled_model, 2048, available_bytes=total * 2).verdict == FITS
    assert estimate_fit(bundled_model, 2048, available_bytes=int(total * 1.1)).verdict == TIGHT
    assert estimate_fit(bundled_model, 2048, available_bytes=total - 1).verdict == WONT_FIT


def test_unknown_memory(tmp_path: Path, bundled_model: Path) -> None:
    fake = tmp_path / "meminfo"
    fake.write_text("MemTotal:       16384 kB\nMemAvailable:    8192 kB\n")
    assert available_memory_bytes(fake) == 8192 * 1024
    assert available_memory_bytes() is not None
    from app.models.fit import verdict_for

    assert verdict_for(1, None) == UNKNOWN


def test_bad_settings(bundled_model: Path) -> None:
    with pytest.raises(SettingsError, match="n_ctx must be a positive"):
        estimate_fit(bundled_model, 0)
    with pytest.raises(SettingsError, match="KV cache type must be one of"):
        estimate_fit(bundled_model, 512, "q3_k")


def test_padding_and_format() -> None:
    assert [padded_cells(n) for n in (1, 256, 257, 300, 2048)] == [256, 256, 512, 512, 2048]
    assert format_bytes(512) == "512 B"
    assert format_bytes(3 * MIB // 2) == "1.5 MiB"
    assert format_bytes(None) == "unknown"


def test_rough_verdict_from_file_size() -> None:
    from app.models.fit import rough_verdict_for_size

    assert rough_verdict_for_size(1000, available_bytes=10_000) == FITS
    assert rough_verdict_for_size(7000, available_bytes=10_000) == TIGHT
    assert rough_verdict_for_size(9000, available_bytes=10_000) == WONT_FIT
    assert rough_verdict_for_size(None) == UNKNOWN


def test_a_context_beyond_the_trained_length_is_warned_about_naming_both(bundled_model):
    within = estimate_fit(bundled_model, 8192, available_bytes=2**40)
    assert within.n_ctx_train == 8192 and within.context_warning == ""
    beyond = estimate_fit(bundled_model, 100_000, available_bytes=2**40)
    assert beyond.verdict == "fits"  # memory is not the problem
    assert "100000" in beyond.context_warning and "8192" in beyond.context_warning
