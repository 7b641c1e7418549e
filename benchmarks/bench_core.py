"""Core store benchmarks on SQLite, each beside a raw-sqlite3 baseline from the same run.

Run with ``make bench`` (or ``python benchmarks/bench_core.py [--quick]``). Prints a
Markdown table: median and p95 per operation, in milliseconds.

* append: ``store.append_message`` against raw sqlite3 executing the statements the
  store executes for one append (message, conversation counters, search index row and
  its words, change-feed row), in one ``BEGIN IMMEDIATE`` transaction.
* newest 50: the newest page of a conversation of 100 ... 100,000 messages.
* read all: the whole 5,000-message branch, from the cache and from the database.
* list 50: ``list_conversations(limit=50)`` over 100 ... 100,000 conversations.
* chunk: ``append_chunk`` of a streaming reply against raw sqlite3 executing what it
  executes (lock the conversation, read the message and its last chunk number, insert
  the chunk and a change-feed row). Seed 002 asks for about 2 ms per chunk.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import convstore
from convstore import ConversationStore, NewMessage

Row = tuple[str, str, float, float, str]


def timings(*operations: Callable[[], object], repeat: int) -> list[list[float]]:
    """Milliseconds taken by each call of each operation, the operations interleaved
    call by call so that noise from the rest of the machine falls on all of them alike."""
    for operation in operations:
        operation()
        operation()
    samples: list[list[float]] = [[] for _ in operations]
    clock = time.perf_counter
    for _ in range(repeat):
        for operation, taken in zip(operations, samples, strict=True):
            start = clock()
            operation()
            taken.append((clock() - start) * 1000)
    return samples


def row(label: str, samples: list[float], baseline: list[float] | None = None) -> Row:
    median = statistics.median(samples)
    p95 = statistics.quantiles(samples, n=20)[-1] if len(samples) >= 20 else max(samples)
    ratio = ""
    if baseline:
        times = median / statistics.median(baseline)
        ratio = f"{times:.1f}x" if times >= 0.1 else f"{times:.3f}x"
    return (label, str(len(samples)), median, p95, ratio)


def open_store(path: Path) -> ConversationStore:
    return convstore.open(f"sqlite:///{path}", max_cache_size=100)


def fill(store: ConversationStore, conversation_id: str, count: int) -> None:
    batch = [NewMessage("user" if i % 2 == 0 else "assistant", f"message {i}") for i in range(1000)]
    while count > 0:
        store.append_messages(conversation_id, batch[:count])
        count -= len(batch)


class RawAppend:
    """The statements of one append_message, executed directly with sqlite3."""

    def __init__(self, path: Path, conversation_id: str) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.conversation_id = conversation_id
        self.n = 0

    def __call__(self) -> None:
        self.n += 1
        now = time.time()
        message_id = f"raw{self.n:023d}"
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        conv = db.execute(
            "SELECT * FROM conversations WHERE deleted_at IS NULL AND id = ?",
            (self.conversation_id,),
        ).fetchone()
        last_seq, version = conv[12] + 1, conv[10] + 1
        db.execute(
            "INSERT INTO messages (id, conversation_id, parent_id, seq, active, role, type,"
            " content, status, sender_id, created_at, updated_at, metadata, usage)"
            " VALUES (?, ?, ?, ?, 1, 'user', 'text', ?, 'complete', NULL, ?, ?, '{}', NULL)",
            (
                message_id,
                self.conversation_id,
                conv[5],
                last_seq,
                json.dumps("hello"),  # what the store appends
                now,
                now,
            ),
        )
        db.execute(
            "UPDATE conversations SET last_seq = ?, head_message_id = ?, message_count = ?,"
            " prompt_tokens = ?, completion_tokens = ?, version = ?, updated_at = ? WHERE id = ?",
            (last_seq, message_id, conv[11] + 1, conv[13], conv[14], version, now, conv[0]),
        )
        db.execute(  # the search index row (FTS5 follows it by trigger, as for the store)
            "INSERT INTO message_search (message_id, conversation_id, terms, singles)"
            " VALUES (?, ?, ?, '')",
            (message_id, self.conversation_id, "hello"),
        )
        db.execute(  # its words, for *fragment* queries
            "INSERT OR IGNORE INTO search_words(word) SELECT value FROM json_each(?)",
            (json.dumps(["hello"]),),
        )
        db.execute(
            "INSERT INTO changes (conversation_id, kind, payload, created_at) VALUES (?, ?, ?, ?)",
            (
                self.conversation_id,
                "messages.appended",
                json.dumps({"message_ids": [message_id], "first_seq": last_seq}),
                now,
            ),
        )
        db.execute("COMMIT")


def bench_append(workdir: Path, repeat: int) -> list[Row]:
    with open_store(workdir / "raw.db") as store:
        raw_id = store.create_conversation("raw").id
    raw = RawAppend(workdir / "raw.db", raw_id)
    with open_store(workdir / "append.db") as store:
        chat = store.create_conversation("append")
        baseline, ours = timings(
            raw, lambda: store.append_message(chat.id, "user", "hello"), repeat=repeat
        )
    return [
        row("append: raw sqlite3, same statements", baseline),
        row("append: store.append_message", ours, baseline),
    ]


class RawChunk:
    """The statements of one append_chunk, executed directly with sqlite3."""

    def __init__(self, path: Path, conversation_id: str, message_id: str) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.conversation_id, self.message_id = conversation_id, message_id

    def __call__(self) -> None:
        db, now = self.db, time.time()
        db.execute("BEGIN IMMEDIATE")
        db.execute(
            "SELECT * FROM conversations WHERE deleted_at IS NULL AND id = ?",
            (self.conversation_id,),
        ).fetchone()
        db.execute("SELECT * FROM messages WHERE id = ?", (self.message_id,)).fetchone()
        (last,) = db.execute(
            "SELECT coalesce(max(seq), 0) FROM message_chunks WHERE message_id = ?",
            (self.message_id,),
        ).fetchone()
        db.execute(
            "INSERT INTO message_chunks (message_id, seq, delta, created_at) VALUES (?, ?, ?, ?)",
            (self.message_id, last + 1, "token ", now),
        )
        db.execute(
            "INSERT INTO changes (conversation_id, kind, payload, created_at) VALUES (?, ?, ?, ?)",
            (
                self.conversation_id,
                "chunks.appended",
                json.dumps({"message_id": self.message_id, "first_seq": last + 1}),
                now,
            ),
        )
        db.execute("COMMIT")


def bench_chunks(workdir: Path, repeat: int) -> list[Row]:
    with open_store(workdir / "chunks.db") as store:
        raw_chat = store.create_conversation("raw").id
        raw_reply = store.begin_stream(raw_chat).id
        chat = store.create_conversation("stream").id
        reply = store.begin_stream(chat).id
        raw = RawChunk(workdir / "chunks.db", raw_chat, raw_reply)
        baseline, ours = timings(
            raw, lambda: store.append_chunk(chat, reply, "token "), repeat=repeat
        )
    return [
        row("chunk: raw sqlite3, same statements", baseline),
        row("chunk: store.append_chunk", ours, baseline),
    ]


def bench_newest_page(workdir: Path, sizes: list[int], repeat: int) -> list[Row]:
    rows = []
    with open_store(workdir / "pages.db") as store:
        for size in sizes:
            chat = store.create_conversation(f"{size} messages")
            fill(store, chat.id, size)
            raw = sqlite3.connect(workdir / "pages.db")
            sql = (
                "SELECT * FROM messages WHERE conversation_id = ? AND active = 1"
                " ORDER BY seq DESC LIMIT 50"
            )
            baseline, ours = timings(
                lambda: raw.execute(sql, (chat.id,)).fetchall(),  # noqa: B023
                lambda: store.get_messages(chat.id, limit=50, newest_first=True),  # noqa: B023
                repeat=repeat,
            )
            raw.close()
            rows.append(row(f"newest 50 of {size:,}: raw sqlite3", baseline))
            rows.append(row(f"newest 50 of {size:,}: store.get_messages", ours, baseline))
    return rows


def bench_read_all(workdir: Path, repeat: int) -> list[Row]:
    with open_store(workdir / "all.db") as store:
        chat = store.create_conversation("5,000 messages")
        fill(store, chat.id, 5000)
        raw = sqlite3.connect(workdir / "all.db")
        sql = "SELECT * FROM messages WHERE conversation_id = ? AND active = 1 ORDER BY seq"

        def raw_read() -> None:
            for found in raw.execute(sql, (chat.id,)):
                json.loads(found[7])

        with convstore.open(f"sqlite:///{workdir / 'all.db'}", max_cache_size=0) as uncached_store:
            baseline, cached, uncached = timings(
                raw_read,
                lambda: store.get_messages(chat.id),
                lambda: uncached_store.get_messages(chat.id),
                repeat=repeat,
            )
    raw.close()
    return [
        row("all 5,000: raw sqlite3 + json.loads", baseline),
        row("all 5,000: store.get_messages, cached", cached, baseline),
        row("all 5,000: store.get_messages, uncached", uncached, baseline),
    ]


def bench_list(workdir: Path, sizes: list[int], repeat: int) -> list[Row]:
    rows = []
    for size in sizes:
        path = workdir / f"list{size}.db"
        with open_store(path) as store:
            for i in range(size):
                store.create_conversation(f"conversation {i}")
            raw = sqlite3.connect(path)
            sql = (
                "SELECT * FROM conversations WHERE deleted_at IS NULL"
                " ORDER BY updated_at DESC, id DESC LIMIT 50"
            )
            baseline, ours = timings(
                lambda: raw.execute(sql).fetchall(),  # noqa: B023
                lambda: store.list_conversations(limit=50),
                repeat=repeat,
            )
            raw.close()
        rows.append(row(f"list 50 of {size:,}: raw sqlite3", baseline))
        rows.append(row(f"list 50 of {size:,}: store.list_conversations", ours, baseline))
    return rows


def table(rows: list[Row]) -> str:
    lines = [
        "| operation | runs | median ms | p95 ms | vs raw |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {a} | {n} | {m:.3f} | {p:.3f} | {r} |" for a, n, m, p, r in rows]
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args(argv)
    sizes = [100, 1_000] if args.quick else [100, 1_000, 10_000, 100_000]
    repeat = 50 if args.quick else 1000
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        rows = bench_append(workdir, repeat)
        rows += bench_chunks(workdir, repeat)
        rows += bench_newest_page(workdir, sizes, repeat)
        rows += bench_read_all(workdir, max(repeat // 20, 20))
        rows += bench_list(workdir, sizes, repeat)
    print(
        f"SQLite {sqlite3.sqlite_version}, Python {sys.version.split()[0]}, synchronous=NORMAL, WAL"
    )
    print(table(rows))


if __name__ == "__main__":
    main(sys.argv[1:])
