"""Writer child for the crash tests; the parent SIGKILLs it mid-stream.

Usage: storage_writer_child.py DB_PATH messages|stream

Each line on stdout is printed only after the write it names has committed,
so every line the parent reads is a promise the database must keep.

- messages: "conversation ID" once, then "ID TEXT" per committed message; every
  third message is an assistant reply finished with metrics.
- stream: "conversation ID", "assistant ID" once, then "N" after each flush of
  the streamed reply, whose content is then "tok " * N, still partial.
"""

from __future__ import annotations

import sys
from pathlib import Path

from app.metrics import TurnMetrics
from app.storage import Store

LIMIT = 1_000_000  # a bound in case the parent dies without killing us


def write_messages(store: Store) -> None:
    conversation = store.create_conversation("crash test")
    print(f"conversation {conversation.id}", flush=True)
    for i in range(LIMIT):
        text = f"message {i}"
        if i % 3 == 2:
            message = store.add_message(conversation.id, "assistant", "", partial=True)
            metrics = TurnMetrics(output_tokens=i, decode_tok_s=float(i), stop_reason="eos")
            store.finish_message(
                message.id, text, partial=False, stop_reason="eos", metrics=metrics, model="m"
            )
        else:
            message = store.add_message(conversation.id, "user", text)
        print(f"{message.id} {text}", flush=True)


def stream_reply(store: Store) -> None:
    conversation = store.create_conversation("stream test")
    print(f"conversation {conversation.id}", flush=True)
    store.add_message(conversation.id, "user", "tell me a long story")
    reply = store.add_message(conversation.id, "assistant", "", partial=True)
    print(f"assistant {reply.id}", flush=True)
    for n in range(1, LIMIT):
        store.update_message_content(reply.id, "tok " * n, partial=True)
        print(n, flush=True)


def main() -> None:
    db_path, mode = Path(sys.argv[1]), sys.argv[2]
    store = Store.open(db_path)
    {"messages": write_messages, "stream": stream_reply}[mode](store)


if __name__ == "__main__":
    main()
