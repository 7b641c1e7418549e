"""Engines for the SQL backend: URL parsing, SQLite pragmas and transaction modes.

SQLite is opened in WAL mode so readers never block the writer. Neither the driver nor
SQLAlchemy manages transactions (the engine is in AUTOCOMMIT mode): the backend emits
``BEGIN IMMEDIATE`` for writes (taking the write lock up front, so a transaction never
fails half-way on a lock), a plain ``BEGIN`` for reads (one consistent snapshot), and
``COMMIT`` or ``ROLLBACK`` at the end of each unit of work.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool

from convstore.config import ConversationManagerConfig
from convstore.errors import ConfigurationError

BEGIN_WRITE = "BEGIN IMMEDIATE"
BEGIN_READ = "BEGIN"


@dataclass(frozen=True)
class EngineSpec:
    """What a store URL means for the SQL backend."""

    sqlalchemy_url: str
    path: Path | None  # the database file, None when in memory


def parse_url(url: str) -> EngineSpec:
    """Map ``sqlite:///PATH`` and ``memory://`` to a SQLAlchemy URL and file path."""
    if url in ("memory://", "memory:", "sqlite://", "sqlite:///:memory:"):
        return EngineSpec("sqlite://", None)
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if not path:
            raise ConfigurationError(f"store URL {url!r} names no database file")
        return EngineSpec(f"sqlite:///{path}", Path(path))
    raise ConfigurationError(
        f"store URL {url!r} is not a SQLite URL (use sqlite:///PATH or memory://)"
    )


def create_engine(spec: EngineSpec, config: ConversationManagerConfig) -> Engine:
    """An engine with convstore's pragmas and transaction modes installed."""
    connect_args: dict[str, Any] = {"check_same_thread": False, "timeout": config.lock_timeout}
    if spec.path is None:
        engine = sa.create_engine(
            spec.sqlalchemy_url,
            poolclass=StaticPool,
            connect_args=connect_args,
            isolation_level="AUTOCOMMIT",
        )
    else:
        spec.path.parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            spec.sqlalchemy_url,
            connect_args=connect_args,
            isolation_level="AUTOCOMMIT",
            pool_size=8,
            max_overflow=8,
        )
    synchronous = "FULL" if config.durability == "full" else "NORMAL"
    in_memory = spec.path is None

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        dbapi_connection.isolation_level = None  # the backend emits BEGIN itself
        if not in_memory:
            dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute(f"PRAGMA synchronous={synchronous}")
        dbapi_connection.execute("PRAGMA foreign_keys=ON")

    return engine
