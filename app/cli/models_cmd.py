"""`glassbox models`, `glassbox fit` and `glassbox pull`: the model library on the command line."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from typing import Any

from app.cli.common import add_common_flags
from app.models.fit import estimate_fit, format_bytes, rough_verdict_for_size
from app.models.library import ModelLibrary
from app.models.resolve import resolve_model_path
from app.settings import KV_CACHE_TYPES, RuntimeSettings

BAR_WIDTH = 30


def register(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser("models", help="list the GGUF files Glassbox knows")
    models.add_argument("--json", action="store_true", help="print a JSON list")
    models.add_argument("--add-folder", metavar="DIR", help="also look for models in DIR")
    models.add_argument("--remove-folder", metavar="DIR", help="stop looking in DIR")
    models.set_defaults(run=run_models)

    fit = sub.add_parser("fit", help="estimate the memory a model needs before loading it")
    add_common_flags(fit)
    fit.add_argument("--kv-type", default="f16", choices=list(KV_CACHE_TYPES), help="KV cache type")
    fit.add_argument("--batch", type=int, default=512, metavar="N", help="batch size (n_batch)")
    fit.add_argument("--json", action="store_true", help="print the estimate as JSON")
    fit.set_defaults(run=run_fit)

    pull = sub.add_parser("pull", help="download a GGUF from Hugging Face into its cache")
    pull.add_argument("repo", help="repository, e.g. HuggingFaceTB/SmolLM2-360M-Instruct-GGUF")
    pull.add_argument("file", nargs="?", help="file name or quantization (e.g. Q4_K_M)")
    pull.add_argument("--list", action="store_true", help="list the repository's GGUF files")
    pull.set_defaults(run=run_pull)


def _human_count(n: int | None) -> str:
    if n is None:
        return "?"
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= div:
            return f"{n / div:.1f}{suffix}"
    return str(n)


def run_models(args: argparse.Namespace) -> int:
    library = ModelLibrary()
    if args.add_folder:
        print(f"added {library.add_folder(args.add_folder)}", file=sys.stderr)
    if args.remove_folder:
        library.remove_folder(args.remove_folder)
    entries = library.scan()
    if args.json:
        print(json.dumps([e.to_dict() for e in entries], indent=2))
        return 0
    if not entries:
        print("no GGUF files found; `glassbox pull REPO` downloads one", file=sys.stderr)
        return 0
    rows = [("NAME", "QUANT", "PARAMS", "CTX", "SIZE", "SOURCE", "PATH")]
    for e in entries:
        info = e.info
        rows.append(
            (
                e.name if info else f"{e.name} (unreadable)",
                (info.quantization or "?") if info else "-",
                _human_count(info.parameters) if info else "-",
                str(info.context_length or "?") if info else "-",
                format_bytes(e.to_dict()["size_bytes"]),
                e.source,
                str(e.path),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1])
    for e in entries:
        if e.error:
            print(f"warning: {e.error}", file=sys.stderr)
    return 0


def run_fit(args: argparse.Namespace) -> int:
    model = resolve_model_path(args.model)
    n_ctx = args.ctx if args.ctx is not None else RuntimeSettings().n_ctx
    estimate = estimate_fit(model, n_ctx, args.kv_type, n_batch=args.batch)
    if args.json:
        print(json.dumps(estimate.to_dict(), indent=2))
        return 0
    e = estimate
    print(f"model     {e.model_path}")
    print(f"weights   {format_bytes(e.weights_bytes)}")
    print(
        f"KV cache  {format_bytes(e.kv_bytes)}  ({e.kv_cells} cells x "
        f"{format_bytes(e.kv_bytes_per_token)} per token, {e.kv_type_k})"
    )
    print(f"compute   {format_bytes(e.compute_bytes)}  (estimate)")
    print(f"total     {format_bytes(e.total_bytes)}")
    print(f"available {format_bytes(e.available_bytes)} RAM")
    if args.gpu_layers:
        print("VRAM      unknown until the model is loaded (GPU offload requested)")
    beyond = " in memory, beyond the trained context" if e.context_warning else ""
    print(f"verdict   {e.verdict}{beyond}")
    if e.context_warning:
        print(f"warning   {e.context_warning}")
    return 0


def _progress_line(p: Any) -> str:
    total = p.total_bytes or 0
    fraction = min(1.0, p.done_bytes / total) if total else 0.0
    filled = int(fraction * BAR_WIDTH)
    bar = "#" * filled + "-" * (BAR_WIDTH - filled)
    rate = f"{format_bytes(int(p.rate_bytes_s))}/s" if p.rate_bytes_s else "--"
    eta = f"{p.eta_s:.0f} s left" if p.eta_s is not None else ""
    verb = "verify" if p.phase == "verifying" else "pull"
    return (
        f"\r{verb} [{bar}] {fraction:4.0%} {format_bytes(p.done_bytes)}/"
        f"{format_bytes(total)} {rate} {eta}\033[K"
    )


def run_pull(args: argparse.Namespace) -> int:
    from app.models import hub  # noqa: PLC0415 - imports huggingface_hub; `pull` only

    files = hub.list_gguf_files(args.repo)
    if args.list:
        for f in files:
            verdict = rough_verdict_for_size(f.size_bytes)
            print(f"{f.filename}  {f.quantization or '?'}  {format_bytes(f.size_bytes)}  {verdict}")
        return 0
    chosen = hub.pick_file(files, args.file)
    show = sys.stderr.isatty()
    print(
        f"pulling {chosen.repo_id}/{chosen.filename} ({format_bytes(chosen.size_bytes)})",
        file=sys.stderr,
    )
    cancel = threading.Event()
    outcome: dict[str, Any] = {}

    def on_progress(p: Any) -> None:
        if show:
            print(_progress_line(p), end="", file=sys.stderr, flush=True)

    def work() -> None:
        try:
            outcome["path"] = hub.download_gguf(chosen, on_progress=on_progress, cancel=cancel)
        except BaseException as exc:  # handed to the main thread
            outcome["error"] = exc

    # The download runs on a thread so Ctrl-C can cancel it cleanly (no partial file).
    worker = threading.Thread(target=work, name="glassbox-pull", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.2)
    except KeyboardInterrupt:
        cancel.set()
        worker.join()
    finally:
        if show:
            print("\r\033[K", end="", file=sys.stderr)
    if "error" in outcome:
        raise outcome["error"]
    print(outcome["path"])
    return 0
