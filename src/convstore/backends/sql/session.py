"""SqlSession: the Session primitives on one connection inside one transaction.

The unit of work (``convstore.backends.sql.unit``) opens the transaction and hands a
session to the store; the statements it runs are in ``statements``, the mapping between
rows and records in ``rows``, and full-text ranking in ``ranking``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from convstore.backends.sql import ranking, tree
from convstore.backends.sql.flavor import Flavor
from convstore.backends.sql.prepared import StatementCache
from convstore.backends.sql.rows import (
    MESSAGE_COLUMNS,
    conversation_text,
    message_text,
    message_values,
    to_chunk,
    to_conversation,
    to_message,
)
from convstore.backends.sql.schema import (
    changes,
    conversations,
    embeddings,
    message_chunks,
    messages,
    records,
)
from convstore.backends.sql.statements import (
    ALL_MESSAGES,
    CHUNKS_AFTER,
    FIND_MESSAGE,
    GET_CONVERSATION,
    GET_CONVERSATION_FOR_UPDATE,
    GET_RECORD,
    GET_STAMP,
    GET_STAMP_FOR_UPDATE,
    INSERT_CHANGE,
    INSERT_CHUNK,
    INSERT_CONVERSATION,
    INSERT_CONVERSATION_TEXT,
    INSERT_EMBEDDING,
    INSERT_MESSAGE,
    INSERT_MESSAGE_TEXT,
    INSERT_RECORD,
    LAST_CHUNK_SEQ,
    UPDATE_CONVERSATION,
    UPDATE_CONVERSATION_TEXT,
    UPDATE_MESSAGE_TEXT,
    branch_statement,
    conversation_conditions,
    list_statement,
    live,
    message_conditions,
)
from convstore.models import Change, Chunk, Conversation, Message, Usage
from convstore.queries import (
    BranchPage,
    ConversationFilter,
    ConversationQuery,
    ConversationSearch,
    MessageFilter,
    MessageSearch,
)
from convstore.search.semantic import vector_text
from convstore.validation import dump_json


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
        statement = GET_CONVERSATION_FOR_UPDATE if self._locking else GET_CONVERSATION
        rows = self._rows(statement, conversation_id=conversation_id)
        return to_conversation(rows[0]) if rows else None

    def get_stamp(self, conversation_id: str) -> tuple[float, int] | None:
        statement = GET_STAMP_FOR_UPDATE if self._locking else GET_STAMP
        rows = self._rows(statement, conversation_id=conversation_id)
        return (rows[0][0], rows[0][1]) if rows else None

    def insert_conversation(self, conversation: Conversation) -> None:
        values = conversation.model_dump()
        values["meta"] = values.pop("metadata")
        self._run(INSERT_CONVERSATION, [values])
        searchable = {"conversation_id": conversation.id}
        searchable.update(conversation_text(conversation.name, conversation.description))
        self._run(INSERT_CONVERSATION_TEXT, [searchable])
        self._add_words([searchable["name_terms"], searchable["description_terms"]])

    def update_conversation(self, conversation_id: str, values: Mapping[str, Any]) -> None:
        columns = {("meta" if k == "metadata" else k): v for k, v in values.items()}
        self._run(UPDATE_CONVERSATION, [{"target_id": conversation_id, **columns}])
        if "name" in values or "description" in values:
            current = self.get_conversation(conversation_id)
            assert current is not None
            searchable = conversation_text(current.name, current.description)
            self._run(UPDATE_CONVERSATION_TEXT, [{"target_id": conversation_id, **searchable}])
            self._add_words([searchable["name_terms"], searchable["description_terms"]])

    def delete_conversation(self, conversation_id: str) -> None:
        self.conn.execute(sa.delete(changes).where(changes.c.conversation_id == conversation_id))
        # message_chunks go with their messages (ON DELETE CASCADE)
        self.conn.execute(sa.delete(messages).where(messages.c.conversation_id == conversation_id))
        self.conn.execute(sa.delete(conversations).where(conversations.c.id == conversation_id))

    def list_conversations(self, query: ConversationQuery) -> list[Conversation]:
        stmt = list_statement(
            query.order_by,
            query.descending,
            limited=query.limit is not None,
            skipping=query.offset > 0,
        )
        conditions = conversation_conditions(query.where)
        params = {"limit": query.limit, "offset": query.offset}
        found: Sequence[Sequence[Any]]
        if conditions:
            found = self.conn.execute(stmt.where(*conditions), params).all()
        else:
            found = self._rows(stmt, **params)
        return [to_conversation(row) for row in found]

    def count_conversations(self, where: ConversationFilter) -> int:
        stmt = sa.select(sa.func.count()).select_from(conversations)
        stmt = stmt.where(live(), *conversation_conditions(where))
        return int(self.conn.execute(stmt).scalar_one())

    def count_messages(self) -> int:
        stmt = sa.select(sa.func.coalesce(sa.func.sum(conversations.c.message_count), 0))
        return int(self.conn.execute(stmt.where(live())).scalar_one())

    # messages -----------------------------------------------------------------------

    def insert_messages(
        self, new: Sequence[Message], contents_json: Sequence[str] | None = None
    ) -> None:
        texts = contents_json or [dump_json(m.content) for m in new]
        rows = [message_values(m, text) for m, text in zip(new, texts, strict=True)]
        self._run(INSERT_MESSAGE, rows)
        searchable = [message_text(m.id, m.conversation_id, m.content) for m in new]
        self._run(INSERT_MESSAGE_TEXT, searchable)
        self._add_words([row["terms"] for row in searchable])

    def find_message(self, message_id: str) -> Message | None:
        rows = self._rows(FIND_MESSAGE, message_id=message_id)
        return to_message(rows[0]) if rows else None

    def get_messages_by_id(self, conversation_id: str, message_ids: Sequence[str]) -> list[Message]:
        stmt = (
            sa.select(*MESSAGE_COLUMNS)
            .where(messages.c.conversation_id == conversation_id, messages.c.id.in_(message_ids))
            .order_by(messages.c.seq)
        )
        return [to_message(row) for row in self.conn.execute(stmt).all()]

    def get_branch(self, conversation_id: str, page: BranchPage) -> list[Message]:
        stmt = branch_statement(
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
        return [to_message(row) for row in found]

    def get_all_messages(self, conversation_id: str) -> list[Message]:
        found = self._rows(ALL_MESSAGES, conversation_id=conversation_id)
        return [to_message(row) for row in found]

    def update_message(
        self, message_id: str, values: Mapping[str, Any], content_json: str | None = None
    ) -> None:
        columns = dict(values)
        if "content" in columns:  # the vectors described the old text
            self.conn.execute(sa.delete(embeddings).where(embeddings.c.message_id == message_id))
            searchable = message_text(message_id, None, columns["content"])
            del searchable["conversation_id"]
            self._run(UPDATE_MESSAGE_TEXT, [{"target_id": message_id, **searchable}])
            self._add_words([searchable["terms"]])
            columns["content"] = content_json or dump_json(columns["content"])
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

    def set_active_branch(self, conversation_id: str, head_id: str | None) -> None:
        tree.set_active_branch(self.conn, conversation_id, head_id)

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
        return ranking.rank_messages(self.conn, self._flavor, search)

    def rank_conversations(self, search: ConversationSearch) -> list[tuple[Conversation, float]]:
        return ranking.rank_conversations(self.conn, self._flavor, search)

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
        self._run(INSERT_CHUNK, [chunk.model_dump() for chunk in chunks])

    def get_chunks(
        self, conversation_id: str, message_id: str, after: int, limit: int | None
    ) -> list[Chunk]:
        stmt = CHUNKS_AFTER if limit is None else CHUNKS_AFTER.limit(limit)
        rows = self.conn.execute(stmt, {"message_id": message_id, "after": after}).all()
        return [to_chunk(row) for row in rows]

    def last_chunk_seq(self, conversation_id: str, message_id: str) -> int:
        rows = self._rows(LAST_CHUNK_SEQ, message_id=message_id)
        return int(rows[0][0])

    def streaming_messages(self) -> list[tuple[Message, float]]:
        last_chunk = (
            sa.select(sa.func.max(message_chunks.c.created_at))
            .where(message_chunks.c.message_id == messages.c.id)
            .scalar_subquery()
        )
        stmt = sa.select(*MESSAGE_COLUMNS, sa.func.coalesce(last_chunk, messages.c.created_at))
        rows = self.conn.execute(stmt.where(messages.c.status == "streaming")).all()
        return [(to_message(row[:-1]), float(row[-1])) for row in rows]

    # records ------------------------------------------------------------------------

    def get_record(self, namespace: str, key: str) -> tuple[dict[str, Any], float | None] | None:
        rows = self._rows(GET_RECORD, namespace=namespace, key=key)
        return (rows[0][0], rows[0][1]) if rows else None

    def insert_record(
        self, namespace: str, key: str, value: Mapping[str, Any], expires_at: float | None
    ) -> None:
        row = {"namespace": namespace, "key": key, "value": dict(value), "expires_at": expires_at}
        self._run(INSERT_RECORD, [row])

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
        self._run(INSERT_EMBEDDING, rows)
        self._flavor.store_vectors(self.conn, model, vectors)

    def nearest_embeddings(
        self, model: str, where: MessageFilter, vector: bytes, k: int
    ) -> list[tuple[str, float]] | None:
        distance = self._flavor.vector_distance(self.conn, model, len(vector) // 4)
        if distance is None:
            return None
        stmt = sa.select(embeddings.c.message_id, distance).where(embeddings.c.model == model)
        conditions = message_conditions(where)
        if conditions:  # a vector's message is live (deleting one deletes its vectors)
            stmt = (
                stmt.join(messages, messages.c.id == embeddings.c.message_id)
                .join(conversations, conversations.c.id == messages.c.conversation_id)
                .where(live(), *conditions)
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
            .where(embeddings.c.model == model, live(), *message_conditions(where))
        )
        if message_ids is not None:
            stmt = stmt.where(embeddings.c.message_id.in_(message_ids))
        return [(row[0], bytes(row[1])) for row in self.conn.execute(stmt).all()]

    def messages_without_embeddings(self, model: str, limit: int) -> list[Message]:
        missing = (
            sa.select(*MESSAGE_COLUMNS)
            .outerjoin(
                embeddings,
                sa.and_(embeddings.c.message_id == messages.c.id, embeddings.c.model == model),
            )
            .where(embeddings.c.message_id.is_(None))
            .order_by(messages.c.id)
            .limit(limit)
        )
        return [to_message(row) for row in self.conn.execute(missing).all()]

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
        self._run(INSERT_CHANGE, [change])

    def _order_changes(self) -> None:
        """Take the flavor's change-order lock, once per unit."""
        if not self._ordering_changes:
            self._flavor.change_order_lock(self.conn)
            self._ordering_changes = True
