"""What synchronous=FULL costs a streamed flush, next to NORMAL, measured side by side.

A streamed reply is flushed to SQLite about every 0.5 s (app.session.FLUSH_INTERVAL_S)
with Store.update_message_content: one UPDATE of the whole reply text, committed. Under
WAL, FULL fsyncs the WAL at every commit (a power cut loses nothing reported
committed); NORMAL fsyncs only at checkpoints. This script times the same flush
sequence on two files, one per mode, in alternating rounds so both see the same
machine load, and prints the medians and their ratio.

    .venv/bin/python benchmarks/bench_sync.py [--rounds 7] [--flushes 200] [--dir PATH]

--dir: where the files go (default a temp dir; put it on the disk you care about).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from app.storage.store import Store

REPLY_CHUNK = "token " * 8  # about what 0.5 s of decode at 100 tok/s adds


def flush_round(store: Store, flushes: int) -> list[float]:
    """Per-flush wall times (ms) of one streamed reply of `flushes` flushes."""
    conversation = store.create_conversation("bench")
    store.add_message(conversation.id, "user", "tell me a long story")
    reply = store.add_message(conversation.id, "assistant", "", partial=True)
    text, times = "", []
    for _ in range(flushes):
        text += REPLY_CHUNK
        started = time.perf_counter_ns()
        store.update_message_content(reply.id, text, partial=True)
        times.append((time.perf_counter_ns() - started) / 1e6)
    store.finish_message(reply.id, text, partial=False, stop_reason="eos")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--flushes", type=int, default=200)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench-sync-") as scratch:
        stores = {
            mode: Store.open(Path(scratch) / f"{mode.lower()}.sqlite3", synchronous=mode)
            for mode in ("FULL", "NORMAL")
        }
        per_mode: dict[str, list[float]] = {mode: [] for mode in stores}
        try:
            for round_no in range(args.rounds):
                # Alternate which mode goes first, so neither always meets a warmer cache.
                order = list(stores) if round_no % 2 == 0 else list(reversed(stores))
                for mode in order:
                    per_mode[mode].extend(flush_round(stores[mode], args.flushes))
        finally:
            for store in stores.values():
                store.close()
    load = os.getloadavg()[0]
    print(f"load average (1 min) {load:.2f}; {args.rounds} rounds x {args.flushes} flushes a mode")
    print(f"{'mode':8} {'median ms':>10} {'p95 ms':>8} {'mean ms':>8}")
    for mode, times in per_mode.items():
        p95 = statistics.quantiles(times, n=20)[-1]
        print(
            f"{mode:8} {statistics.median(times):10.3f} {p95:8.3f} {statistics.fmean(times):8.3f}"
        )
    full, normal = (statistics.median(per_mode[m]) for m in ("FULL", "NORMAL"))
    print(f"FULL / NORMAL median per flush: {full / normal:.2f}x (+{full - normal:.3f} ms a flush)")


if __name__ == "__main__":
    main()
