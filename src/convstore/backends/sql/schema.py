"""The tables of the SQL backends, as SQLAlchemy Core objects used to build queries.

The migrations in ``migrations/versions`` create and evolve these tables; this module
describes the schema at the newest revision.
"""

from __future__ import annotations

import sqlalchemy as sa

ID = sa.String(64)
# JSON kept as written: PostgreSQL's json, not jsonb, which would turn 2.4e+16 into an int
JSONDoc = sa.JSON()

metadata = sa.MetaData()

conversations = sa.Table(
    "conversations",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("owner_id", ID),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("state_details", JSONDoc, nullable=False, server_default="{}"),
    sa.Column("head_message_id", ID),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.Column("deleted_at", sa.Double),
    sa.Column("metadata", JSONDoc, nullable=False, key="meta"),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("message_count", sa.Integer, nullable=False),
    sa.Column("last_seq", sa.Integer, nullable=False),
    sa.Column("prompt_tokens", sa.BigInteger, nullable=False),
    sa.Column("completion_tokens", sa.BigInteger, nullable=False),
    sa.Index("ix_conversations_updated", "updated_at", "id"),
    sa.Index("ix_conversations_created", "created_at", "id"),
    sa.Index("ix_conversations_owner_updated", "owner_id", "updated_at"),
)

messages = sa.Table(
    "messages",
    metadata,
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
    sa.Column("metadata", JSONDoc, nullable=False, key="meta"),
    sa.Column("usage", JSONDoc),
    sa.UniqueConstraint("conversation_id", "seq", name="uq_messages_conversation_seq"),
    sa.Index("ix_messages_branch", "conversation_id", "active", "seq"),
    sa.Index("ix_messages_parent", "conversation_id", "parent_id"),
    sa.Index(
        "ix_messages_streaming",
        "conversation_id",
        sqlite_where=sa.text("status = 'streaming'"),
        postgresql_where=sa.text("status = 'streaming'"),
    ),
)

message_chunks = sa.Table(
    "message_chunks",
    metadata,
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

changes = sa.Table(
    "changes",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("conversation_id", ID, nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("payload", JSONDoc, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Index("ix_changes_conversation", "conversation_id", "id"),
    sqlite_autoincrement=True,
)

# The text the full-text index sees (convstore.search.text), one row per message and per
# conversation. The integer key stays put through VACUUM, so SQLite's FTS5 tables can
# use it as their rowid (see migration 0002).
message_search = sa.Table(
    "message_search",
    metadata,
    sa.Column("key", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "message_id",
        ID,
        sa.ForeignKey("messages.id", ondelete="CASCADE"),
        nullable=False,
        unique=True,
    ),
    sa.Column("conversation_id", ID, nullable=False, index=True),
    sa.Column("terms", sa.Text, nullable=False),
    sa.Column("singles", sa.Text, nullable=False),
)

conversation_search = sa.Table(
    "conversation_search",
    metadata,
    sa.Column("key", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "conversation_id",
        ID,
        sa.ForeignKey("conversations.id", ondelete="CASCADE"),
        nullable=False,
        unique=True,
    ),
    sa.Column("name_terms", sa.Text, nullable=False),
    sa.Column("name_singles", sa.Text, nullable=False),
    sa.Column("description_terms", sa.Text, nullable=False),
    sa.Column("description_singles", sa.Text, nullable=False),
)

# One vector per message and embedding model (float32, little-endian).
embeddings = sa.Table(
    "embeddings",
    metadata,
    sa.Column(
        "message_id",
        ID,
        sa.ForeignKey("messages.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("model", sa.String(128), primary_key=True),
    sa.Column("vector", sa.LargeBinary, nullable=False),
)

# Small JSON documents by namespace and key: accounts, idempotency keys, soft-deleted
# conversations. ``expires_at`` (epoch seconds) marks documents the store may drop.
records = sa.Table(
    "records",
    metadata,
    sa.Column("namespace", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("value", JSONDoc, nullable=False),
    sa.Column("expires_at", sa.Double),
)
