"""pgvector: on PostgreSQL servers that offer the ``vector`` extension, a vector column
beside each stored embedding, so nearest-neighbour search can use HNSW indexes (made per
model when its vectors are first stored). Elsewhere nothing changes: search stays exact.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import numpy as np
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_BATCH = 1000


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    offered = bind.exec_driver_sql(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"
    ).first()
    if offered is None:
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.execute("ALTER TABLE embeddings ADD COLUMN embedding vector")
    _backfill(bind)


def _backfill(bind: sa.engine.Connection) -> None:
    """Vectors stored before this revision, copied into the new column."""
    after = ("", "")
    while True:
        rows = bind.execute(
            sa.text(
                "SELECT message_id, model, vector FROM embeddings"
                " WHERE (message_id, model) > (:id, :model) ORDER BY message_id, model LIMIT :n"
            ),
            {"id": after[0], "model": after[1], "n": _BATCH},
        ).all()
        if not rows:
            return
        bind.execute(
            sa.text(
                "UPDATE embeddings SET embedding = CAST(:v AS vector)"
                " WHERE message_id = :id AND model = :model"
            ),
            [{"id": r[0], "model": r[1], "v": _vector_text(bytes(r[2]))} for r in rows],
        )
        after = (rows[-1][0], rows[-1][1])


def _vector_text(data: bytes) -> str:
    """A stored vector (little-endian float32) in pgvector's text form, ``[0.1,0.2,...]``
    (exact for float32). A frozen copy of what convstore wrote when this revision was
    made: the backfill must not change with later code."""
    return "[" + ",".join(repr(float(x)) for x in np.frombuffer(data, dtype="<f4")) + "]"
