"""The SQL backend's statements: built once where they can be, by shape where they cannot.

The hot paths run statements built once, with bound parameters: building a statement
and computing its cache key costs several times more than executing it on SQLite. The
builders below make one statement per shape of a query (cached), and turn filters into
WHERE conditions.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from convstore.backends.sql.flavor import Hits
from convstore.backends.sql.rows import CHUNK_COLUMNS, CONVERSATION_COLUMNS, MESSAGE_COLUMNS
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
from convstore.queries import ConversationFilter, MessageFilter, MetadataEquals, TimeRange

GET_CONVERSATION = sa.select(*CONVERSATION_COLUMNS).where(
    conversations.c.deleted_at.is_(None),
    conversations.c.id == sa.bindparam("conversation_id"),
)
GET_STAMP = sa.select(conversations.c.created_at, conversations.c.version).where(
    conversations.c.deleted_at.is_(None),
    conversations.c.id == sa.bindparam("conversation_id"),
)
# write units of databases with row locks hold the conversation until they end
GET_CONVERSATION_FOR_UPDATE = GET_CONVERSATION.with_for_update()
GET_STAMP_FOR_UPDATE = GET_STAMP.with_for_update()
INSERT_CONVERSATION = sa.insert(conversations)
UPDATE_CONVERSATION = sa.update(conversations).where(
    conversations.c.id == sa.bindparam("target_id")
)
INSERT_MESSAGE = sa.insert(messages)
FIND_MESSAGE = sa.select(*MESSAGE_COLUMNS).where(messages.c.id == sa.bindparam("message_id"))
INSERT_CHANGE = sa.insert(changes)
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
COUNTS = sa.select(
    conversations.c.id,
    conversations.c.message_count,
    conversations.c.last_seq,
    _COUNTED.c.n,
    _COUNTED.c.top,
).outerjoin(_COUNTED, _COUNTED.c.conversation_id == conversations.c.id)
INSERT_MESSAGE_TEXT = sa.insert(message_search)
INSERT_EMBEDDING = sa.insert(embeddings)
UPDATE_MESSAGE_TEXT = sa.update(message_search).where(
    message_search.c.message_id == sa.bindparam("target_id")
)
INSERT_CONVERSATION_TEXT = sa.insert(conversation_search)
INSERT_CHUNK = sa.insert(message_chunks)
CHUNKS_AFTER = (
    sa.select(*CHUNK_COLUMNS)
    .where(
        message_chunks.c.message_id == sa.bindparam("message_id"),
        message_chunks.c.seq > sa.bindparam("after"),
    )
    .order_by(message_chunks.c.seq)
)
LAST_CHUNK_SEQ = sa.select(sa.func.coalesce(sa.func.max(message_chunks.c.seq), 0)).where(
    message_chunks.c.message_id == sa.bindparam("message_id")
)
GET_RECORD = sa.select(records.c.value, records.c.expires_at).where(
    records.c.namespace == sa.bindparam("namespace"), records.c.key == sa.bindparam("key")
)
INSERT_RECORD = sa.insert(records)
UPDATE_CONVERSATION_TEXT = sa.update(conversation_search).where(
    conversation_search.c.conversation_id == sa.bindparam("target_id")
)
ALL_MESSAGES = (
    sa.select(*MESSAGE_COLUMNS)
    .where(messages.c.conversation_id == sa.bindparam("conversation_id"))
    .order_by(messages.c.seq)
)


@functools.cache
def branch_statement(
    *, before: bool, after: bool, newest_first: bool, limited: bool, skipping: bool
) -> sa.Select[Any]:
    """The query for one shape of BranchPage; the page's numbers are bound parameters."""
    c = messages.c
    stmt = sa.select(*MESSAGE_COLUMNS).where(
        c.conversation_id == sa.bindparam("conversation_id"), c.active.is_(True)
    )
    if before:
        stmt = stmt.where(c.seq < sa.bindparam("before_seq"))
    if after:
        stmt = stmt.where(c.seq > sa.bindparam("after_seq"))
    stmt = stmt.order_by(c.seq.desc() if newest_first else c.seq)
    return paged(stmt, limited, skipping)


@functools.cache
def list_statement(
    order_by: str, descending: bool, *, limited: bool, skipping: bool
) -> sa.Select[Any]:
    """The query for one ordering of conversations, before any filter is added."""
    column, tiebreak = conversations.c[order_by], conversations.c.id
    stmt = sa.select(*CONVERSATION_COLUMNS).where(live())
    if descending:
        stmt = stmt.order_by(column.desc(), tiebreak.desc())
    else:
        stmt = stmt.order_by(column.asc(), tiebreak.asc())
    return paged(stmt, limited, skipping)


def with_search_rows(hits: Hits, search_table: sa.Table) -> sa.FromClause:
    """The flavor's full-text source joined to the search table's rows (if separate)."""
    if hits.is_search_table:
        return search_table
    return hits.source.join(search_table, search_table.c.key == hits.key)


def live() -> sa.ColumnElement[bool]:
    """The condition that a conversation (joined or selected) is not deleted."""
    return conversations.c.deleted_at.is_(None)


def paged(stmt: sa.Select[Any], limited: bool, skipping: bool) -> sa.Select[Any]:
    """The statement with LIMIT and OFFSET as bound parameters, where the page has them."""
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


def conversation_conditions(where: ConversationFilter) -> list[sa.ColumnElement[bool]]:
    """Conditions on conversations for a filter (none when it filters nothing)."""
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


def message_conditions(where: MessageFilter) -> list[sa.ColumnElement[bool]]:
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
