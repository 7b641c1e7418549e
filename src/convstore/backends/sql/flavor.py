"""What differs between the SQL databases the backend runs on, in one small interface.

Everything else (the schema, the statements, the session primitives) is shared; a
flavor says how to connect, how transactions begin, how driver errors map to
convstore's, how the database checks itself, and how its full-text index is queried.

This is the base every flavor module (``sqlite``, ``postgres``) builds on; it imports
none of them. ``registry`` picks the flavor of a URL.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from convstore.config import ConversationManagerConfig
from convstore.errors import ConversationManagerError
from convstore.search.query import SearchQuery


@dataclass(frozen=True)
class Hits:
    """How a flavor's full-text index finds rows: the relation to select from, the
    search row's key, and the score (lower is better) and match condition of a query
    whose parameters (see Flavor.message_params) carry the given name; the condition
    may look at the parameters' values to leave out parts that would match anything."""

    source: sa.FromClause
    key: sa.ColumnElement[int]
    score: Callable[[str], sa.ColumnElement[float]]
    match: Callable[[str, Mapping[str, Any]], sa.ColumnElement[bool] | sa.TextClause]
    is_search_table: bool  # the source is the search table itself, no join needed


class Flavor(Protocol):
    """One SQL database, as the backend needs to know it."""

    description: str  # names the database in messages, without credentials
    begin_read: str
    begin_write: str
    locks_rows: bool  # write units lock the conversation rows they read (FOR UPDATE)

    def create_engine(self, config: ConversationManagerConfig) -> Engine: ...
    def process_locks(self, write: bool) -> list[threading.Lock]: ...
    def is_driver_error(self, exc: BaseException) -> bool: ...
    def typed_error(self, exc: BaseException) -> ConversationManagerError | None: ...
    def damage(self, conn: Connection) -> list[str]: ...
    def disk_usage(self, conn: Connection) -> int: ...
    def message_hits(self) -> Hits: ...
    def conversation_hits(self) -> Hits: ...
    def message_params(self, name: str, query: SearchQuery) -> dict[str, str]: ...
    def conversation_params(self, name: str, query: SearchQuery) -> dict[str, str]: ...
    def words_containing(self, conn: Connection, fragment: str, limit: int) -> list[str]:
        """Session.words_containing, from the vocabulary of migration 0007."""

    def add_words(self, cursor: Any, words: Sequence[str]) -> None:
        """Add words (sorted, distinct) to the vocabulary, skipping those it holds, in one
        statement on the unit's DBAPI cursor."""

    def migration_lock(self, conn: Connection) -> None: ...
    def change_order_lock(self, conn: Connection) -> None:
        """Make change-feed ids commit in order (subscribers resume by id), if the
        database can commit writers' ids out of order."""

    def kept_apart(self, select: sa.Select[Any]) -> sa.Select[Any]: ...
    def after_migration(self, conn: Connection) -> None:
        """Learn what the migrated database offers (such as a vector index)."""

    def store_vectors(self, conn: Connection, model: str, vectors: Mapping[str, bytes]) -> None:
        """Index vectors just stored, if the database has a vector index."""

    def vector_distance(
        self, conn: Connection, model: str, dimensions: int
    ) -> sa.ColumnElement[float] | None:
        """The indexed cosine distance of embeddings to the ``query_vector`` parameter,
        or None when the database has no vector index (the store then searches exactly)."""
