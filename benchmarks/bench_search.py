"""Full-text search on SQLite: query latency at scale, beside a LIKE scan of the same data.

Run with ``python benchmarks/bench_search.py [--messages N] [--conversations N]``
(defaults: 1,000,000 messages in 10,000 conversations; ``--quick`` for 20,000 in 200).
The corpus mixes English words and Chinese text. Prints the build time, the size of the
index against the size of the raw text, and a Markdown table of query medians.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import convstore
from bench_core import Row, row, table, timings
from convstore import NewMessage

TOPICS = [
    "deploy", "service", "database", "migration", "cache", "latency", "refactor", "module",
    "function", "test", "review", "branch", "merge", "release", "config", "token", "model",
    "prompt", "agent", "stream", "error",
]  # fmt: skip
VOCABULARY = [f"w{i:x}" for i in range(5000)]  # word frequencies fall off as in real text
WEIGHTS = [1 / (rank + 1) for rank in range(len(VOCABULARY))]
CHINESE = "代码重构讨论架构设计数据库迁移缓存延迟测试评审分支合并发布配置模型提示代理错误重试队列"
RARE = "kubernetes"


def sentence(rng: random.Random) -> str:
    words = rng.choices(VOCABULARY, WEIGHTS, k=rng.randint(6, 18))
    words += rng.sample(TOPICS, 2)
    if rng.random() < 0.3:
        start = rng.randrange(len(CHINESE) - 6)
        words.append(CHINESE[start : start + rng.randint(2, 6)])
    if rng.random() < 0.001:
        words.append(RARE)
    rng.shuffle(words)
    return " ".join(words)


def build(path: Path, messages: int, conversations: int) -> tuple[float, int]:
    """Fill a store; the seconds it took and the raw text size in bytes."""
    rng = random.Random(7)
    per = messages // conversations
    raw = 0
    started = time.perf_counter()
    with convstore.open(f"sqlite:///{path}") as store:
        for c in range(conversations):
            chat = store.create_conversation(f"conversation {c} {rng.choice(TOPICS)}").id
            batch = []
            for _ in range(per):
                text = sentence(rng)
                raw += len(text.encode())
                batch.append(NewMessage("user", text))
            store.append_messages(chat, batch)
            if c % max(conversations // 20, 1) == 0:
                print(f"  {c * per:,} messages", file=sys.stderr)
    return time.perf_counter() - started, raw


def index_bytes(path: Path) -> int:
    with sqlite3.connect(path) as db:
        fts = db.execute("SELECT sum(length(block)) FROM messages_fts_data").fetchone()[0]
        terms = db.execute(
            "SELECT sum(length(terms) + length(singles) + 40) FROM message_search"
        ).fetchone()[0]
    return int(fts or 0) + int(terms or 0)


def bench_queries(path: Path, repeat: int) -> list[Row]:
    scan = sqlite3.connect(path)
    rows = []
    queries = [
        ("the most common word", "w0", "%w0 %"),
        ("a topic word", "deploy", "%deploy%"),
        ("a rare word", RARE, f"%{RARE}%"),
        ("two words", "refactor latency", "%refactor%latency%"),
        ("two Chinese characters", "重构", "%重构%"),
        ("a phrase", '"cache latency"', "%cache latency%"),
    ]
    with convstore.open(f"sqlite:///{path}") as store:
        for label, query, pattern in queries:
            count = "SELECT count(*) FROM messages WHERE content LIKE ?"
            matches = scan.execute(count, (pattern,)).fetchone()[0]
            (baseline,) = timings(
                lambda: scan.execute(count, (pattern,)).fetchall(),  # noqa: B023
                repeat=3,
            )
            (ours,) = timings(lambda: store.search_messages(query, limit=20), repeat=repeat)  # noqa: B023
            name = f"{label} ({matches:,} matches)"
            rows.append(row(f"{name}: LIKE scan finding them all", baseline))
            rows.append(row(f"{name}: search_messages, best 20", ours, baseline))
    scan.close()
    return rows


class TableEmbedder:
    """Looks texts up in a table of random unit vectors ("v123" -> row 123)."""

    name = "bench-random"

    def __init__(self, count: int, dimensions: int) -> None:
        rng = np.random.default_rng(11)
        self.dimensions = dimensions
        self.table = rng.normal(size=(count, dimensions)).astype(np.float32)
        self.table /= np.linalg.norm(self.table, axis=1, keepdims=True)

    def embed(self, texts: Sequence[str]) -> list[np.ndarray]:
        return [self.table[int(text[1:]) % len(self.table)] for text in texts]


def bench_vectors(path: Path, count: int, dimensions: int, repeat: int) -> tuple[float, list[Row]]:
    """Semantic top-10 over ``count`` stored vectors beside NumPy brute force."""
    embedder = TableEmbedder(count, dimensions)
    with convstore.open(f"sqlite:///{path}", embedder=embedder) as store:
        for start in range(0, count, 1000):
            chat = store.create_conversation(f"vectors {start}").id
            store.append_messages(
                chat, [NewMessage("user", f"v{i}") for i in range(start, start + 1000)]
            )
        matrix = embedder.table
        queries = iter(range(10**9))

        def brute_force() -> None:
            query = matrix[next(queries) % count]
            np.argsort(-(matrix @ query))[:10]

        started = time.perf_counter()
        store.search("v1", mode="semantic", limit=10)  # the first query loads the vectors
        cold = time.perf_counter() - started
        baseline, ours = timings(
            brute_force,
            lambda: store.search(f"v{next(queries) % count}", mode="semantic", limit=10),
            repeat=repeat,
        )
    rows = [
        row(f"top 10 of {count:,} x {dimensions}: NumPy brute force (full sort)", baseline),
        row(f"top 10 of {count:,} x {dimensions}: search(mode='semantic')", ours, baseline),
    ]
    return cold, rows


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="20,000 messages, for a smoke run")
    parser.add_argument("--vectors", type=int, default=100_000, help="vectors for the top-10 run")
    args = parser.parse_args(argv)
    messages, conversations = (20_000, 200) if args.quick else (args.messages, args.conversations)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "search.db"
        seconds, raw = build(path, messages, conversations)
        size = index_bytes(path)
        rows = bench_queries(path, 20 if args.quick else 50)
        vectors = 10_000 if args.quick else args.vectors
        cold, vector_rows = bench_vectors(Path(tmp) / "vectors.db", vectors, 384, 50)
    print(
        f"SQLite {sqlite3.sqlite_version}, {messages:,} messages in {conversations:,} conversations"
    )
    print(f"built in {seconds:.0f} s; raw text {raw / 1e6:.1f} MB, index {size / 1e6:.1f} MB")
    print(table(rows))
    print()
    print(f"vectors: the first query after a change loads them in {cold * 1000:.0f} ms")
    print(table(vector_rows))


if __name__ == "__main__":
    main(sys.argv[1:])
