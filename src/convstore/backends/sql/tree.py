"""The message tree in SQL: which messages form the active branch.

Each message row carries ``active``: the rows of the path from a root to the
conversation's head, so that reading the active branch is one indexed range scan
(``ix_messages_branch``). Moving the head flips only the rows that differ between the
old path and the new one: the new path's rows up to where it meets the old one, and the
old path's rows below that point.
"""

from __future__ import annotations

import functools
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from convstore.backends.sql.schema import messages


@functools.cache
def _walk_up() -> sa.Select[Any]:
    """The head and its ancestors, up to and including the first active one."""
    m = messages.c
    start = (
        sa.select(m.id, m.parent_id, m.active, m.seq)
        .where(m.id == sa.bindparam("head_id"), m.conversation_id == sa.bindparam("cid"))
        .cte("up", recursive=True)
    )
    parent = messages.alias("parent")
    up = start.union_all(
        sa.select(parent.c.id, parent.c.parent_id, parent.c.active, parent.c.seq)
        .select_from(parent.join(start, parent.c.id == start.c.parent_id))
        .where(start.c.active == sa.false())
    )
    return sa.select(up.c.id, up.c.active, up.c.seq)


def set_active_branch(conn: Connection, conversation_id: str, head_id: str | None) -> None:
    """Make the active branch the path from a root to ``head_id`` (empty when None).

    The rows that are active must form one such path already (every write keeps it so);
    costs what the two paths do not share.
    """
    m = messages.c
    path: list[tuple[str, bool, int]] = []
    if head_id is not None:
        found = conn.execute(_walk_up(), {"head_id": head_id, "cid": conversation_id})
        path = [(str(row[0]), bool(row[1]), int(row[2])) for row in found]
    meeting = next((seq for _, active, seq in path if active), 0)
    conn.execute(
        sa.update(messages)
        .where(m.conversation_id == conversation_id, m.active == sa.true(), m.seq > meeting)
        .values(active=False)
    )
    joining = [message_id for message_id, active, _ in path if not active]
    if joining:
        conn.execute(
            sa.update(messages)
            .where(m.conversation_id == conversation_id, m.id.in_(joining))
            .values(active=True)
        )
