"""Files backend benchmarks: append cost against conversation length, and throughput.

Run with ``python benchmarks/bench_files.py [--quick]``. Prints two Markdown tables.

* append at length N: ``append_message`` to a conversation already holding N messages,
  beside two baselines measured in the same run: appending one JSON line to a file (the
  least any durable append can do) and rewriting the whole conversation as one JSON file
  (what a store without a journal does on every append).
* throughput: 8 processes appending to 4 conversations while 2 processes list and search.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

import convstore
from bench_core import Row, row, table, timings
from convstore import NewMessage

SPAWN = multiprocessing.get_context("spawn")


def filled_conversation(root: Path, length: int) -> tuple[convstore.ConversationStore, str]:
    store = convstore.open(f"file://{root}")
    chat = store.create_conversation(f"{length} messages").id
    batch = [NewMessage("user", f"message {i} " + "x" * 100) for i in range(1000)]
    remaining = length
    while remaining > 0:
        store.append_messages(chat, batch[:remaining])
        remaining -= len(batch)
    return store, chat


class JsonLineAppend:
    """Baseline: one JSON line appended to a file per message."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self) -> None:
        line = json.dumps({"role": "user", "content": "hello", "created_at": time.time()})
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")


class WholeFileRewrite:
    """Baseline: the conversation rewritten as one JSON document per message."""

    def __init__(self, path: Path, length: int) -> None:
        self.path = path
        self.messages = [
            {"role": "user", "content": f"message {i} " + "x" * 100} for i in range(length)
        ]

    def __call__(self) -> None:
        self.messages.append({"role": "user", "content": "hello"})
        temp = self.path.with_suffix(".tmp")
        temp.write_text(json.dumps({"messages": self.messages}), encoding="utf-8")
        os.replace(temp, self.path)


def bench_append(workdir: Path, lengths: list[int], repeat: int) -> list[Row]:
    rows = []
    for length in lengths:
        store, chat = filled_conversation(workdir / f"files{length}", length)
        line_append = JsonLineAppend(workdir / f"lines{length}.jsonl")
        rewrite = WholeFileRewrite(workdir / f"whole{length}.json", length)
        lines, ours = timings(
            line_append,
            lambda: store.append_message(chat, "user", "hello"),  # noqa: B023
            repeat=repeat,
        )
        (whole,) = timings(rewrite, repeat=repeat)  # alone: its writes would slow the others
        store.close()
        rows.append(row(f"append at {length:,}: one JSON line to a file", lines))
        rows.append(row(f"append at {length:,}: store.append_message (file://)", ours, lines))
        rows.append(row(f"append at {length:,}: rewrite the whole JSON file", whole, lines))
    return rows


def append_worker(url: str, conversation_id: str, count: int) -> None:
    with convstore.open(url, lock_timeout=60) as store:
        for i in range(count):
            store.append_message(conversation_id, "user", f"message {i}")


def read_worker(url: str, stop_at: float, reads: multiprocessing.sharedctypes.Synchronized) -> None:  # type: ignore[type-arg]
    with convstore.open(url, lock_timeout=60) as store:
        while time.monotonic() < stop_at:
            store.list_conversations(limit=10)
            store.search_messages("message 7")
            with reads.get_lock():
                reads.value += 2


def bench_throughput(workdir: Path, per_process: int) -> str:
    url = f"file://{workdir / 'shared'}"
    with convstore.open(url) as store:
        chats = [store.create_conversation(f"shared {i}").id for i in range(4)]
    reads = SPAWN.Value("i", 0)
    writers = [
        SPAWN.Process(target=append_worker, args=(url, chats[w % 4], per_process)) for w in range(8)
    ]
    started = time.monotonic()
    readers = [
        SPAWN.Process(target=read_worker, args=(url, started + 3600, reads)) for _ in range(2)
    ]
    for process in writers + readers:
        process.start()
    for process in writers:
        process.join()
    elapsed = time.monotonic() - started
    for process in readers:
        process.terminate()
        process.join()
    with convstore.open(url) as store:
        total = store.count_messages()
        problems = store.check_integrity()
    appended = 8 * per_process
    return "\n".join(
        [
            "| writers | readers | appended | stored | seconds | appends/s | reads/s | integrity |",
            "|---:|---:|---:|---:|---:|---:|---:|---|",
            f"| 8 | 2 | {appended} | {total} | {elapsed:.1f} | {appended / elapsed:.0f} "
            f"| {reads.value / elapsed:.0f} | {'ok' if not problems else problems[0]} |",
        ]
    )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args(argv)
    lengths = [10, 1_000] if args.quick else [10, 1_000, 10_000]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        rows = bench_append(workdir, lengths, 50 if args.quick else 300)
        throughput = bench_throughput(workdir, 50 if args.quick else 250)
    print(f"Python {sys.version.split()[0]}, file:// backend, durability=normal")
    print(table(rows))
    print()
    print(throughput)


if __name__ == "__main__":
    main(sys.argv[1:])
