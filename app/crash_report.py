"""What a crash notice shows and what a bug report holds.

`meaningful_lines` picks from a worker log what explains a crash: llama.cpp's
errors and warnings and the last few operations it logged, not the chat
template's Jinja source, the tensor-by-tensor load trace or the CPU feature
line. `bug_report` is `glassbox doctor`'s output followed by that log's tail,
as a user would paste it into an issue. Neither touches Qt; `bug_report` runs a
model load and a short decode, so callers run it off the GUI thread.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from pathlib import Path

from app.cli import doctor_cmd

SHOWN_LINES = 8
REPORT_LOG_LINES = 40

# Lines that say something went wrong: always worth showing.
_IMPORTANT = re.compile(
    r"error|warn|fail|abort|assert|fatal|exception|traceback|segmentation|out of memory|"
    r"cannot|can't|could not|unable|invalid|killed|terminate",
    re.IGNORECASE,
)
# Lines that fill a log without telling why it ended.
_NOISE = re.compile(
    r"^(llama_model_loader: - |create_tensor:|load_tensors: layer|print_info:|"
    r"llama_graph_n_input_tensors:|load: control token|load:\s+- \d+|"
    r"[A-Z0-9_]+ : \w+ = \d|Model metadata:|Available chat formats|Using chat (eos|bos)_token)"
)
# The chat template is printed whole after this line; it ends where llama-cpp-python
# prints the template's special tokens.
_TEMPLATE_START = "Using gguf chat template:"
_TEMPLATE_END = re.compile(r"^Using chat (eos|bos)_token:")
_JINJA = re.compile(r"\{%|%\}|\{\{|\}\}")


def _without_template(lines: Sequence[str]) -> list[str]:
    kept: list[str] = []
    in_template = False
    for line in lines:
        if line.startswith(_TEMPLATE_START):
            in_template = True
            kept.append(f"{_TEMPLATE_START} (template source left out)")
            continue
        if in_template:
            if _TEMPLATE_END.match(line):
                in_template = False
            else:
                continue
        if _JINJA.search(line):  # a template seen without its heading (a cut-off tail)
            continue
        kept.append(line)
    return kept


def _collapse_repeats(lines: list[str]) -> list[str]:
    """A line logged many times in a row (a callback per step) once, with its count."""
    out: list[str] = []
    count = 0
    for i, line in enumerate(lines):
        count += 1
        if i + 1 < len(lines) and lines[i + 1] == line:
            continue
        out.append(f"{line}  (x{count})" if count > 1 else line)
        count = 0
    return out


def meaningful_lines(lines: Sequence[str], limit: int = SHOWN_LINES) -> list[str]:
    """Up to `limit` lines, in log order: errors and warnings first in priority, then the
    last operations, never the template source or load-trace noise."""
    useful = _collapse_repeats(
        [
            line.rstrip()
            for line in _without_template(lines)
            if line.strip() and not _NOISE.match(line)
        ]
    )
    important = {i for i, line in enumerate(useful) if _IMPORTANT.search(line)}
    chosen = set(sorted(important)[-limit:])
    for i in range(len(useful) - 1, -1, -1):  # the last operations fill what is left
        if len(chosen) >= limit:
            break
        chosen.add(i)
    return [useful[i] for i in sorted(chosen)]


def read_log(path: Path | None, max_bytes: int = 2_000_000) -> str:
    """The log's text (its last max_bytes), or a one-line reason it cannot be read."""
    if path is None:
        return "(no log file: the engine does not write one)"
    try:
        with path.open("rb") as fh:
            size = fh.seek(0, 2)
            fh.seek(max(0, size - max_bytes))
            return fh.read().decode("utf-8", errors="replace")
    except OSError as exc:
        return f"(cannot read {path}: {exc.strerror or exc})"


def doctor_output(model_path: str | None) -> list[str]:
    """`glassbox doctor` for this model, as the lines it prints."""
    parser = argparse.ArgumentParser(prog="glassbox")
    doctor_cmd.register(parser.add_subparsers())
    args = parser.parse_args(["doctor", *(["--model", model_path] if model_path else [])])
    lines: list[str] = []
    try:
        doctor_cmd.run(args, out=lines.append)
    except Exception as exc:  # a report must still come out, saying doctor failed
        lines.append(f"\ndoctor failed: {type(exc).__name__}: {exc}")
    return lines


def bug_report(
    model_path: str | None,
    log_path: Path | None,
    crash_line: str = "",
    log_lines: int = REPORT_LOG_LINES,
) -> str:
    """Doctor's output, then what happened and the log's last lines, as Markdown."""
    tail = [line for line in read_log(log_path).splitlines() if line.strip()]
    parts = ["# Glassbox bug report", ""]
    if crash_line:
        parts += ["## What happened", crash_line, ""]
    parts += ["## glassbox doctor", "```", *doctor_output(model_path), "```", ""]
    parts += [
        f"## Engine log: what explains the end, then the last {log_lines} lines",
        "```",
        *meaningful_lines(tail),
        "...",
        *_without_template(tail)[-log_lines:],
        "```",
    ]
    return "\n".join(parts)
