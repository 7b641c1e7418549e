"""PostgreSQL (``postgresql://...``) through psycopg 3 and a connection pool.

Writes run in READ COMMITTED transactions that lock the conversation rows they read
(``SELECT ... FOR UPDATE``), so writers to different conversations proceed in parallel
and writers to one conversation queue, each waiting at most ``lock_timeout``. Reads run
in REPEATABLE READ READ ONLY transactions: one consistent snapshot. Full-text search
uses tsvector columns over the same index terms SQLite's FTS5 reads (migration 0004),
which is what lets Chinese and Japanese be found without a segmenter in the server.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.types import UserDefinedType

from convstore.backends.sql.flavor import Hits
from convstore.backends.sql.schema import conversation_search, message_search
from convstore.config import ConversationManagerConfig
from convstore.errors import (
    ConcurrencyError,
    ConfigurationError,
    ConversationManagerError,
    DataIntegrityError,
    LockTimeoutError,
    StorageError,
)
from convstore.search.query import SearchQuery, Term
from convstore.search.semantic import vector_text

# ts_rank_cd weights for labels D, C, B, A: messages are C, descriptions B, names A, so a
# match in a name counts four times, in a description twice, one in a message.
_WEIGHTS: sa.ColumnElement[object] = sa.literal_column("'{0.1, 0.25, 0.5, 1.0}'::float4[]")
_SERVER_GOING_AWAY = ("57P01", "57P02", "57P03")  # terminated, crash shutdown, starting up
_MIGRATION_LOCK = 7_261_943  # the advisory lock that queues concurrent schema upgrades
_CHANGES_LOCK = 7_261_944  # held from a unit's first change-feed row to its commit


class PostgresFlavor:
    """PostgreSQL 13 or newer."""

    begin_read = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
    begin_write = "BEGIN ISOLATION LEVEL READ COMMITTED"
    locks_rows = True

    def __init__(self, url: str, config: ConversationManagerConfig) -> None:
        try:
            parsed = make_url(url).set(drivername="postgresql+psycopg")
        except sa.exc.ArgumentError as exc:
            raise ConfigurationError(f"store URL {url!r} is not a PostgreSQL URL") from exc
        self._url = parsed
        self.description = parsed.render_as_string(hide_password=True)
        self._lock_timeout_ms = max(int(config.lock_timeout * 1000), 1)
        self.has_vectors = False  # the embeddings table has pgvector's column (0006)
        self._indexed: set[tuple[str, int]] = set()  # (model, dimensions) with an index

    def create_engine(self, config: ConversationManagerConfig) -> Engine:
        engine = sa.create_engine(
            self._url,
            isolation_level="AUTOCOMMIT",  # the backend emits BEGIN and COMMIT itself
            pool_size=10,
            max_overflow=10,
            pool_pre_ping=True,
        )
        settings = (
            f"SET lock_timeout = {self._lock_timeout_ms}; "
            # random reads cost little on SSDs (PostgreSQL's docs suggest 1.1 there); with
            # the default of 4 the planner prefers scanning all messages to join a few
            # dozen full-text matches by primary key
            "SET random_page_cost = 1.1"
        )

        @event.listens_for(engine, "connect")
        def _configure(dbapi_connection: Any, _record: object) -> None:
            with dbapi_connection.cursor() as cursor:
                cursor.execute(settings)

        return engine

    def migration_lock(self, conn: Connection) -> None:
        """Queue processes upgrading the schema at once behind one another."""
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")

    def change_order_lock(self, conn: Connection) -> None:
        """Writers to different conversations commit in parallel, so two change ids could
        become visible out of order and a reader resuming after the higher one would
        miss the lower; queueing units from their first change row to their commit makes
        ids visible in order."""
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_CHANGES_LOCK})")

    def after_migration(self, conn: Connection) -> None:
        self.has_vectors = (
            conn.exec_driver_sql(
                "SELECT 1 FROM information_schema.columns"
                " WHERE table_name = 'embeddings' AND column_name = 'embedding'"
                " AND table_schema = current_schema()"
            ).first()
            is not None
        )

    def store_vectors(self, conn: Connection, model: str, vectors: Mapping[str, bytes]) -> None:
        """Copy the vectors into pgvector's column, and make sure their model has an HNSW
        index (one per model and dimension count: HNSW needs a fixed dimension)."""
        if not self.has_vectors or not vectors:
            return
        dimensions = len(next(iter(vectors.values()))) // 4
        self._ensure_index(conn, model, dimensions)
        conn.exec_driver_sql(
            "UPDATE embeddings SET embedding = CAST(%(v)s AS vector)"
            " WHERE message_id = %(id)s AND model = %(model)s",
            [{"id": i, "model": model, "v": vector_text(v)} for i, v in vectors.items()],
        )

    def vector_distance(
        self, conn: Connection, model: str, dimensions: int
    ) -> sa.ColumnElement[float] | None:
        """Cosine distance through the model's HNSW index. Iterative scans (pgvector 0.8)
        keep reading the index until enough rows pass the search's filters."""
        if not self.has_vectors:
            return None
        conn.exec_driver_sql("SET LOCAL hnsw.iterative_scan = relaxed_order")
        fixed = _Vector(dimensions)  # the expression the model's index is built on
        stored = sa.cast(sa.literal_column("embeddings.embedding"), fixed)
        query = sa.cast(sa.bindparam("query_vector", type_=sa.String), fixed)
        distance: sa.ColumnElement[float] = stored.op("<=>", return_type=sa.Float)(query)
        return distance

    def _ensure_index(self, conn: Connection, model: str, dimensions: int) -> None:
        if (model, dimensions) in self._indexed:
            return
        digest = hashlib.sha256(f"{model}\0{dimensions}".encode()).hexdigest()[:16]
        conn.exec_driver_sql(  # two processes must not build the same index at once
            f"SELECT pg_advisory_xact_lock({int(digest[:12], 16)})"
        )
        literal = "'" + model.replace("'", "''") + "'"
        conn.exec_driver_sql(
            f"CREATE INDEX IF NOT EXISTS ix_embeddings_hnsw_{digest} ON embeddings"
            f" USING hnsw ((embedding::vector({int(dimensions)})) vector_cosine_ops)"
            f" WHERE model = {literal}"
        )
        self._indexed.add((model, dimensions))

    def process_locks(self, write: bool) -> list[threading.Lock]:
        return []

    def is_driver_error(self, exc: BaseException) -> bool:
        import psycopg

        return isinstance(exc, psycopg.Error)

    def typed_error(self, exc: BaseException) -> ConversationManagerError | None:
        state = getattr(exc, "sqlstate", None) or ""
        if state == "55P03":
            return LockTimeoutError(
                f"could not lock a row of {self.description}: another writer held it past "
                "lock_timeout"
            )
        if state in ("40001", "40P01"):
            return ConcurrencyError(
                f"a concurrent write on {self.description} conflicted: {exc}", transient=True
            )
        if state.startswith("08") or state in _SERVER_GOING_AWAY or _lost_connection(exc):
            return StorageError(
                f"the connection to {self.description} failed: {exc}", transient=True
            )
        if state == "23505":
            return ConcurrencyError(f"already exists in {self.description}: {exc}")
        if state.startswith("XX"):
            return DataIntegrityError(f"{self.description} reports damage: {exc}")
        return None

    def damage(self, conn: Connection) -> list[str]:
        """PostgreSQL checks its pages itself; nothing more to ask here."""
        return []

    def disk_usage(self, conn: Connection) -> int:
        return int(conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar_one())

    def message_hits(self) -> Hits:
        return _hits(message_search)

    def conversation_hits(self) -> Hits:
        return _hits(conversation_search)

    def message_params(self, name: str, query: SearchQuery) -> dict[str, str]:
        return _tsqueries(name, query)

    def conversation_params(self, name: str, query: SearchQuery) -> dict[str, str]:
        return _tsqueries(name, query)

    def words_containing(self, conn: Connection, fragment: str, limit: int) -> list[str]:
        """Through the vocabulary's pg_trgm index where the server has one (0007); the
        fragment holds only letters and digits, so it needs no LIKE escapes."""
        rows = conn.exec_driver_sql(
            "SELECT word FROM search_words WHERE word LIKE %(pattern)s"
            ' ORDER BY length(word), word COLLATE "C" LIMIT %(limit)s',
            {"pattern": f"%{fragment}%", "limit": limit},
        )
        return [row[0] for row in rows]

    def add_words(self, cursor: Any, words: Sequence[str]) -> None:
        cursor.execute(
            "INSERT INTO search_words(word) SELECT unnest(%s::text[]) ON CONFLICT DO NOTHING",
            (list(words),),
        )

    def kept_apart(self, select: Any) -> Any:
        return select


class _Vector(UserDefinedType[Any]):
    """pgvector's ``vector(N)``, for casts."""

    cache_ok = True

    def __init__(self, dimensions: int) -> None:
        self.dimensions = int(dimensions)

    def get_col_spec(self, **_: Any) -> str:
        return f"vector({self.dimensions})"


def _lost_connection(exc: BaseException) -> bool:
    """A psycopg error raised because the connection broke (it carries no SQLSTATE)."""
    import psycopg

    return isinstance(exc, psycopg.OperationalError) and getattr(exc, "sqlstate", None) is None


def _hits(table: sa.Table) -> Hits:
    """Rows of a search table matched through its tsvector columns, ranked by ts_rank_cd."""

    def score(parameter: str) -> sa.ColumnElement[float]:
        query = sa.func.to_tsquery("simple", sa.bindparam(f"{parameter}_terms"))
        terms: sa.ColumnElement[object] = sa.literal_column(f"{table.name}.terms_tsv")
        return -sa.func.ts_rank_cd(_WEIGHTS, terms, query, type_=sa.Float)

    return Hits(table, table.c.key, score, partial(_match, table.name), is_search_table=True)


def _match(table: str, parameter: str, params: Mapping[str, Any]) -> sa.TextClause:
    """Rows whose terms and single characters match; a part the query lacks is left out
    (an always-true OR would hide the condition from the planner's estimates)."""
    parts = [
        f"{table}.{column}_tsv @@ to_tsquery('simple', :{parameter}_{column})"
        for column in ("terms", "singles")
        if params.get(f"{parameter}_{column}")
    ]
    return sa.text(" AND ".join(parts) or "true")


def _tsqueries(name: str, query: SearchQuery) -> dict[str, str]:
    """The query as two tsquery texts: over the terms, and over the single characters."""
    terms = [_sequence(t) for t in query.required if _sequence(t)]
    terms += [f"!({_sequence(t)})" for t in query.excluded if _sequence(t)]
    singles = [_singles(t) for t in query.required if _singles(t)]
    singles += [f"!({_singles(t)})" for t in query.excluded if _singles(t)]
    return {f"{name}_terms": " & ".join(terms), f"{name}_singles": " & ".join(singles)}


def _sequence(term: Term) -> str:
    words = [_lexeme(t) for t, single in term.tokens if not single]
    if not words:
        return ""
    if term.contains:
        return "(" + " | ".join(_lexeme(w) for w in sorted(term.alternatives)) + ")"
    if term.prefix:
        return f"{words[0]}:*"
    return " <-> ".join(words)


def _singles(term: Term) -> str:
    return " & ".join(_lexeme(t) for t, single in term.tokens if single)


def _lexeme(token: str) -> str:
    """A token as a quoted tsquery lexeme (tokens hold only letters and digits)."""
    return "'" + token.replace("'", "''").replace("\\", "\\\\") + "'"
