"""Kept for old links: the decode comparison is now section a of `make bench`.

    .venv/bin/python benchmarks/decode_vs_llama_generate.py [--rounds 5] [--max-tokens 256]

runs `benchmarks/report.py --only decode` with the same options: Glassbox's engine,
its window, Llama.generate, create_chat_completion(stream=True) and a native
llama_decode loop side by side, written to benchmarks/report.md and report.json.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import main

if __name__ == "__main__":
    sys.exit(main(["--only", "decode", *sys.argv[1:]]))
