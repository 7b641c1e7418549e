"""SqlBackend: the Backend protocol on SQLAlchemy Core (SQLite on disk or in memory, or
PostgreSQL).

The backend opens the engine and migrates the schema; each unit of work
(``convstore.backends.sql.unit``) yields a SqlSession (``convstore.backends.sql.session``)
on one transaction. What differs between databases is the flavor's (``registry``
picks it from the URL).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from convstore.backends.base import RepairReport
from convstore.backends.sql import migrate
from convstore.backends.sql.prepared import StatementCache
from convstore.backends.sql.registry import flavor_for
from convstore.backends.sql.schema import conversations
from convstore.backends.sql.session import SqlSession
from convstore.backends.sql.statements import COUNTS
from convstore.backends.sql.unit import UnitOfWork, translate_errors
from convstore.config import ConversationManagerConfig


class SqlBackend:
    """Conversations in a SQL database reached through SQLAlchemy Core."""

    def __init__(self, url: str, config: ConversationManagerConfig) -> None:
        self.url = url
        self._flavor = flavor_for(url, config)
        self._lock_timeout = config.lock_timeout
        with translate_errors(self._flavor):
            self._engine = self._flavor.create_engine(config)
            self._statements = StatementCache(self._engine.dialect)
            migrate.ensure_schema(self._engine, self._migrating)
            with self._engine.connect() as conn:
                self._flavor.after_migration(conn)

    @contextmanager
    def _migrating(self) -> Iterator[SqlSession]:
        """A write unit that also holds the database's schema-upgrade lock."""
        with self.write() as session:
            self._flavor.migration_lock(session.conn)
            yield session

    def read(self) -> UnitOfWork:
        return self._unit(write=False)

    def write(self) -> UnitOfWork:
        return self._unit(write=True)

    def _unit(self, *, write: bool) -> UnitOfWork:
        """A unit of work on this backend's engine (entered by the caller)."""
        return UnitOfWork(
            self._engine, self._statements, self._flavor, self._lock_timeout, write=write
        )

    def close(self) -> None:
        self._engine.dispose()

    def disk_usage(self) -> int:
        with self.read() as session:
            return self._flavor.disk_usage(session.conn)

    def integrity_problems(self) -> Iterator[str]:
        with self.read() as session:
            problems = self._flavor.damage(session.conn) + _counter_problems(session.conn)
        yield from problems

    def repair(self) -> RepairReport:
        """Recount conversations whose counters disagree with their messages. Damage to
        the database itself cannot be fixed in place: restore a backup."""
        actions = []
        with self.write() as session:
            if self._flavor.damage(session.conn):
                actions.append(
                    f"{self._flavor.description} is damaged and cannot be repaired in place; "
                    "restore it from a backup (convstore restore)"
                )
            actions += _recount(session.conn)
        return RepairReport(actions)


def _recount(conn: Connection) -> list[str]:
    """Set message_count and last_seq from the messages where they disagree."""
    fixed = []
    for conv_id, count, last_seq, n, top in conn.execute(COUNTS).all():
        if count != (n or 0) or (top or 0) > last_seq:
            conn.execute(
                sa.update(conversations)
                .where(conversations.c.id == conv_id)
                .values(message_count=n or 0, last_seq=max(last_seq, top or 0))
            )
            fixed.append(f"recounted conversation {conv_id}: {n or 0} messages")
    return fixed


def _counter_problems(conn: Connection) -> list[str]:
    """Conversations whose stored counters disagree with their messages."""
    problems = []
    for conv_id, count, last_seq, n, top in conn.execute(COUNTS).all():
        if count != (n or 0):
            problems.append(f"conversation {conv_id}: message_count {count} but {n or 0} messages")
        if (top or 0) > last_seq:
            problems.append(f"conversation {conv_id}: last_seq {last_seq} below stored seq {top}")
    return problems
