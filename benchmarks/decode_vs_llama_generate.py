"""Side by side: `glassbox bench` decode_tok_s vs llama-cpp-python's own Llama.generate loop.

Same model, threads, n_ctx, prompt tokens and sampling; the two paths alternate
for several rounds in one run (these machines are shared and noisy, so only
the ratio measured together means anything). Target: ratio >= 0.95.

    .venv/bin/python benchmarks/decode_vs_llama_generate.py [--rounds 5] [--max-tokens 256]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

PROMPT = "Write a long story about a lighthouse keeper and a storm. Use many details."


def baseline_round(llm, tokens: list[int], args: argparse.Namespace) -> float | None:
    """Llama.generate as its README shows it; decode rate from token timestamps."""
    import llama_cpp

    llm.reset()
    llm.set_seed(args.seed)
    times: list[int] = []
    vocab = llm._model.vocab
    for token in llm.generate(
        tokens, top_k=40, top_p=0.95, min_p=0.05, temp=args.temperature, repeat_penalty=1.1
    ):
        if llama_cpp.llama_vocab_is_eog(vocab, token):
            break
        times.append(time.monotonic_ns())
        if len(times) >= args.max_tokens:
            break
    if len(times) < 2:
        return None
    return (len(times) - 1) * 1e9 / (times[-1] - times[0])


def glassbox_round(model: str, prompts_file: Path, out: Path, args: argparse.Namespace) -> dict:
    from app.cli.main import main as glassbox

    code = glassbox(
        [
            "bench",
            "--model",
            model,
            "--prompts",
            str(prompts_file),
            "--json",
            str(out),
            "--max-tokens",
            str(args.max_tokens),
            "--seed",
            str(args.seed),
            "--temperature",
            str(args.temperature),
            "--threads",
            str(args.threads),
            "--ctx",
            str(args.ctx),
        ]
    )
    if code != 0:
        sys.exit(f"glassbox bench failed with exit code {code}")
    return json.loads(out.read_text())["turns"][0]


def main() -> None:
    from app.paths import bundled_model_path
    from app.settings import physical_core_count

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(bundled_model_path()))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--threads", type=int, default=physical_core_count())
    parser.add_argument("--ctx", type=int, default=4096)
    args = parser.parse_args()

    import llama_cpp  # the baseline runs in this process; glassbox's engine in its worker

    llm = llama_cpp.Llama(
        args.model,
        n_ctx=args.ctx,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        verbose=False,
    )
    template = llama_cpp.llama_chat_format.Jinja2ChatFormatter(
        llm.metadata["tokenizer.chat_template"], eos_token="<|im_end|>", bos_token="<|im_start|>"
    )
    prompt = template(messages=[{"role": "user", "content": PROMPT}]).prompt
    tokens = llm.tokenize(prompt.encode(), add_bos=False, special=True)
    llm.eval(tokens[:1])  # warm-up, as glassbox's worker does at load

    base, ours = [], []
    with tempfile.TemporaryDirectory() as scratch:
        prompts_file = Path(scratch) / "prompts.txt"
        prompts_file.write_text(PROMPT + "\n")
        for round_no in range(1, args.rounds + 1):
            b = baseline_round(llm, tokens, args)
            turn = glassbox_round(args.model, prompts_file, Path(scratch) / "out.json", args)
            g = turn["decode_tok_s"]
            base.append(b)
            ours.append(g)
            print(
                f"round {round_no}: Llama.generate {b:7.1f} tok/s | glassbox bench {g:7.1f} "
                f"tok/s ({turn['output_tokens']} tokens) | ratio {g / b:.3f}",
                flush=True,
            )
    b_med, g_med = statistics.median(base), statistics.median(ours)
    per_round = statistics.median(g / b for g, b in zip(ours, base))
    print(
        f"median: Llama.generate {b_med:.1f} tok/s, glassbox bench {g_med:.1f} tok/s, "
        f"ratio of medians {g_med / b_med:.3f}, median per-round ratio {per_round:.3f} "
        f"(target >= 0.95); threads {args.threads}, max_tokens {args.max_tokens}, "
        f"temperature {args.temperature}, seed {args.seed}, rounds {args.rounds}"
    )


if __name__ == "__main__":
    main()
