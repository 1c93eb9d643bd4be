"""Section t: decode speed with the token view off against on (token probabilities in the loop).

One LocalEngine (one worker, one loaded model) serves the same request again
and again, alternating, with the order rotating each round:

- off: top_logprobs 0, what every turn does while the token view is off (no
  logits hook is installed; the decode loop is the one without the feature);
- on, k=1: the chosen token's probability and the most likely one;
- on, k=10: what the token view asks for (the top 10 alternatives).

Same prompt, seed and sampling, so each path draws the same tokens; the hook
only reads the logits. Reported: decode tok/s medians, the per-round ratio
on / off, and the extra time per token ((1/on - 1/off), in microseconds).
Then the hook alone, timed in this process on the model's real logits (many
calls, no decode around them), against one decode step: the arithmetic's own
cost, without the noise of whole turns on a shared machine (and with warm
caches, so a floor: in the loop it is about 4 times that).

    .venv/bin/python benchmarks/bench_logprobs.py [--rounds 3] [--max-tokens 128]
    .venv/bin/python benchmarks/report.py --only logprobs
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
for _path in (HERE.parent, HERE):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from benchlib import (  # noqa: E402
    BenchConfig,
    Ratio,
    Section,
    alternate,
    load_average,
    median,
    safe_ratio,
    wait_for_quiet,
)

TITLE = "t. Token view: decode speed with token probabilities off and on"
ORDER = "t"

PROMPT = (
    "Write a long story in many paragraphs about a lighthouse keeper who sees a boat "
    "drifting towards the reef on a stormy night, with dialogue and many details."
)
PATHS = {"off": 0, "on_k1": 1, "on_k10": 10}
EVENT_TIMEOUT_S = 600.0


class EngineRounds:
    """One loaded LocalEngine; turn(k) runs the request with top_logprobs=k."""

    def __init__(self, config: BenchConfig) -> None:
        from app.engine import events as ev
        from app.engine.local import LocalEngine
        from app.settings import RuntimeSettings, SamplingSettings

        self.ev = ev
        self.engine = LocalEngine()
        self.sampling = SamplingSettings(
            temperature=config.temperature, seed=config.seed, max_tokens=config.max_tokens
        )
        self.engine.load(
            config.model, RuntimeSettings(n_ctx=config.n_ctx, n_threads=config.threads)
        )
        while True:
            event = self.engine.next_event(timeout=EVENT_TIMEOUT_S)
            if isinstance(event, ev.EngineError):
                raise RuntimeError(f"the model did not load: {event.message}")
            if isinstance(event, ev.ModelLoaded):
                break
        self.turn(0)  # warm up: threads started, weights paged in, the prompt cached

    def turn(self, k: int) -> dict[str, Any]:
        ev = self.ev
        messages = [{"role": "user", "content": PROMPT}]
        rid = self.engine.submit(messages, self.sampling, top_logprobs=k)
        ids: list[int] = []
        while True:
            event = self.engine.next_event(timeout=EVENT_TIMEOUT_S)
            if event.request_id != rid:
                continue
            if isinstance(event, ev.Token):
                ids.append(event.token_id)
            elif isinstance(event, ev.EngineError):
                raise RuntimeError(event.message)
            if isinstance(event, ev.TurnFinished):
                m = event.metrics
                return {
                    "decode_tok_s": m.decode_tok_s,
                    "itl_ms_p50": m.itl_ms_p50,
                    "output_tokens": m.output_tokens,
                    "computed": len(event.tokens or []),
                    "ids": ids,
                }

    def close(self) -> None:
        self.engine.close()


def hook_alone(config: BenchConfig, calls: int = 300) -> dict[str, float]:
    """Microseconds per token of the logits hook (and entry()), k=1 and k=10, on real
    logits, and of one llama_decode step, in this process."""
    import time

    from app.engine.token_logprobs import TokenLogprobs
    from app.engine.worker import Loaded
    from app.settings import RuntimeSettings

    settings = RuntimeSettings(n_ctx=config.n_ctx, n_threads=config.threads)
    model = Loaded(config.model, settings, use_extra_bufts=False)
    try:
        native, lc = model.native, model.llama_cpp
        prompt = model.tokenize_prompt(PROMPT.encode("utf-8"), True)
        n_past = native.start_turn(prompt, 0)
        figures: dict[str, float] = {}
        for k in (1, 10):
            hook = TokenLogprobs(k, native.token_text)
            logits = lc.llama_get_logits_ith(native.ctx, -1)
            rounds = []
            for _ in range(5):
                started = time.perf_counter_ns()
                for _ in range(calls):
                    hook(logits, model.n_vocab)
                    hook.entry(prompt[-1])
                rounds.append((time.perf_counter_ns() - started) / calls / 1e3)
            figures[f"hook k={k} us"] = median(rounds) or 0.0
        steps = []
        for i in range(32):
            started = time.perf_counter_ns()
            native.eval_token(prompt[-1], n_past + i)
            steps.append((time.perf_counter_ns() - started) / 1e3)
        figures["decode step us"] = median(steps) or 0.0
        return figures
    finally:
        model.llm.close()


def _extra_us(on: float | None, off: float | None) -> float | None:
    if not on or not off:
        return None
    return (1 / on - 1 / off) * 1e6


def run(config: BenchConfig) -> Section:
    section = Section(TITLE)
    rounds = 2 if config.quick else config.rounds
    load = wait_for_quiet(limit_s=30 if config.quick else config.quiet_wait_s)
    loads: list[float] = []
    rounds_engine = EngineRounds(config)
    try:
        paths = {name: (lambda k=k: rounds_engine.turn(k)) for name, k in PATHS.items()}
        results = alternate(rounds, paths, loads=loads)
    finally:
        rounds_engine.close()
    for name, k in PATHS.items():
        runs = results[name]
        decode = [r["decode_tok_s"] for r in runs]
        section.rows.append(
            {
                "path": name,
                "top_logprobs": k,
                "decode tok/s": median(decode),
                "decode range": f"{min(decode):.1f}-{max(decode):.1f}" if all(decode) else "-",
                "ITL p50 ms": median([r["itl_ms_p50"] for r in runs]),
                "output tok": median([r["output_tokens"] for r in runs]),
                "tokens with figures": median([r["computed"] for r in runs]),
            }
        )

    def per_round(a: str, field: str = "decode_tok_s") -> float | None:
        return median(
            [
                safe_ratio(x[field], y[field])
                for x, y in zip(results[a], results["off"], strict=True)
            ]
        )

    off = median([r["decode_tok_s"] for r in results["off"]])
    for name in ("on_k1", "on_k10"):
        on = median([r["decode_tok_s"] for r in results[name]])
        section.ratios.append(
            Ratio(
                f"decode {name} / off (median of per-round ratios)",
                per_round(name),
                ">=",
                0.95,
                why="each token pays a pass over the vocabulary (log-softmax and top k)",
            )
        )
        itl = per_round(name, "itl_ms_p50")
        section.notes.append(
            f"{name}: {_extra_us(on, off) or float('nan'):.0f} us more per token than off "
            f"(from the median rates); ITL p50 on / off per round: {itl or float('nan'):.3f} "
            "(the middle step, less swayed by a neighbour's burst than the mean rate)."
        )
    ids = [r["ids"] for runs in results.values() for r in runs]
    same = all(i == ids[0] for i in ids) if ids else None
    section.notes.append(
        f"Same tokens drawn on every round, off and on: {same} (the hook reads the logits only). "
        "Off installs no hook: the loop is the one without the feature."
    )
    alone = hook_alone(config)
    step = alone["decode step us"]
    for k in (1, 10):
        cost = alone[f"hook k={k} us"]
        section.rows.append(
            {
                "path": f"hook alone, k={k}",
                "top_logprobs": k,
                "us per token": cost,
                "share of a decode step": cost / step if step else None,
            }
        )
    section.notes.append(
        "Hook alone (this process, the model's real logits): "
        f"k=1 {alone['hook k=1 us']:.0f} us, k=10 {alone['hook k=10 us']:.0f} us per token; "
        f"one decode step {step:.0f} us (load {load_average():.2f}). Warm caches: in the "
        "decode loop each llama_decode leaves numpy cold and the same work takes about "
        "4 times as long, which the per-token extra above includes."
    )
    section.notes.append(
        f"Load average (1 min): {load:.2f} when the section started; after each round "
        f"{', '.join(f'{x:.2f}' for x in loads)}."
    )
    section.raw = {
        "rounds": {
            n: [{k: v for k, v in r.items() if k != "ids"} for r in rs] for n, rs in results.items()
        },
        "load_after_each_round": loads,
    }
    return section


def main() -> None:
    from app.paths import bundled_model_path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--quiet-wait", type=float, default=0.0, help="s to wait for load < 1.5")
    args = parser.parse_args()
    model = args.model or str(bundled_model_path())
    config = BenchConfig(
        model=model,
        threads=args.threads,
        rounds=args.rounds,
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        quiet_wait_s=args.quiet_wait,
    )
    print(f"load average (1 min) before: {load_average():.2f}")
    section = run(config)
    for row in section.rows:
        print(row)
    for ratio in section.ratios:
        print(f"{ratio.name}: {ratio.value:.3f}" if ratio.value else f"{ratio.name}: -")
    for note in section.notes:
        print(note)


if __name__ == "__main__":
    main()
