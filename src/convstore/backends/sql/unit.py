"""The SQL backend's unit of work, and the translation of driver errors into convstore's.

A unit is one transaction: the process-local locks, a pooled connection, BEGIN, and
COMMIT (or ROLLBACK when the block raises). Driver errors, raw or wrapped by SQLAlchemy,
leave it as the typed errors of ``convstore.errors``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from convstore.backends.sql.flavor import Flavor
from convstore.backends.sql.prepared import StatementCache
from convstore.backends.sql.session import SqlSession
from convstore.errors import (
    ConcurrencyError,
    ConversationManagerError,
    LockTimeoutError,
    StorageError,
)


class UnitOfWork:
    """One transaction on ``engine``, yielding a SqlSession, with driver errors turned
    into typed ones.

    A plain class rather than a generator: it wraps every single store call.
    """

    def __init__(
        self,
        engine: Engine,
        statements: StatementCache,
        flavor: Flavor,
        lock_timeout: float,
        *,
        write: bool,
    ) -> None:
        self._engine = engine
        self._statements = statements
        self._flavor = flavor
        self._lock_timeout = lock_timeout
        self._write = write
        self._locks = flavor.process_locks(write)
        self._held: list[threading.Lock] = []
        self._conn: Connection | None = None
        self._cursor: Any = None

    def __enter__(self) -> SqlSession:
        flavor = self._flavor
        for lock in self._locks:
            if not lock.acquire(timeout=self._lock_timeout):
                self._release()
                raise LockTimeoutError(
                    f"could not lock {flavor.description} within {self._lock_timeout}s "
                    "(another writer in this process holds it)"
                )
            self._held.append(lock)
        try:
            self._conn = self._engine.connect()
            self._cursor = self._conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            self._cursor.execute(flavor.begin_write if self._write else flavor.begin_read)
        except BaseException as exc:
            self._release()
            if is_driver_error(flavor, exc):
                raise typed_error(flavor, exc) from exc
            raise
        return SqlSession(self._conn, self._cursor, self._statements, flavor, self._write)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        flavor = self._flavor
        try:
            self._cursor.execute("ROLLBACK" if exc_type else "COMMIT")
        except BaseException as end_error:
            if is_driver_error(flavor, end_error):
                typed = typed_error(flavor, end_error)
                if exc_type is None and not isinstance(typed, ConcurrencyError):
                    typed.transient = False  # the COMMIT may have happened: never repeat it
                raise typed from end_error
            raise
        finally:
            self._release()
        if exc is not None and is_driver_error(flavor, exc):
            raise typed_error(flavor, exc) from exc

    def _release(self) -> None:
        """Close the cursor and connection, if open, and release the locks held."""
        if self._cursor is not None:
            self._cursor.close()
            self._cursor = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        while self._held:
            self._held.pop().release()


@contextmanager
def translate_errors(flavor: Flavor) -> Iterator[None]:
    """Raise driver errors, raw or wrapped by SQLAlchemy, as convstore's typed errors."""
    try:
        yield
    except Exception as exc:
        if is_driver_error(flavor, exc):
            raise typed_error(flavor, exc) from exc
        raise


def is_driver_error(flavor: Flavor, exc: BaseException) -> bool:
    """Whether ``exc`` comes from the database driver (directly or through SQLAlchemy)."""
    return isinstance(exc, sa.exc.DBAPIError) or flavor.is_driver_error(exc)


def typed_error(flavor: Flavor, exc: BaseException) -> ConversationManagerError:
    """The convstore error for a driver error."""
    original = exc.orig if isinstance(exc, sa.exc.DBAPIError) and exc.orig else exc
    typed = flavor.typed_error(original)
    if typed is not None:
        return typed
    return StorageError(f"storage error on {flavor.description}: {original}")
