"""SqlBackend: the Backend protocol on SQLAlchemy Core (SQLite on disk or in memory)."""

from __future__ import annotations

import functools
import json
import math
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from convstore.backends.base import Change, RepairReport
from convstore.backends.sql import migrate
from convstore.backends.sql.flavor import Flavor, Hits, flavor_for
from convstore.backends.sql.prepared import StatementCache
from convstore.backends.sql.schema import (
    changes,
    conversation_search,
    conversations,
    embeddings,
    message_chunks,
    message_search,
    messages,
    records,
)
from convstore.config import ConversationManagerConfig
from convstore.errors import (
    ConcurrencyError,
    ConversationManagerError,
    DataIntegrityError,
    LockTimeoutError,
    StorageError,
)
from convstore.models import Chunk, Conversation, Message, MessageStatus, Role, Usage
from convstore.queries import (
    BranchPage,
    ConversationFilter,
    ConversationQuery,
    ConversationSearch,
    MessageFilter,
    MessageSearch,
    MetadataEquals,
    TimeRange,
)
from convstore.search.ranking import RANK_WINDOW
from convstore.search.semantic import vector_text
from convstore.search.text import index_text
from convstore.validation import dump_json, text_values


class SqlBackend:
    """Conversations in a SQL database reached through SQLAlchemy Core."""

    def __init__(self, url: str, config: ConversationManagerConfig) -> None:
        self.url = url
        self._flavor = flavor_for(url, config)
        self._lock_timeout = config.lock_timeout
        with _translate_errors(self._flavor):
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

    def read(self) -> _UnitOfWork:
        return _UnitOfWork(self, write=False)

    def write(self) -> _UnitOfWork:
        return _UnitOfWork(self, write=True)

    def close(self) -> None:
        self._engine.dispose()

    def disk_usage(self) -> int:
        with self.read() as session:
            return self._flavor.disk_usage(session.conn)

    def integrity_problems(self) -> Iterator[str]:
        with self.read() as session:
            problems = self._flavor.damage(session.conn) + session.counter_problems()
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
            actions += session.recount()
        return RepairReport(actions)


class _UnitOfWork:
    """One transaction: the process-local locks, a pooled connection, BEGIN, and COMMIT
    (or ROLLBACK when the block raises), with driver errors turned into typed ones.

    A plain class rather than a generator: it wraps every single store call.
    """

    def __init__(self, backend: SqlBackend, *, write: bool) -> None:
        self._backend = backend
        self._flavor = backend._flavor
        self._write = write
        self._locks = self._flavor.process_locks(write)
        self._held: list[threading.Lock] = []
        self._conn: Connection | None = None
        self._cursor: Any = None

    def __enter__(self) -> SqlSession:
        backend, flavor = self._backend, self._flavor
        for lock in self._locks:
            if not lock.acquire(timeout=backend._lock_timeout):
                self._release()
                raise LockTimeoutError(
                    f"could not lock {flavor.description} within {backend._lock_timeout}s "
                    "(another writer in this process holds it)"
                )
            self._held.append(lock)
        try:
            self._conn = backend._engine.connect()
            self._cursor = self._conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            self._cursor.execute(flavor.begin_write if self._write else flavor.begin_read)
        except BaseException as exc:
            self._release()
            if _is_driver_error(flavor, exc):
                raise _typed_error(flavor, exc) from exc
            raise
        return SqlSession(self._conn, self._cursor, backend._statements, flavor, self._write)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        flavor = self._flavor
        try:
            self._cursor.execute("ROLLBACK" if exc_type else "COMMIT")
        except BaseException as end_error:
            if _is_driver_error(flavor, end_error):
                typed = _typed_error(flavor, end_error)
                if exc_type is None and not isinstance(typed, ConcurrencyError):
                    typed.transient = False  # the COMMIT may have happened: never repeat it
                raise typed from end_error
            raise
        finally:
            self._release()
        if exc is not None and _is_driver_error(flavor, exc):
            raise _typed_error(flavor, exc) from exc

    def _release(self) -> None:
        if self._cursor is not None:
            self._cursor.close()
            self._cursor = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        while self._held:
            self._held.pop().release()


@contextmanager
def _translate_errors(flavor: Flavor) -> Iterator[None]:
    """Raise driver errors, raw or wrapped by SQLAlchemy, as convstore's typed errors."""
    try:
        yield
    except Exception as exc:
        if _is_driver_error(flavor, exc):
            raise _typed_error(flavor, exc) from exc
        raise


def _is_driver_error(flavor: Flavor, exc: BaseException) -> bool:
    return isinstance(exc, sa.exc.DBAPIError) or flavor.is_driver_error(exc)


def _typed_error(flavor: Flavor, exc: BaseException) -> ConversationManagerError:
    """The convstore error for a driver error."""
    original = exc.orig if isinstance(exc, sa.exc.DBAPIError) and exc.orig else exc
    typed = flavor.typed_error(original)
    if typed is not None:
        return typed
    return StorageError(f"storage error on {flavor.description}: {original}")


class SqlSession:
    """The Session primitives on one connection inside one transaction."""

    def __init__(
        self,
        conn: Connection,
        cursor: Any,
        statements: StatementCache,
        flavor: Flavor,
        write: bool,
    ) -> None:
        self.conn = conn
        self._cursor = cursor  # the DBAPI cursor of conn, for prepared statements
        self._statements = statements
        self._flavor = flavor
        self._locking = write and flavor.locks_rows
        self._ordering_changes = False

    def _rows(self, statement: sa.Select[Any], **values: Any) -> list[tuple[Any, ...]]:
        return self._statements.get(statement).rows(self._cursor, values)

    def _run(self, statement: sa.ClauseElement, rows: Sequence[Mapping[str, Any]]) -> None:
        self._statements.get(statement, rows[0].keys()).run(self._cursor, rows)

    # conversations ------------------------------------------------------------------

    def get_conversation(self, conversation_id: str) -> Conversation | None:
        statement = _GET_CONVERSATION_FOR_UPDATE if self._locking else _GET_CONVERSATION
        rows = self._rows(statement, conversation_id=conversation_id)
        return _conversation(rows[0]) if rows else None

    def get_stamp(self, conversation_id: str) -> tuple[float, int] | None:
        statement = _GET_STAMP_FOR_UPDATE if self._locking else _GET_STAMP
        rows = self._rows(statement, conversation_id=conversation_id)
        return (rows[0][0], rows[0][1]) if rows else None

    def insert_conversation(self, conversation: Conversation) -> None:
        values = conversation.model_dump()
        values["meta"] = values.pop("metadata")
        self._run(_INSERT_CONVERSATION, [values])
        searchable = {"conversation_id": conversation.id}
        searchable.update(_conversation_text(conversation.name, conversation.description))
        self._run(_INSERT_CONVERSATION_TEXT, [searchable])
        self._add_words([searchable["name_terms"], searchable["description_terms"]])

    def update_conversation(self, conversation_id: str, values: Mapping[str, Any]) -> None:
        columns = {("meta" if k == "metadata" else k): v for k, v in values.items()}
        self._run(_UPDATE_CONVERSATION, [{"target_id": conversation_id, **columns}])
        if "name" in values or "description" in values:
            current = self.get_conversation(conversation_id)
            assert current is not None
            searchable = _conversation_text(current.name, current.description)
            self._run(_UPDATE_CONVERSATION_TEXT, [{"target_id": conversation_id, **searchable}])
            self._add_words([searchable["name_terms"], searchable["description_terms"]])

    def delete_conversation(self, conversation_id: str) -> None:
        self.conn.execute(sa.delete(changes).where(changes.c.conversation_id == conversation_id))
        # message_chunks go with their messages (ON DELETE CASCADE)
        self.conn.execute(sa.delete(messages).where(messages.c.conversation_id == conversation_id))
        self.conn.execute(sa.delete(conversations).where(conversations.c.id == conversation_id))

    def list_conversations(self, query: ConversationQuery) -> list[Conversation]:
        stmt = _list_statement(
            query.order_by,
            query.descending,
            limited=query.limit is not None,
            skipping=query.offset > 0,
        )
        conditions = _conversation_conditions(query.where)
        params = {"limit": query.limit, "offset": query.offset}
        found: Sequence[Sequence[Any]]
        if conditions:
            found = self.conn.execute(stmt.where(*conditions), params).all()
        else:
            found = self._rows(stmt, **params)
        return [_conversation(row) for row in found]

    def count_conversations(self, where: ConversationFilter) -> int:
        stmt = sa.select(sa.func.count()).select_from(conversations)
        stmt = stmt.where(_live(), *_conversation_conditions(where))
        return int(self.conn.execute(stmt).scalar_one())

    def count_messages(self) -> int:
        stmt = sa.select(sa.func.coalesce(sa.func.sum(conversations.c.message_count), 0))
        return int(self.conn.execute(stmt.where(_live())).scalar_one())

    # messages -----------------------------------------------------------------------

    def insert_messages(self, new: Sequence[Message]) -> None:
        self._run(_INSERT_MESSAGE, [_message_values(m) for m in new])
        searchable = [_message_text(m.id, m.conversation_id, m.content) for m in new]
        self._run(_INSERT_MESSAGE_TEXT, searchable)
        self._add_words([row["terms"] for row in searchable])

    def find_message(self, message_id: str) -> Message | None:
        rows = self._rows(_FIND_MESSAGE, message_id=message_id)
        return _message(rows[0]) if rows else None

    def get_messages_by_id(self, conversation_id: str, message_ids: Sequence[str]) -> list[Message]:
        stmt = (
            sa.select(*_MESSAGE_COLUMNS)
            .where(messages.c.conversation_id == conversation_id, messages.c.id.in_(message_ids))
            .order_by(messages.c.seq)
        )
        return [_message(row) for row in self.conn.execute(stmt).all()]

    def get_branch(self, conversation_id: str, page: BranchPage) -> list[Message]:
        stmt = _branch_statement(
            before=page.before_seq is not None,
            after=page.after_seq is not None,
            newest_first=page.newest_first,
            limited=page.limit is not None,
            skipping=page.offset > 0,
        )
        found = self._rows(
            stmt,
            conversation_id=conversation_id,
            before_seq=page.before_seq,
            after_seq=page.after_seq,
            limit=page.limit,
            offset=page.offset,
        )
        return [_message(row) for row in found]

    def get_all_messages(self, conversation_id: str) -> list[Message]:
        found = self._rows(_ALL_MESSAGES, conversation_id=conversation_id)
        return [_message(row) for row in found]

    def update_message(self, message_id: str, values: Mapping[str, Any]) -> None:
        columns = dict(values)
        if "content" in columns:  # the vectors described the old text
            self.conn.execute(sa.delete(embeddings).where(embeddings.c.message_id == message_id))
            searchable = _message_text(message_id, None, columns["content"])
            del searchable["conversation_id"]
            self._run(_UPDATE_MESSAGE_TEXT, [{"target_id": message_id, **searchable}])
            self._add_words([searchable["terms"]])
            columns["content"] = dump_json(columns["content"])
        if "metadata" in columns:
            columns["meta"] = columns.pop("metadata")
        if isinstance(columns.get("usage"), Usage):
            columns["usage"] = columns["usage"].model_dump()
        self.conn.execute(sa.update(messages).where(messages.c.id == message_id).values(**columns))

    def delete_messages(self, conversation_id: str, message_ids: Sequence[str]) -> None:
        self.conn.execute(
            sa.delete(messages).where(
                messages.c.conversation_id == conversation_id, messages.c.id.in_(message_ids)
            )
        )

    def reparent_messages(
        self, conversation_id: str, old_parent_id: str, new_parent_id: str | None
    ) -> None:
        self.conn.execute(
            sa.update(messages)
            .where(
                messages.c.conversation_id == conversation_id, messages.c.parent_id == old_parent_id
            )
            .values(parent_id=new_parent_id)
        )

    def rank_messages(self, search: MessageSearch) -> list[tuple[Message, float]]:
        hits = self._flavor.message_hits()
        params: dict[str, Any] = self._flavor.message_params("expression", search.query)
        score = hits.score("expression")
        stmt = (
            sa.select(*_MESSAGE_COLUMNS, score)
            .select_from(
                _with_search_rows(hits, message_search)
                .join(messages, messages.c.id == message_search.c.message_id)
                .join(conversations, conversations.c.id == messages.c.conversation_id)
            )
            .where(hits.match("expression", params), hits.key >= sa.bindparam("floor"), _live())
            .where(*_message_conditions(search.where))
            .order_by(score, messages.c.id)
        )
        stmt = _page(stmt, search.limit is not None, search.offset > 0)
        params.update(
            floor=self._rank_floor(hits, "expression", params),
            limit=search.limit,
            offset=search.offset,
        )
        return [(_message(row), -row[-1]) for row in self.conn.execute(stmt, params).all()]

    def _rank_floor(self, hits: Hits, name: str, params: Mapping[str, Any]) -> int:
        """The smallest search key among the RANK_WINDOW newest matches (0: rank them all)."""
        newest = (
            sa.select(hits.key)
            .select_from(hits.source)
            .where(hits.match(name, params))
            .order_by(hits.key.desc())
            .limit(1)
            .offset(RANK_WINDOW - 1)
        )
        found = self.conn.execute(newest, dict(params)).first()
        return int(found[0]) if found else 0

    def rank_conversations(self, search: ConversationSearch) -> list[tuple[Conversation, float]]:
        flavor = self._flavor
        by_name, by_message = flavor.conversation_hits(), flavor.message_hits()
        params: dict[str, Any] = flavor.conversation_params("in_names", search.query)
        params.update(flavor.message_params("in_messages", search.query))
        in_text = (
            sa.select(
                conversation_search.c.conversation_id.label("cid"),
                by_name.score("in_names").label("score"),
            )
            .select_from(_with_search_rows(by_name, conversation_search))
            .where(by_name.match("in_names", params))
        )
        found: sa.Select[Any] | sa.CompoundSelect[Any] = in_text
        if search.in_messages:
            found = sa.union_all(
                in_text,
                sa.select(
                    message_search.c.conversation_id.label("cid"),
                    by_message.score("in_messages").label("score"),
                )
                .select_from(_with_search_rows(by_message, message_search))
                .where(by_message.match("in_messages", params))
                .where(by_message.key >= sa.bindparam("floor")),
            )
        hits = flavor.kept_apart(found).subquery()  # type: ignore[arg-type]
        best = (
            sa.select(hits.c.cid, sa.func.min(hits.c.score).label("score"))
            .group_by(hits.c.cid)
            .subquery()
        )
        stmt = (
            sa.select(*_CONVERSATION_COLUMNS, best.c.score)
            .join_from(conversations, best, best.c.cid == conversations.c.id)
            .where(_live(), *_conversation_conditions(search.where))
            .order_by(best.c.score, conversations.c.id)
        )
        stmt = _page(stmt, search.limit is not None, search.offset > 0)
        params.update(
            floor=self._rank_floor(by_message, "in_messages", params) if search.in_messages else 0,
            limit=search.limit,
            offset=search.offset,
        )
        rows = self.conn.execute(stmt, params).all()
        return [(_conversation(row[:-1]), -row[-1]) for row in rows]

    def words_containing(self, fragment: str, limit: int) -> list[str]:
        return self._flavor.words_containing(self.conn, fragment, limit)

    def _add_words(self, terms: Sequence[str]) -> None:
        """Add the words of index texts to the vocabulary that *fragment* queries read.
        They are added under the change-order lock (which the unit holds to its commit
        anyway), so writers adding the same new words queue instead of deadlocking."""
        words = sorted({word for text in terms for word in text.split()})
        if words:
            self._order_changes()
            self._flavor.add_words(self._cursor, words)

    # streamed replies ---------------------------------------------------------------

    def insert_chunks(self, conversation_id: str, chunks: Sequence[Chunk]) -> None:
        self._run(_INSERT_CHUNK, [chunk.model_dump() for chunk in chunks])

    def get_chunks(
        self, conversation_id: str, message_id: str, after: int, limit: int | None
    ) -> list[Chunk]:
        stmt = _CHUNKS_AFTER if limit is None else _CHUNKS_AFTER.limit(limit)
        rows = self.conn.execute(stmt, {"message_id": message_id, "after": after}).all()
        return [Chunk.from_stored(dict(zip(_CHUNK_FIELDS, row, strict=True))) for row in rows]

    def last_chunk_seq(self, conversation_id: str, message_id: str) -> int:
        rows = self._rows(_LAST_CHUNK_SEQ, message_id=message_id)
        return int(rows[0][0])

    def streaming_messages(self) -> list[tuple[Message, float]]:
        last_chunk = (
            sa.select(sa.func.max(message_chunks.c.created_at))
            .where(message_chunks.c.message_id == messages.c.id)
            .scalar_subquery()
        )
        stmt = sa.select(*_MESSAGE_COLUMNS, sa.func.coalesce(last_chunk, messages.c.created_at))
        rows = self.conn.execute(stmt.where(messages.c.status == "streaming")).all()
        return [(_message(row[:-1]), float(row[-1])) for row in rows]

    # records ------------------------------------------------------------------------

    def get_record(self, namespace: str, key: str) -> tuple[dict[str, Any], float | None] | None:
        rows = self._rows(_GET_RECORD, namespace=namespace, key=key)
        return (rows[0][0], rows[0][1]) if rows else None

    def insert_record(
        self, namespace: str, key: str, value: Mapping[str, Any], expires_at: float | None
    ) -> None:
        row = {"namespace": namespace, "key": key, "value": dict(value), "expires_at": expires_at}
        self._run(_INSERT_RECORD, [row])

    def delete_record(self, namespace: str, key: str) -> bool:
        deleted = self.conn.execute(
            sa.delete(records).where(records.c.namespace == namespace, records.c.key == key)
        )
        return bool(deleted.rowcount)

    def list_records(
        self, namespace: str | None
    ) -> list[tuple[str, str, dict[str, Any], float | None]]:
        c = records.c
        stmt = sa.select(c.namespace, c.key, c.value, c.expires_at).order_by(c.namespace, c.key)
        if namespace is not None:
            stmt = stmt.where(c.namespace == namespace)
        return [(row[0], row[1], row[2], row[3]) for row in self.conn.execute(stmt).all()]

    # embeddings ---------------------------------------------------------------------

    def put_embeddings(self, model: str, vectors: Mapping[str, bytes]) -> None:
        ids = list(vectors)
        self.conn.execute(
            sa.delete(embeddings).where(
                embeddings.c.model == model, embeddings.c.message_id.in_(ids)
            )
        )
        rows = [{"message_id": i, "model": model, "vector": v} for i, v in vectors.items()]
        self._run(_INSERT_EMBEDDING, rows)
        self._flavor.store_vectors(self.conn, model, vectors)

    def nearest_embeddings(
        self, model: str, where: MessageFilter, vector: bytes, k: int
    ) -> list[tuple[str, float]] | None:
        distance = self._flavor.vector_distance(self.conn, model, len(vector) // 4)
        if distance is None:
            return None
        stmt = sa.select(embeddings.c.message_id, distance).where(embeddings.c.model == model)
        conditions = _message_conditions(where)
        if conditions:  # a vector's message is live (deleting one deletes its vectors)
            stmt = (
                stmt.join(messages, messages.c.id == embeddings.c.message_id)
                .join(conversations, conversations.c.id == messages.c.conversation_id)
                .where(_live(), *conditions)
            )
        stmt = stmt.order_by(distance).limit(k)
        rows = self.conn.execute(stmt, {"query_vector": vector_text(vector)}).all()
        return [(row[0], 0.0 if math.isnan(row[1]) else 1.0 - row[1]) for row in rows]

    def get_embeddings(
        self, model: str, where: MessageFilter, message_ids: Sequence[str] | None = None
    ) -> list[tuple[str, bytes]]:
        stmt = (
            sa.select(embeddings.c.message_id, embeddings.c.vector)
            .join(messages, messages.c.id == embeddings.c.message_id)
            .join(conversations, conversations.c.id == messages.c.conversation_id)
            .where(embeddings.c.model == model, _live(), *_message_conditions(where))
        )
        if message_ids is not None:
            stmt = stmt.where(embeddings.c.message_id.in_(message_ids))
        return [(row[0], bytes(row[1])) for row in self.conn.execute(stmt).all()]

    def messages_without_embeddings(self, model: str, limit: int) -> list[Message]:
        missing = (
            sa.select(*_MESSAGE_COLUMNS)
            .outerjoin(
                embeddings,
                sa.and_(embeddings.c.message_id == messages.c.id, embeddings.c.model == model),
            )
            .where(embeddings.c.message_id.is_(None))
            .order_by(messages.c.id)
            .limit(limit)
        )
        return [_message(row) for row in self.conn.execute(missing).all()]

    def changes_since(self, mark: int, limit: int) -> list[Change]:
        stmt = sa.select(changes).where(changes.c.id > mark).order_by(changes.c.id).limit(limit)
        return [
            Change(row.id, row.conversation_id, row.kind, row.payload)
            for row in self.conn.execute(stmt).all()
        ]

    def change_mark(self) -> int:
        return int(
            self.conn.execute(
                sa.select(sa.func.coalesce(sa.func.max(changes.c.id), 0))
            ).scalar_one()
        )

    # change feed --------------------------------------------------------------------

    def record_change(self, conversation_id: str, kind: str, payload: Mapping[str, Any]) -> None:
        change = {
            "conversation_id": conversation_id,
            "kind": kind,
            "payload": dict(payload),
            "created_at": time.time(),
        }
        self._order_changes()
        self._run(_INSERT_CHANGE, [change])

    def _order_changes(self) -> None:
        """Take the flavor's change-order lock, once per unit."""
        if not self._ordering_changes:
            self._flavor.change_order_lock(self.conn)
            self._ordering_changes = True

    # checks -------------------------------------------------------------------------

    def recount(self) -> list[str]:
        """Set message_count and last_seq from the messages where they disagree."""
        fixed = []
        for conv_id, count, last_seq, n, top in self.conn.execute(_COUNTS).all():
            if count != (n or 0) or (top or 0) > last_seq:
                self.conn.execute(
                    sa.update(conversations)
                    .where(conversations.c.id == conv_id)
                    .values(message_count=n or 0, last_seq=max(last_seq, top or 0))
                )
                fixed.append(f"recounted conversation {conv_id}: {n or 0} messages")
        return fixed

    def counter_problems(self) -> list[str]:
        """Conversations whose stored counters disagree with their messages."""
        problems = []
        for conv_id, count, last_seq, n, top in self.conn.execute(_COUNTS).all():
            if count != (n or 0):
                problems.append(
                    f"conversation {conv_id}: message_count {count} but {n or 0} messages"
                )
            if (top or 0) > last_seq:
                problems.append(
                    f"conversation {conv_id}: last_seq {last_seq} below stored seq {top}"
                )
        return problems


# statements ---------------------------------------------------------------------------
# The hot paths run statements built once, with bound parameters: building a statement
# and computing its cache key costs several times more than executing it on SQLite.

_MESSAGE_COLUMNS = [column for column in messages.c if column.key != "active"]

_CONVERSATION_COLUMNS = [column for column in conversations.c if column.key != "deleted_at"]
_CONVERSATION_FIELDS = [
    "metadata" if column.key == "meta" else column.key for column in _CONVERSATION_COLUMNS
]

_GET_CONVERSATION = sa.select(*_CONVERSATION_COLUMNS).where(
    conversations.c.deleted_at.is_(None),
    conversations.c.id == sa.bindparam("conversation_id"),
)
_GET_STAMP = sa.select(conversations.c.created_at, conversations.c.version).where(
    conversations.c.deleted_at.is_(None),
    conversations.c.id == sa.bindparam("conversation_id"),
)
# write units of databases with row locks hold the conversation until they end
_GET_CONVERSATION_FOR_UPDATE = _GET_CONVERSATION.with_for_update()
_GET_STAMP_FOR_UPDATE = _GET_STAMP.with_for_update()
_INSERT_CONVERSATION = sa.insert(conversations)
_UPDATE_CONVERSATION = sa.update(conversations).where(
    conversations.c.id == sa.bindparam("target_id")
)
_INSERT_MESSAGE = sa.insert(messages)
_FIND_MESSAGE = sa.select(*_MESSAGE_COLUMNS).where(messages.c.id == sa.bindparam("message_id"))
_INSERT_CHANGE = sa.insert(changes)
_COUNTED = (
    sa.select(
        messages.c.conversation_id,
        sa.func.count().label("n"),
        sa.func.max(messages.c.seq).label("top"),
    )
    .group_by(messages.c.conversation_id)
    .subquery()
)
# each conversation's counters beside what its messages say
_COUNTS = sa.select(
    conversations.c.id,
    conversations.c.message_count,
    conversations.c.last_seq,
    _COUNTED.c.n,
    _COUNTED.c.top,
).outerjoin(_COUNTED, _COUNTED.c.conversation_id == conversations.c.id)
_INSERT_MESSAGE_TEXT = sa.insert(message_search)
_INSERT_EMBEDDING = sa.insert(embeddings)
_UPDATE_MESSAGE_TEXT = sa.update(message_search).where(
    message_search.c.message_id == sa.bindparam("target_id")
)
_INSERT_CONVERSATION_TEXT = sa.insert(conversation_search)
_INSERT_CHUNK = sa.insert(message_chunks)
_CHUNK_FIELDS = ["message_id", "seq", "delta", "created_at"]
_CHUNKS_AFTER = (
    sa.select(*(message_chunks.c[name] for name in _CHUNK_FIELDS))
    .where(
        message_chunks.c.message_id == sa.bindparam("message_id"),
        message_chunks.c.seq > sa.bindparam("after"),
    )
    .order_by(message_chunks.c.seq)
)
_LAST_CHUNK_SEQ = sa.select(sa.func.coalesce(sa.func.max(message_chunks.c.seq), 0)).where(
    message_chunks.c.message_id == sa.bindparam("message_id")
)
_GET_RECORD = sa.select(records.c.value, records.c.expires_at).where(
    records.c.namespace == sa.bindparam("namespace"), records.c.key == sa.bindparam("key")
)
_INSERT_RECORD = sa.insert(records)
_UPDATE_CONVERSATION_TEXT = sa.update(conversation_search).where(
    conversation_search.c.conversation_id == sa.bindparam("target_id")
)
_ALL_MESSAGES = (
    sa.select(*_MESSAGE_COLUMNS)
    .where(messages.c.conversation_id == sa.bindparam("conversation_id"))
    .order_by(messages.c.seq)
)


@functools.cache
def _branch_statement(
    *, before: bool, after: bool, newest_first: bool, limited: bool, skipping: bool
) -> sa.Select[Any]:
    """The query for one shape of BranchPage; the page's numbers are bound parameters."""
    c = messages.c
    stmt = sa.select(*_MESSAGE_COLUMNS).where(
        c.conversation_id == sa.bindparam("conversation_id"), c.active.is_(True)
    )
    if before:
        stmt = stmt.where(c.seq < sa.bindparam("before_seq"))
    if after:
        stmt = stmt.where(c.seq > sa.bindparam("after_seq"))
    stmt = stmt.order_by(c.seq.desc() if newest_first else c.seq)
    return _page(stmt, limited, skipping)


@functools.cache
def _list_statement(
    order_by: str, descending: bool, *, limited: bool, skipping: bool
) -> sa.Select[Any]:
    """The query for one ordering of conversations, before any filter is added."""
    column, tiebreak = conversations.c[order_by], conversations.c.id
    stmt = sa.select(*_CONVERSATION_COLUMNS).where(_live())
    if descending:
        stmt = stmt.order_by(column.desc(), tiebreak.desc())
    else:
        stmt = stmt.order_by(column.asc(), tiebreak.asc())
    return _page(stmt, limited, skipping)


# helpers ------------------------------------------------------------------------------


def _with_search_rows(hits: Hits, search_table: sa.Table) -> sa.FromClause:
    """The flavor's full-text source joined to the search table's rows (if separate)."""
    if hits.is_search_table:
        return search_table
    return hits.source.join(search_table, search_table.c.key == hits.key)


def _live() -> sa.ColumnElement[bool]:
    return conversations.c.deleted_at.is_(None)


def _page(stmt: sa.Select[Any], limited: bool, skipping: bool) -> sa.Select[Any]:
    if limited:
        stmt = stmt.limit(sa.bindparam("limit", type_=sa.Integer))
    if skipping:
        stmt = stmt.offset(sa.bindparam("offset", type_=sa.Integer))
    return stmt


def _time_conditions(
    column: sa.ColumnElement[float], bounds: TimeRange
) -> list[sa.ColumnElement[bool]]:
    conditions = []
    if bounds.after is not None:
        conditions.append(column > bounds.after)
    if bounds.before is not None:
        conditions.append(column <= bounds.before)
    return conditions


def _metadata_conditions(
    column: sa.ColumnElement[Any], wanted: Sequence[MetadataEquals]
) -> list[sa.ColumnElement[bool]]:
    conditions = []
    for condition in wanted:
        element = column[condition.path]
        value = condition.value
        if value is None:
            conditions.append(element.as_json() == sa.null())
        elif isinstance(value, bool):
            conditions.append(element.as_boolean() == value)
        elif isinstance(value, int):
            conditions.append(element.as_integer() == value)
        elif isinstance(value, float):
            conditions.append(element.as_float() == value)
        else:
            conditions.append(element.as_string() == value)
    return conditions


def _conversation_conditions(where: ConversationFilter) -> list[sa.ColumnElement[bool]]:
    c = conversations.c
    conditions: list[sa.ColumnElement[bool]] = []
    if where.owner_id is not None:
        conditions.append(c.owner_id == where.owner_id)
    if where.conversation_ids is not None:
        conditions.append(c.id.in_(where.conversation_ids))
    conditions += _time_conditions(c.created_at, where.created)
    conditions += _time_conditions(c.updated_at, where.updated)
    conditions += _metadata_conditions(c.meta, where.metadata)
    return conditions


def _message_conditions(where: MessageFilter) -> list[sa.ColumnElement[bool]]:
    """Conditions on messages joined to their conversations."""
    c = messages.c
    conditions: list[sa.ColumnElement[bool]] = []
    if where.owner_id is not None:
        conditions.append(conversations.c.owner_id == where.owner_id)
    if where.conversation_ids is not None:
        conditions.append(c.conversation_id.in_(where.conversation_ids))
    if where.roles is not None:
        conditions.append(c.role.in_([r.value for r in where.roles]))
    if where.statuses is not None:
        conditions.append(c.status.in_([s.value for s in where.statuses]))
    conditions += _time_conditions(c.created_at, where.created)
    conditions += _metadata_conditions(c.meta, where.metadata)
    return conditions


def _conversation(row: Sequence[Any]) -> Conversation:
    """A Conversation from a row of _CONVERSATION_COLUMNS."""
    return Conversation.from_stored(dict(zip(_CONVERSATION_FIELDS, row, strict=True)))


_ROLES = {role.value: role for role in Role}
_STATUSES = {status.value: status for status in MessageStatus}


def _message(row: Sequence[Any]) -> Message:
    """A Message from a row of _MESSAGE_COLUMNS (by position: this runs for every row)."""
    (id_, conversation_id, parent_id, seq, role, type_, content, status, sender_id) = row[:9]
    try:
        return Message.from_stored(
            {
                "id": id_,
                "conversation_id": conversation_id,
                "parent_id": parent_id,
                "seq": seq,
                "role": _ROLES[role],
                "type": type_,
                "content": _decode_content(content),
                "status": _STATUSES[status],
                "sender_id": sender_id,
                "created_at": row[9],
                "updated_at": row[10],
                "metadata": row[11],
                "usage": None if row[12] is None else Usage.from_stored(row[12]),
            }
        )
    except (ValueError, KeyError) as exc:
        raise DataIntegrityError(f"message {id_} is damaged: {exc!r}") from exc


def _decode_content(text: str) -> Any:
    """Stored content: most of it is a JSON string without escapes, whose characters
    between the quotes are its value as they stand, so json.loads is skipped for it."""
    inner = text[1:-1]
    if text[:1] == text[-1:] == '"' and len(text) > 1 and "\\" not in inner and '"' not in inner:
        return inner
    return json.loads(text)


def _message_text(message_id: str, conversation_id: str | None, content: Any) -> dict[str, Any]:
    """The message_search row of a message."""
    indexed = index_text(text_values(content))
    return {
        "message_id": message_id,
        "conversation_id": conversation_id,
        "terms": indexed.terms,
        "singles": indexed.singles,
    }


def _conversation_text(name: str, description: str | None) -> dict[str, str]:
    """The searchable columns of a conversation_search row."""
    name_text, description_text = index_text([name]), index_text([description or ""])
    return {
        "name_terms": name_text.terms,
        "name_singles": name_text.singles,
        "description_terms": description_text.terms,
        "description_singles": description_text.singles,
    }


def _message_values(message: Message) -> dict[str, Any]:
    return {
        "id": message.id,
        "conversation_id": message.conversation_id,
        "parent_id": message.parent_id,
        "seq": message.seq,
        "active": True,
        "role": message.role.value,
        "type": message.type,
        "content": dump_json(message.content),
        "status": message.status.value,
        "sender_id": message.sender_id,
        "created_at": message.created_at,
        "updated_at": message.updated_at,
        "meta": message.metadata,
        "usage": None if message.usage is None else message.usage.model_dump(),
    }
