"""The v1 schema: conversations, messages, streaming chunks and the change feed.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.String(64)
# JSON kept as written: PostgreSQL's json, not jsonb, which would turn 2.4e+16 into an int
JSONDoc = sa.JSON()


def upgrade() -> None:
    op.create_table(
        "conversations",
        sa.Column("id", ID, primary_key=True),
        sa.Column("owner_id", ID),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("head_message_id", ID),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.Column("deleted_at", sa.Double),
        sa.Column("metadata", JSONDoc, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("message_count", sa.Integer, nullable=False),
        sa.Column("last_seq", sa.Integer, nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger, nullable=False),
        sa.Column("completion_tokens", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_conversations_updated", "conversations", ["updated_at", "id"])
    op.create_index("ix_conversations_created", "conversations", ["created_at", "id"])
    op.create_index("ix_conversations_owner_updated", "conversations", ["owner_id", "updated_at"])

    op.create_table(
        "messages",
        sa.Column("id", ID, primary_key=True),
        sa.Column(
            "conversation_id",
            ID,
            sa.ForeignKey("conversations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("parent_id", ID),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("sender_id", ID),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.Column("metadata", JSONDoc, nullable=False),
        sa.Column("usage", JSONDoc),
        sa.UniqueConstraint("conversation_id", "seq", name="uq_messages_conversation_seq"),
    )
    op.create_index("ix_messages_branch", "messages", ["conversation_id", "active", "seq"])
    op.create_index("ix_messages_parent", "messages", ["conversation_id", "parent_id"])

    op.create_table(
        "message_chunks",
        sa.Column(
            "message_id",
            ID,
            sa.ForeignKey("messages.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("delta", sa.Text, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
    )

    op.create_table(
        "changes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("conversation_id", ID, nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("payload", JSONDoc, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_changes_conversation", "changes", ["conversation_id", "id"])


def downgrade() -> None:
    for table in ("changes", "message_chunks", "messages", "conversations"):
        op.drop_table(table)
