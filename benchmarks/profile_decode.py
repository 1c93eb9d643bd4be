"""Profile the worker's decode loop (app.engine.turn_runner.run_turn) with cProfile.

Runs the worker's own code in this process: a model loaded as the worker loads
it, one turn through run_turn, events pickled as the pipe would pickle them.
Prints the top functions by their own time, and the share of the turn that
Python spends outside llama.cpp's llama_decode / llama_sampler_sample.

    .venv/bin/python benchmarks/profile_decode.py [--loop native|generate] [--tokens 256]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import multiprocessing
import os
import pstats
import sys
import time
from multiprocessing.reduction import ForkingPickler
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_decode import PROMPT


class PicklingConnection:
    """Stands in for the pipe: pickles every message as Connection.send does."""

    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0

    def send(self, obj: object) -> None:
        data = ForkingPickler.dumps(obj)
        self.messages += 1
        self.bytes += len(data)


def main() -> None:
    from app.engine.turn_runner import DECODE_LOOP_ENV, run_turn
    from app.engine.worker import Loaded
    from app.paths import bundled_model_path
    from app.settings import RuntimeSettings, SamplingSettings, physical_core_count

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loop", choices=("native", "generate"), default="native")
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--threads", type=int, default=physical_core_count())
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    os.environ[DECODE_LOOP_ENV] = args.loop

    settings = RuntimeSettings(n_threads=args.threads, n_threads_batch=args.threads)
    model = Loaded(str(bundled_model_path()), settings, use_extra_bufts=True)
    conn = PicklingConnection()
    cancel = multiprocessing.get_context("spawn").Event()
    request = {
        "request_id": 1,
        "messages": [{"role": "user", "content": PROMPT}],
        "sampling": SamplingSettings(seed=42, max_tokens=args.tokens).to_dict(),
        "submit_ns": time.monotonic_ns(),
    }
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    run_turn(model, conn, cancel, request)  # type: ignore[arg-type]
    profiler.disable()
    wall = time.perf_counter() - started
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(args.top)
    print(out.getvalue())
    # ctypes calls are not profiled apart: their time is the own time of the
    # Python function that makes them. These functions do little else.
    in_llama = {"eval_token", "_eval_chunk", "sample", "decode"}
    native = sum(
        tt
        for (_, _, name), (_, _, tt, _, _) in stats.stats.items()  # type: ignore[attr-defined]
        if name in in_llama
    )
    print(
        f"loop {args.loop}: turn {wall * 1000:.0f} ms under cProfile; in functions that "
        f"wrap llama_decode / llama_sampler_sample ({', '.join(sorted(in_llama))}) "
        f"{native * 1000:.0f} ms ({native / wall:.1%}); the rest, Python around them, "
        f"{(wall - native) * 1000:.0f} ms; {conn.messages} pipe messages, "
        f"{conn.bytes} bytes pickled"
    )


if __name__ == "__main__":
    main()
