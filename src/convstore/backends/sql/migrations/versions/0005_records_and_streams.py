"""Records (small JSON documents: accounts, idempotency keys, soft-deleted conversations)
and an index that finds the messages still streaming.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "records",
        sa.Column("namespace", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("expires_at", sa.Double),
    )
    streaming = sa.text("status = 'streaming'")
    op.create_index(
        "ix_messages_streaming",
        "messages",
        ["conversation_id"],
        sqlite_where=streaming,
        postgresql_where=streaming,
    )
