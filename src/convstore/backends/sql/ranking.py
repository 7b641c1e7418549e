"""Full-text ranking on SQL: the queries behind Session.rank_messages and
Session.rank_conversations, over the flavor's full-text index.

Only the RANK_WINDOW newest matches of a query are ranked (as in every backend), so a
very common word costs the same as a rarer one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from convstore.backends.sql.flavor import Flavor, Hits
from convstore.backends.sql.rows import (
    CONVERSATION_COLUMNS,
    MESSAGE_COLUMNS,
    to_conversation,
    to_message,
)
from convstore.backends.sql.schema import (
    conversation_search,
    conversations,
    message_search,
    messages,
)
from convstore.backends.sql.statements import (
    conversation_conditions,
    live,
    message_conditions,
    paged,
    with_search_rows,
)
from convstore.models import Conversation, Message
from convstore.queries import ConversationSearch, MessageSearch
from convstore.search.ranking import RANK_WINDOW


def rank_messages(
    conn: Connection, flavor: Flavor, search: MessageSearch
) -> list[tuple[Message, float]]:
    """A page of the messages matching the search, best first, with their scores."""
    hits = flavor.message_hits()
    params: dict[str, Any] = flavor.message_params("expression", search.query)
    score = hits.score("expression")
    stmt = (
        sa.select(*MESSAGE_COLUMNS, score)
        .select_from(
            with_search_rows(hits, message_search)
            .join(messages, messages.c.id == message_search.c.message_id)
            .join(conversations, conversations.c.id == messages.c.conversation_id)
        )
        .where(hits.match("expression", params), hits.key >= sa.bindparam("floor"), live())
        .where(*message_conditions(search.where))
        .order_by(score, messages.c.id)
    )
    stmt = paged(stmt, search.limit is not None, search.offset > 0)
    params.update(
        floor=_rank_floor(conn, hits, "expression", params),
        limit=search.limit,
        offset=search.offset,
    )
    return [(to_message(row), -row[-1]) for row in conn.execute(stmt, params).all()]


def rank_conversations(
    conn: Connection, flavor: Flavor, search: ConversationSearch
) -> list[tuple[Conversation, float]]:
    """A page of the conversations matching the search, best first, with their scores:
    each conversation scores its best match in its name, description or messages."""
    by_name, by_message = flavor.conversation_hits(), flavor.message_hits()
    params: dict[str, Any] = flavor.conversation_params("in_names", search.query)
    params.update(flavor.message_params("in_messages", search.query))
    in_text = (
        sa.select(
            conversation_search.c.conversation_id.label("cid"),
            by_name.score("in_names").label("score"),
        )
        .select_from(with_search_rows(by_name, conversation_search))
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
            .select_from(with_search_rows(by_message, message_search))
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
        sa.select(*CONVERSATION_COLUMNS, best.c.score)
        .join_from(conversations, best, best.c.cid == conversations.c.id)
        .where(live(), *conversation_conditions(search.where))
        .order_by(best.c.score, conversations.c.id)
    )
    stmt = paged(stmt, search.limit is not None, search.offset > 0)
    floor = _rank_floor(conn, by_message, "in_messages", params) if search.in_messages else 0
    params.update(floor=floor, limit=search.limit, offset=search.offset)
    rows = conn.execute(stmt, params).all()
    return [(to_conversation(row[:-1]), -row[-1]) for row in rows]


def _rank_floor(conn: Connection, hits: Hits, name: str, params: Mapping[str, Any]) -> int:
    """The smallest search key among the RANK_WINDOW newest matches (0: rank them all)."""
    newest = (
        sa.select(hits.key)
        .select_from(hits.source)
        .where(hits.match(name, params))
        .order_by(hits.key.desc())
        .limit(1)
        .offset(RANK_WINDOW - 1)
    )
    found = conn.execute(newest, dict(params)).first()
    return int(found[0]) if found else 0
