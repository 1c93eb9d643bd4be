"""Summarise a py-spy raw profile of the engine worker's decode loop.

Record one `glassbox bench` turn, the worker included (py-spy from PyPI):

    py-spy record -r 250 --subprocesses --native -f raw -o /tmp/spy.txt -- \\
        .venv/bin/glassbox bench --prompts PROMPTS --max-tokens 256 --threads 2
    .venv/bin/python benchmarks/pyspy_summary.py /tmp/spy.txt

prints where the samples inside the decode loop went: by the call directly
under the loop (inclusive) and by innermost frame (own time).
"""

from __future__ import annotations

import argparse
import collections


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw", help="py-spy record -f raw output")
    parser.add_argument("--anchor", default="_decode_native", help="the loop's function")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    by_child: collections.Counter[str] = collections.Counter()
    by_leaf: collections.Counter[str] = collections.Counter()
    by_process: collections.Counter[str] = collections.Counter()
    total = 0
    with open(args.raw, encoding="utf-8") as fh:
        for line in fh:
            stack, _, count = line.rstrip().rpartition(" ")
            n, frames = int(count), stack.split(";")
            by_process["worker" if "spawn_main" in stack else "parent"] += n
            if args.anchor not in stack:
                continue
            total += n
            at = max(i for i, f in enumerate(frames) if args.anchor in f)
            below = frames[at + 1 :]
            by_child[below[0] if below else "(the loop itself)"] += n
            by_leaf[frames[-1]] += n
    print(f"active samples by process: {dict(by_process)}; in {args.anchor}: {total}")
    if not total:
        return
    print(f"-- inclusive, by the call directly under {args.anchor}")
    for name, n in by_child.most_common(args.top):
        print(f"{n / total:7.1%}  {name}")
    print("-- own time, by innermost frame")
    for name, n in by_leaf.most_common(args.top):
        print(f"{n / total:7.1%}  {name[:140]}")


if __name__ == "__main__":
    main()
