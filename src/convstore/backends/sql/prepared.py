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
from sqlalchemy.engine import Dialect
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
        names = list(compiled.positiontup or compiled.binds)
        self._names = names
        self._positional = compiled.positiontup is not None
        # (name, the value the statement carries itself such as the True of "active = ?",
        #  the conversion to the driver's type) for each parameter, in the driver's order
        self._params: list[tuple[str, Any, Processor | None]] = []
        for name in names:
            bind = compiled.binds[name]
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            self._params.append((name, None if bind.required else bind.value, process))
        self._dialect = dialect
        self._columns = list(statement.selected_columns) if isinstance(statement, sa.Select) else []
        self._result: list[tuple[int, Processor]] | None = None  # known after the first run

    def parameters(self, values: Mapping[str, Any]) -> Sequence[Any] | dict[str, Any]:
        """``values`` converted for the driver, in its paramstyle."""
        converted = []
        for name, fixed, process in self._params:
            value = values.get(name, fixed)
            converted.append(value if process is None else process(value))
        if self._positional:
            return converted
        return dict(zip(self._names, converted, strict=True))

    def rows(self, cursor: Any, values: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Run a query on a DBAPI cursor; its rows as tuples, converted like Core would."""
        cursor.execute(self.sql, self.parameters(values))
        found: list[tuple[Any, ...]] = cursor.fetchall()
        if self._result is None:
            self._result = self._processors(cursor.description)
        if not self._result:
            return found
        converted = []
        for row in found:
            values_ = list(row)
            for index, process in self._result:
                values_[index] = process(values_[index])
            converted.append(tuple(values_))
        return converted

    def _processors(self, description: Sequence[Sequence[Any]]) -> list[tuple[int, Processor]]:
        """The result conversions of the columns, given the driver's column types."""
        found: list[tuple[int, Processor]] = []
        for index, (column, described) in enumerate(zip(self._columns, description, strict=True)):
            impl = column.type.dialect_impl(self._dialect)
            process: Processor | None = impl.result_processor(self._dialect, described[1])
            if process is not None and isinstance(column.type, sa.JSON):
                process = _common_json_first(process)
            if process is not None:
                found.append((index, process))
        return found

    def run(self, cursor: Any, values: Sequence[Mapping[str, Any]]) -> None:
        """Run a write on a DBAPI cursor, once per mapping in ``values``."""
        if len(values) == 1:
            cursor.execute(self.sql, self.parameters(values[0]))
        else:
            cursor.executemany(self.sql, [self.parameters(v) for v in values])


def _common_json_first(process: Processor) -> Processor:
    """``process`` for a JSON column, answering its two most common texts directly: the
    ``{}`` of empty metadata and the ``null`` of a message without usage."""

    def decode(value: Any) -> Any:
        if value is None or value == "null":
            return None
        if value == "{}":
            return {}
        return process(value)

    return decode


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
