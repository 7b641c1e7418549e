"""Statements compiled once per dialect and run straight on the DBAPI connection.

Every append and page read runs the same handful of statements. Executing a Core
statement costs SQLAlchemy tens of microseconds (cache key, execution context, result
objects), several times what SQLite itself takes, so those few statements are compiled
once here and executed on the driver's cursor. The SQL text, parameter order and type
conversions (JSON in and out) still come from SQLAlchemy, so every dialect works.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql.compiler import SQLCompiler

Processor = Callable[[Any], Any]


class PreparedStatement:
    """One compiled statement with the processors for its parameters and columns."""

    def __init__(
        self, statement: sa.ClauseElement, dialect: Dialect, column_keys: Sequence[str] | None
    ) -> None:
        compiled = statement.compile(
            dialect=dialect, column_keys=None if column_keys is None else list(column_keys)
        )
        assert isinstance(compiled, SQLCompiler)
        self.sql = compiled.string
        self._names = list(compiled.positiontup or compiled.binds)
        self._positional = compiled.positiontup is not None
        # values the statement carries itself, such as the True of "active = ?"
        self._fixed = {name: b.value for name, b in compiled.binds.items() if not b.required}
        self._bind: dict[str, Processor] = {}
        for name, bind in compiled.binds.items():
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                self._bind[name] = process
        self._result: list[tuple[int, Processor]] = []
        if isinstance(statement, sa.Select):
            for index, column in enumerate(statement.selected_columns):
                process = column.type.dialect_impl(dialect).result_processor(dialect, None)
                if process is not None:
                    self._result.append((index, process))

    def parameters(self, values: Mapping[str, Any]) -> Sequence[Any] | dict[str, Any]:
        """``values`` converted for the driver, in its paramstyle."""
        converted = []
        for name in self._names:
            value = values[name] if name in values else self._fixed[name]
            process = self._bind.get(name)
            converted.append(value if process is None else process(value))
        if self._positional:
            return converted
        return dict(zip(self._names, converted, strict=True))

    def rows(self, conn: Connection, values: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Run a query and return its rows as tuples, converted like Core would."""
        cursor = _cursor(conn)
        try:
            cursor.execute(self.sql, self.parameters(values))
            found: list[tuple[Any, ...]] = cursor.fetchall()
        finally:
            cursor.close()
        if not self._result:
            return found
        converted = []
        for row in found:
            values_ = list(row)
            for index, process in self._result:
                values_[index] = process(values_[index])
            converted.append(tuple(values_))
        return converted

    def run(self, conn: Connection, values: Iterable[Mapping[str, Any]]) -> None:
        """Run a write once per mapping in ``values``."""
        cursor = _cursor(conn)
        try:
            batch = [self.parameters(v) for v in values]
            if len(batch) == 1:
                cursor.execute(self.sql, batch[0])
            else:
                cursor.executemany(self.sql, batch)
        finally:
            cursor.close()


class StatementCache:
    """PreparedStatements of one engine, by statement and (for writes) column set."""

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        self._prepared: dict[tuple[int, tuple[str, ...] | None], PreparedStatement] = {}
        self._keep: list[sa.ClauseElement] = []  # keeps ids in the keys valid

    def get(
        self, statement: sa.ClauseElement, column_keys: Iterable[str] | None = None
    ) -> PreparedStatement:
        keys = None if column_keys is None else tuple(column_keys)
        key = (id(statement), keys)
        prepared = self._prepared.get(key)
        if prepared is None:
            prepared = PreparedStatement(statement, self._dialect, keys)
            self._keep.append(statement)
            self._prepared[key] = prepared
        return prepared


def _cursor(conn: Connection) -> Any:
    return conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
