"""SQLite: a file in WAL mode (``sqlite:///PATH``) or a database in memory (``memory://``).

WAL mode lets readers go on while one writer writes. Neither the driver nor SQLAlchemy
manages transactions (the engine is in AUTOCOMMIT mode): the backend emits ``BEGIN
IMMEDIATE`` for writes (taking the write lock up front, so a transaction never fails
half-way on a lock), a plain ``BEGIN`` for reads (one consistent snapshot), and
``COMMIT`` or ``ROLLBACK`` at the end. Full-text search uses the FTS5 tables that
migration 0002 creates over the search tables.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

from convstore.backends.sql.flavor import Hits
from convstore.config import ConversationManagerConfig
from convstore.errors import (
    ConfigurationError,
    ConversationManagerError,
    DataIntegrityError,
    LockTimeoutError,
)
from convstore.search.query import SearchQuery

_MESSAGES_FTS = sa.table("messages_fts", sa.column("rowid"))
_CONVERSATIONS_FTS = sa.table("conversations_fts", sa.column("rowid"))
_NAME_WEIGHTS = "4.0, 4.0, 2.0, 2.0"  # name, name singles, description, description singles


class SqliteFlavor:
    """SQLite through the standard library's sqlite3 driver."""

    begin_read = "BEGIN"
    begin_write = "BEGIN IMMEDIATE"
    locks_rows = False  # BEGIN IMMEDIATE already holds the database's one write lock

    def __init__(self, url: str, config: ConversationManagerConfig) -> None:
        self.path = _database_path(url)
        self.description = str(self.path) if self.path else "the in-memory store"
        self._config = config
        # One writer per process at a time: threads queue here instead of spinning on
        # SQLite's busy handler. In memory, the one shared connection is guarded too.
        self._memory_lock = threading.Lock() if self.path is None else None
        self._write_lock = threading.Lock()

    def create_engine(self, config: ConversationManagerConfig) -> Engine:
        """An engine with WAL, the configured durability and foreign keys on."""
        connect_args: dict[str, Any] = {"check_same_thread": False, "timeout": config.lock_timeout}
        if self.path is None:
            engine = sa.create_engine(
                "sqlite://",
                poolclass=StaticPool,
                connect_args=connect_args,
                isolation_level="AUTOCOMMIT",
            )
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(
                f"sqlite:///{self.path}",
                connect_args=connect_args,
                isolation_level="AUTOCOMMIT",
                pool_size=8,
                max_overflow=8,
            )
        synchronous = "FULL" if config.durability == "full" else "NORMAL"
        in_memory = self.path is None

        @event.listens_for(engine, "connect")
        def _configure(dbapi_connection: sqlite3.Connection, _record: object) -> None:
            dbapi_connection.isolation_level = None  # the backend emits BEGIN itself
            if not in_memory:
                _use_wal(dbapi_connection, config.lock_timeout)
            dbapi_connection.execute(f"PRAGMA synchronous={synchronous}")
            dbapi_connection.execute("PRAGMA foreign_keys=ON")

        return engine

    def process_locks(self, write: bool) -> list[threading.Lock]:
        if self._memory_lock is not None:
            return [self._memory_lock]
        return [self._write_lock] if write else []

    def is_driver_error(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.Error)

    def typed_error(self, exc: BaseException) -> ConversationManagerError | None:
        text = str(exc).lower()
        if isinstance(exc, sqlite3.OperationalError) and "locked" in text:
            return LockTimeoutError(
                f"could not lock {self.description}: another process held it past lock_timeout"
            )
        if "not a database" in text or "malformed" in text or "corrupt" in text:
            return DataIntegrityError(
                f"{self.description} is damaged or is not a SQLite database: {exc}"
            )
        return None

    def damage(self, conn: Connection) -> list[str]:
        """What SQLite's own checks find: damaged pages and broken foreign keys."""
        pages = [row[0] for row in conn.exec_driver_sql("PRAGMA integrity_check").all()]
        problems = [page for page in pages if page != "ok"]
        problems += [
            f"foreign key violation in {row[0]} row {row[1]}"
            for row in conn.exec_driver_sql("PRAGMA foreign_key_check").all()
        ]
        return problems

    def disk_usage(self, conn: Connection) -> int:
        if self.path is None:
            return 0
        files = [self.path, *(self.path.with_name(self.path.name + s) for s in ("-wal", "-shm"))]
        return sum(f.stat().st_size for f in files if f.exists())

    def message_hits(self) -> Hits:
        return Hits(
            _MESSAGES_FTS,
            _MESSAGES_FTS.c.rowid,
            lambda _: sa.literal_column("bm25(messages_fts)"),
            lambda parameter, _: sa.text(f"messages_fts MATCH :{parameter}"),
            is_search_table=False,
        )

    def conversation_hits(self) -> Hits:
        return Hits(
            _CONVERSATIONS_FTS,
            _CONVERSATIONS_FTS.c.rowid,
            lambda _: sa.literal_column(f"bm25(conversations_fts, {_NAME_WEIGHTS})"),
            lambda parameter, _: sa.text(f"conversations_fts MATCH :{parameter}"),
            is_search_table=False,
        )

    def message_params(self, name: str, query: SearchQuery) -> dict[str, str]:
        return {name: query.fts5("terms", "singles")}

    def conversation_params(self, name: str, query: SearchQuery) -> dict[str, str]:
        columns = ("{name_terms description_terms}", "{name_singles description_singles}")
        return {name: query.fts5(*columns)}

    def words_containing(self, conn: Connection, fragment: str, limit: int) -> list[str]:
        """Through the trigram index of the vocabulary (migration 0007)."""
        rows = conn.exec_driver_sql(
            "SELECT word FROM search_words_fts WHERE search_words_fts MATCH ?"
            " AND instr(word, ?) > 0 ORDER BY length(word), word LIMIT ?",
            (f'"{fragment}"', fragment, limit),
        )
        return [row[0] for row in rows]

    def add_words(self, cursor: Any, words: Sequence[str]) -> None:
        cursor.execute(
            "INSERT OR IGNORE INTO search_words(word) SELECT value FROM json_each(?)",
            (json.dumps(words),),
        )

    def migration_lock(self, conn: Connection) -> None:
        """Nothing: BEGIN IMMEDIATE already queues writers, upgrades included."""

    def after_migration(self, conn: Connection) -> None:
        """Nothing to learn: SQLite here has no vector index."""

    def store_vectors(self, conn: Connection, model: str, vectors: Mapping[str, bytes]) -> None:
        """Nothing: vectors are searched exactly, above the backend."""

    def vector_distance(
        self, conn: Connection, model: str, dimensions: int
    ) -> sa.ColumnElement[float] | None:
        return None

    def change_order_lock(self, conn: Connection) -> None:
        """Nothing: one writer at a time commits changes in id order already."""

    def kept_apart(self, select: sa.Select[Any]) -> sa.Select[Any]:
        """LIMIT -1 keeps SQLite from flattening a subquery into the query around it,
        where bm25() would lose the full-text context it needs."""
        return select.limit(-1)


def _use_wal(connection: sqlite3.Connection, timeout: float) -> None:
    """Put the file in WAL mode (a lasting property of the file, so usually already set).
    Switching needs the file to itself: while another connection sets up a fresh file,
    SQLite refuses at once instead of waiting (its busy handler could deadlock there), so
    the wait for it, up to ``timeout``, is here."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def _database_path(url: str) -> Path | None:
    """The file of ``sqlite:///PATH``; None for ``memory://`` and its synonyms."""
    if url in ("memory://", "memory:", "sqlite://", "sqlite:///:memory:"):
        return None
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if not path:
            raise ConfigurationError(f"store URL {url!r} names no database file")
        return Path(path)
    raise ConfigurationError(
        f"store URL {url!r} is not a SQLite URL (use sqlite:///PATH or memory://)"
    )
