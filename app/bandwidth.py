"""Memory bandwidth and the decode ceiling it sets.

Decoding one token reads (roughly) every weight of the model once, plus the KV
cache in use, so a machine that moves B bytes a second cannot decode faster
than B / (weight bytes + KV bytes in use) tokens a second. Prefill evaluates
many prompt tokens per pass over the weights, so arithmetic, not memory, limits
it: the evidence is a prefill rate per token far above the decode rate.

The bandwidth comes from a short copy benchmark (a large buffer copied a few
times; a copy reads and writes each byte, so it moves twice its size). It runs
once per machine, in well under a second, and is kept in the cache directory;
measure(force=True) runs it again.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

from app.atomic_file import write_text_atomic
from app.machine import cpu_model
from app.paths import cache_dir

CACHE_FILE = "bandwidth.json"
COPY_MIB = 256  # far larger than any CPU cache, so the copy runs from RAM
REPETITIONS = 3


@dataclass
class BandwidthMeasurement:
    bytes_per_s: float  # best of the repetitions: copies that other programs slowed say less
    copy_mib: int
    repetitions: int
    cpu: str
    measured_at: float  # time.time()

    @property
    def gb_per_s(self) -> float:
        return self.bytes_per_s / 1e9


def copy_bandwidth(copy_mib: int = COPY_MIB, repetitions: int = REPETITIONS) -> float:
    """Bytes per second moved by copying a copy_mib buffer (read + write), best of repetitions."""
    size = copy_mib * 2**20
    src = bytearray(b"\x5a") * size  # touched now, so page faults stay out of the timing
    dst = bytearray(size)
    best = 0.0
    for _ in range(repetitions):
        started = time.perf_counter_ns()
        dst[:] = src  # one memcpy
        elapsed = time.perf_counter_ns() - started
        if elapsed > 0:
            best = max(best, 2 * size * 1e9 / elapsed)
    return best


def measure(*, force: bool = False, copy_mib: int = COPY_MIB) -> BandwidthMeasurement:
    """This machine's bandwidth: the cached measurement, or a new one (force=True always)."""
    path = cache_dir() / CACHE_FILE
    cpu = cpu_model()
    if not force:
        cached = _read_cached(path.read_text(encoding="utf-8") if path.exists() else "")
        if cached is not None and cached.cpu == cpu:
            return cached
    result = BandwidthMeasurement(
        bytes_per_s=copy_bandwidth(copy_mib),
        copy_mib=copy_mib,
        repetitions=REPETITIONS,
        cpu=cpu,
        measured_at=time.time(),
    )
    write_text_atomic(path, json.dumps(asdict(result), indent=2) + "\n")
    return result


def cached() -> BandwidthMeasurement | None:
    """The stored measurement, without measuring (None when there is none)."""
    path = cache_dir() / CACHE_FILE
    return _read_cached(path.read_text(encoding="utf-8") if path.exists() else "")


def _read_cached(text: str) -> BandwidthMeasurement | None:
    try:
        data = json.loads(text)
        return BandwidthMeasurement(**data) if data.get("bytes_per_s", 0) > 0 else None
    except (ValueError, TypeError, AttributeError):
        return None  # missing or damaged: measure again


def bytes_per_token(weight_bytes: int, kv_bytes_used: int | None = None) -> int:
    """What one decode step reads: the weights, plus the KV cache in use."""
    return weight_bytes + (kv_bytes_used or 0)


def decode_ceiling_tok_s(
    bandwidth_bytes_s: float, weight_bytes: int, kv_bytes_used: int | None
) -> float | None:
    """The fastest decode this memory allows: bandwidth / bytes read per token."""
    per_token = bytes_per_token(weight_bytes, kv_bytes_used)
    return bandwidth_bytes_s / per_token if per_token > 0 and bandwidth_bytes_s > 0 else None


@dataclass
class CeilingReport:
    bandwidth_gb_s: float
    bytes_per_token: int
    ceiling_tok_s: float | None
    decode_tok_s: float | None
    share_of_ceiling: float | None  # measured decode / ceiling
    prefill_tok_s: float | None
    prefill_over_decode: float | None  # how many times faster prefill runs per token
    prefill_label: str = "compute-bound"
    decode_label: str = "bandwidth-bound"

    def evidence(self) -> str:
        """The measured reason for the two labels, in plain words."""
        if self.prefill_over_decode is None:
            return (
                "Decode reads the whole model for each token; prefill reads it once for a "
                "whole batch of prompt tokens."
            )
        return (
            f"Prefill ran {self.prefill_over_decode:.1f}x as many tokens a second as decode, "
            "reading the same weights: a batch of prompt tokens shares each read, so prefill "
            "waits on arithmetic, while decode reads all weights for every single token and "
            "waits on memory."
        )

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["evidence"] = self.evidence()
        return data


def ceiling_report(
    bandwidth_bytes_s: float,
    weight_bytes: int,
    kv_bytes_used: int | None,
    decode_tok_s: float | None,
    prefill_tok_s: float | None,
) -> CeilingReport:
    ceiling = decode_ceiling_tok_s(bandwidth_bytes_s, weight_bytes, kv_bytes_used)
    share = decode_tok_s / ceiling if ceiling and decode_tok_s else None
    ratio = prefill_tok_s / decode_tok_s if prefill_tok_s and decode_tok_s else None
    return CeilingReport(
        bandwidth_gb_s=bandwidth_bytes_s / 1e9,
        bytes_per_token=bytes_per_token(weight_bytes, kv_bytes_used),
        ceiling_tok_s=ceiling,
        decode_tok_s=decode_tok_s,
        share_of_ceiling=share,
        prefill_tok_s=prefill_tok_s,
        prefill_over_decode=ratio,
    )
