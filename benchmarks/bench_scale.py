"""d. Scale: a 1,000-turn conversation in the window, a 100,000-message store, search, memory.

- Store: 2,000 conversations of 50 messages (100,000; user lines of 5-30 words,
  replies of 40-200) written as schema 1, then opened by this build: the
  one-time upgrade that builds the search index is timed, then opening
  (Store.open plus the sidebar's listing) and conversation search, through the
  index and through the scan it replaced, alternating, medians of 5.
- Window (a child process, offscreen, no model loaded): one conversation of
  1,000 turns with stored metrics is opened from the sidebar while a 5 ms
  QTimer heartbeat records every gap; the time to open, the gaps until 1 s
  after it opened (the plots draw one per frame), and the process's resident
  memory before and after.

    .venv/bin/python benchmarks/bench_scale.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for entry in (str(REPO), str(HERE)):
    if entry not in sys.path:
        sys.path.insert(0, entry)

from bench_gui import (  # noqa: E402
    RESULT_PREFIX,
    Heartbeat,
    gap_summary,
    open_window,
    rss_mib,
    run_child,
    spin,
    wait_signal,
)
from benchlib import BenchConfig, Ratio, Section, load_average, median  # noqa: E402

TITLE = "d. Scale"
ORDER = "d"

OPEN_TARGET_MS = 200.0
SEARCH_TARGET_MS = 100.0
STALL_TARGET_MS = 50.0
CONVERSATIONS, MESSAGES_PER = 2_000, 50
# Said when the open misses its target. The chat builds the newest bubbles in 5 ms slices
# (ui/infra/time_slices.py) and the per-turn plots draw the newest 100 turns, one plot per
# 50 ms at most (ui/internals/panel.py); what is left is one of those passes running long.
STALL_WHY = (
    "one pass ran long: a per-turn plot's redraw (pyqtgraph, 100 turns: 15-30 ms on 2 "
    "cores) or a chat slice's layout, on a busy machine; closing it: plots drawn by our own "
    "QPainter code as the live strip now is"
)
BIG_TURNS = 1_000

_WORD_TEXT = (
    "the of and to in is that it for as with was on be by this are or at from have an not but "
    "model token cache decode prefill latency memory thread window query answer story lighthouse "
    "keeper storm ocean river mountain garden kitchen recipe pasta tomato physics energy quantum "
    "cat box light wave python function class module import error value list dict string number "
    "loop branch über straße café naïve résumé Ärger Schrödinger"
)
WORDS = tuple(_WORD_TEXT.split())
# Needles: (label, text). Rare and common words, a phrase, mixed case with
# diacritics, no hit at all, and a two-letter needle (below the trigram size: a scan).
NEEDLES = (
    ("rare word", "xylophone"),
    ("common word", "lighthouse"),
    ("phrase", "keeper storm ocean"),
    ("mixed case, diacritics", "SCHRÖDINGER"),
    ("no hit", "zzqqxx"),
    ("2 letters (scan)", "qz"),
)


def sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def text_of(rng: random.Random, words: int) -> str:
    return " ".join(sentence(rng, 12) for _ in range(max(1, words // 12)))


def write_history(path: Path, conversations: int, per: int, version: int | None = 1) -> None:
    """`conversations` x `per` messages, written straight to a file of schema `version`
    (None: the latest, through Store, so its triggers index every row)."""
    from app.storage import MIGRATIONS, Store, migrate

    if version is None:
        Store.open(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        if version is not None:
            migrate(conn, MIGRATIONS[:version])
        rng = random.Random(1)
        now = time.time()
        conn.execute("BEGIN")
        for number in range(conversations):
            cursor = conn.execute(
                "INSERT INTO conversations (title, created_at, updated_at) VALUES (?, ?, ?)",
                (sentence(rng, 4), now, now + number),
            )
            rows = []
            for i in range(per):
                role = "user" if i % 2 == 0 else "assistant"
                words = rng.randint(5, 30) if role == "user" else rng.randint(40, 200)
                rows.append((cursor.lastrowid, role, text_of(rng, words), now))
            conn.executemany(
                "INSERT INTO messages (conversation_id, role, content, created_at) "
                "VALUES (?, ?, ?, ?)",
                rows,
            )
        # One message with the rare word, for a search with one hit.
        conn.execute("UPDATE messages SET content = content || ' A xylophone.' WHERE id = 4242")
        conn.execute("COMMIT")
    finally:
        conn.close()


def write_long_conversation(turns: int) -> int:
    """In GLASSBOX_HOME's database: a conversation of `turns` turns with metrics, and a
    small one made after it (the one the window opens first); the long one's id."""
    from app.metrics import TurnMetrics
    from app.storage import Store

    rng = random.Random(2)
    with Store.open() as store:
        big = store.create_conversation(f"{turns} turns")
        cached = 0
        for _turn in range(turns):
            store.add_message(big.id, "user", text_of(rng, rng.randint(5, 30)))
            reply = store.add_message(big.id, "assistant", "")
            output = rng.randint(40, 250)
            prompt = cached + rng.randint(20, 60)
            decode_ms = output * rng.uniform(6, 9)
            metrics = TurnMetrics(
                queue_ms=rng.uniform(0, 3),
                ttft_ms=rng.uniform(20, 200),
                prefill_ms=rng.uniform(15, 190),
                prompt_tokens=prompt,
                prompt_tokens_cached=cached,
                prompt_tokens_evaluated=prompt - cached,
                prefill_tok_s=rng.uniform(250, 450),
                output_tokens=output,
                decode_ms=decode_ms,
                decode_tok_s=(output - 1) * 1000 / decode_ms,
                itl_ms_p50=7.0,
                itl_ms_p95=9.0,
                itl_ms_p99=12.0,
                kv_cells_used=min(4096, prompt + output),
                kv_cells_total=4096,
                kv_fill=min(1.0, (prompt + output) / 4096),
                kv_bytes_used=min(4096, prompt + output) * 23040,
                kv_bytes_total=4096 * 23040,
                stop_reason="eos",
                total_ms=decode_ms + 100,
            )
            store.finish_message(
                reply.id,
                text_of(rng, output * 3 // 4),
                partial=False,
                stop_reason="eos",
                metrics=metrics,
                model="SmolLM2-135M-Instruct-Q4_1.gguf",
            )
            cached = (prompt + output) % 3000
        small = store.create_conversation("small")
        store.add_message(small.id, "user", "Hello")
        return big.id


# ---- the store, in this process -----------------------------------------------------


def timed_ms(call: Any) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def measure_store(folder: Path, rounds: int) -> dict[str, Any]:
    from app.storage import Store

    path = folder / "history.sqlite3"
    write_history(path, CONVERSATIONS, MESSAGES_PER, version=1)
    size_v1 = path.stat().st_size
    load = load_average()
    upgrade_ms = timed_ms(lambda: Store.open(path).close())
    size_v2 = path.stat().st_size + (
        Path(f"{path}-wal").stat().st_size if Path(f"{path}-wal").exists() else 0
    )

    def open_and_list() -> None:
        with Store.open(path) as store:
            store.list_conversations()

    open_and_list()  # once, so every round finds the file in the OS cache alike
    open_ms = [timed_ms(open_and_list) for _ in range(rounds)]

    search: dict[str, dict[str, Any]] = {}
    with Store.open(path) as store:
        indexed = store._search_index
        for label, needle in NEEDLES:
            times: dict[str, list[float]] = {"index": [], "scan": []}
            hits = len(store.list_conversations(needle))
            for round_no in range(rounds):
                order = ("index", "scan") if round_no % 2 == 0 else ("scan", "index")
                for how in order:
                    store._search_index = indexed and how == "index"
                    times[how].append(timed_ms(lambda n=needle: store.list_conversations(n)))
            store._search_index = indexed
            search[label] = {"needle": needle, "hits": hits, **times}
    return {
        "messages": CONVERSATIONS * MESSAGES_PER,
        "conversations": CONVERSATIONS,
        "indexed": indexed,
        "upgrade_ms": upgrade_ms,
        "upgrade_load": load,
        "size_v1_mb": size_v1 / 1e6,
        "size_v2_mb": size_v2 / 1e6,
        "open_ms": open_ms,
        "search": search,
        "load": load_average(),
    }


# ---- the window, in a child process -------------------------------------------------


def child_main(args: argparse.Namespace) -> dict[str, Any]:
    big_id = write_long_conversation(args.turns)
    window = open_window(None, 4096, 64, 0.7, 1)
    controller, sidebar = window.controller, window.conversations
    rss_small = rss_big = rss_mib()
    rounds = []
    try:
        small_id = controller.conversation_id
        for _round in range(args.rounds):
            for target, name in ((big_id, "open"), (small_id, "leave")):
                with Heartbeat() as beat:
                    started = time.perf_counter()
                    wait_signal(
                        controller.conversation_opened,
                        lambda t=target: sidebar.view.setCurrentIndex(
                            sidebar.model.index(sidebar.model.row_of(t))
                        ),
                    )
                    opened_ms = (time.perf_counter() - started) * 1000
                    spin(1000)  # the panel draws its plots one per frame after opening
                shown = len(window.chat.message_widgets())
                rounds.append(
                    {
                        "what": name,
                        "opened_ms": opened_ms,
                        "gaps_ms": beat.gaps_ms,
                        "widgets": shown,
                        "load": load_average(),
                    }
                )
                if name == "open":
                    rss_big = rss_mib()
        turns_plotted = len(window.panel.turns())
    finally:
        window.close()
    return {
        "rss_small_mib": rss_small,
        "rss_big_mib": rss_big,
        "rounds": rounds,
        "turns_plotted_last": turns_plotted,
    }


def run(config: BenchConfig) -> Section:
    rounds = 2 if config.quick else config.rounds
    section = Section(TITLE)
    with tempfile.TemporaryDirectory(prefix="glassbox-bench-scale-") as folder:
        store = measure_store(Path(folder), rounds)
        window = run_child(
            Path(__file__),
            ["--turns", str(BIG_TURNS), "--rounds", str(min(rounds, 3))],
            folder,
        )
    open_median = median(store["open_ms"])
    store_load = round(store["load"], 2)

    def row(case: str, value: Any, unit: str, **more: Any) -> None:
        section.rows.append({"case": case, "value": value, "unit": unit, **more})

    row(
        f"open a store of {store['messages']:,} messages ({store['conversations']:,} "
        "conversations): Store.open + the sidebar's listing",
        open_median,
        "ms",
        hits=store["conversations"],
        **{"load avg": store_load},
    )
    worst_index = 0.0
    for label, found in store["search"].items():
        index_ms, scan_ms = median(found["index"]), median(found["scan"])
        if label != "2 letters (scan)" and index_ms is not None:
            worst_index = max(worst_index, index_ms)
        row(
            f"search: {label} ({found['needle']!r})",
            index_ms,
            "ms",
            **{"index (ms)": index_ms, "scan (ms)": scan_ms, "hits": found["hits"]},
            **{"load avg": store_load},
        )
    row(
        "first open after upgrading a schema-1 file of that size (builds the index, once)",
        store["upgrade_ms"],
        "ms",
        **{"load avg": round(store["upgrade_load"], 2)},
    )
    row(
        "database size: schema 1 / with the search index",
        f"{store['size_v1_mb']:.1f} / {store['size_v2_mb']:.1f}",
        "MB",
    )
    opens = [r for r in window["rounds"] if r["what"] == "open"]
    leaves = [r for r in window["rounds"] if r["what"] == "leave"]
    open_gaps = gap_summary([g for r in opens for g in r["gaps_ms"]])
    leave_gaps = gap_summary([g for r in leaves for g in r["gaps_ms"]])
    for label, group, gaps in (
        (f"window: open the {BIG_TURNS}-turn conversation (click to opened)", opens, open_gaps),
        ("window: from it back to a 1-message one (click to opened)", leaves, leave_gaps),
    ):
        row(
            label,
            median([r["opened_ms"] for r in group]),
            "ms",
            **{
                "hits": group[-1]["widgets"] if group else None,
                "gap p99 (ms)": gaps["p99_ms"],
                "gap max (ms)": gaps["max_ms"],
                "load avg": round(group[-1]["load"], 2) if group else None,
            },
        )
    row(
        "GUI process memory (RSS), no model, 1-message conversation open",
        window["rss_small_mib"],
        "MiB",
    )
    row(
        f"GUI process memory (RSS), no model, {BIG_TURNS}-turn conversation open",
        window["rss_big_mib"],
        "MiB",
    )
    section.ratios = [
        Ratio("open a 100,000-message store", open_median, "<=", OPEN_TARGET_MS, unit="ms"),
        Ratio(
            "conversation search, slowest needle",
            worst_index or None,
            "<=",
            SEARCH_TARGET_MS,
            unit="ms",
        ),
        Ratio(
            f"event-loop gap max, opening {BIG_TURNS} turns",
            max(open_gaps["max_ms"] or 0, leave_gaps["max_ms"] or 0),
            "<=",
            STALL_TARGET_MS,
            unit="ms",
            why=STALL_WHY,
        ),
    ]
    for ratio in section.ratios:
        if ratio.met:
            ratio.why = ""
    section.notes.append(
        f"Store: {store['messages']:,} generated messages, medians of {rounds} rounds; search "
        "through the trigram index and through the scan it replaced alternate round by round "
        f"(index available: {store['indexed']}). The 'hits' column counts conversations found. "
        "A 2-letter needle is shorter than a trigram and always scans."
    )
    section.notes.append(
        f"Window: a child process, offscreen, no model; {len(opens)} rounds of opening the "
        f"{BIG_TURNS}-turn conversation ({BIG_TURNS * 2} messages, {BIG_TURNS} metrics rows) "
        "from the sidebar and going back; the value is click to conversation_opened, gaps "
        "are those of a 5 ms QTimer from the click until 1 s after it opened; 'hits' is the "
        "number of message widgets shown."
    )
    section.raw = {
        "store": {k: v for k, v in store.items()},
        "window": {
            **{k: v for k, v in window.items() if k != "rounds"},
            "rounds": [
                {k: v for k, v in r.items() if k != "gaps_ms"} | gap_summary(r["gaps_ms"])
                for r in window["rounds"]
            ],
        },
    }
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--turns", type=int, default=BIG_TURNS, help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if args.child:
        print(RESULT_PREFIX + json.dumps(child_main(args)), flush=True)
        return
    section = run(BenchConfig(model="", threads=0, rounds=args.rounds))
    for row in section.rows:
        print(row)
    for ratio in section.ratios:
        print(ratio.to_dict())


if __name__ == "__main__":
    main()
