"""Full-text search: the index text of every message and conversation, and on SQLite the
FTS5 indexes over it, kept in step by triggers in the same transaction.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from alembic import op

from convstore.search.text import index_text
from convstore.validation import text_values

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ID = sa.String(64)

# FTS5 tables over the search tables (external content: the text is stored once).
_SQLITE_FTS = [
    """CREATE VIRTUAL TABLE messages_fts USING fts5(
        terms, singles, content='message_search', content_rowid='key',
        tokenize='unicode61 remove_diacritics 0')""",
    """CREATE VIRTUAL TABLE conversations_fts USING fts5(
        name_terms, name_singles, description_terms, description_singles,
        content='conversation_search', content_rowid='key',
        tokenize='unicode61 remove_diacritics 0')""",
]


def _triggers(table: str, fts: str, columns: list[str]) -> list[str]:
    """Triggers that mirror every insert, update and delete of ``table`` into ``fts``."""
    names = ", ".join(columns)
    new = ", ".join(f"new.{c}" for c in columns)
    old = ", ".join(f"old.{c}" for c in columns)
    return [
        f"""CREATE TRIGGER {table}_ai AFTER INSERT ON {table} BEGIN
            INSERT INTO {fts}(rowid, {names}) VALUES (new.key, {new}); END""",
        f"""CREATE TRIGGER {table}_ad AFTER DELETE ON {table} BEGIN
            INSERT INTO {fts}({fts}, rowid, {names}) VALUES ('delete', old.key, {old}); END""",
        f"""CREATE TRIGGER {table}_au AFTER UPDATE ON {table} BEGIN
            INSERT INTO {fts}({fts}, rowid, {names}) VALUES ('delete', old.key, {old});
            INSERT INTO {fts}(rowid, {names}) VALUES (new.key, {new}); END""",
    ]


def upgrade() -> None:
    op.create_table(
        "message_search",
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
    op.create_table(
        "conversation_search",
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
    if op.get_bind().dialect.name == "sqlite":
        statements = [
            *_SQLITE_FTS,
            *_triggers("message_search", "messages_fts", ["terms", "singles"]),
            *_triggers(
                "conversation_search",
                "conversations_fts",
                ["name_terms", "name_singles", "description_terms", "description_singles"],
            ),
        ]
        for statement in statements:
            op.execute(statement)
    _backfill()


def _backfill() -> None:
    """Index what the store already holds."""
    conn = op.get_bind()
    for rows in _batches(conn, "messages", "id, conversation_id, content"):
        values = [_message_row(*row) for row in rows]
        conn.execute(
            sa.text(
                "INSERT INTO message_search (message_id, conversation_id, terms, singles) "
                "VALUES (:message_id, :conversation_id, :terms, :singles)"
            ),
            values,
        )
    for rows in _batches(conn, "conversations", "id, name, description"):
        values = [_conversation_row(*row) for row in rows]
        conn.execute(
            sa.text(
                "INSERT INTO conversation_search (conversation_id, name_terms, name_singles, "
                "description_terms, description_singles) VALUES (:conversation_id, "
                ":name_terms, :name_singles, :description_terms, :description_singles)"
            ),
            values,
        )


def _batches(conn: sa.Connection, table: str, columns: str) -> Iterator[list[Any]]:
    """Rows of ``table`` a thousand at a time, by id (the first column)."""
    last = ""
    while True:
        rows = conn.execute(
            sa.text(f"SELECT {columns} FROM {table} WHERE id > :last ORDER BY id LIMIT 1000"),
            {"last": last},
        ).all()
        if not rows:
            return
        yield list(rows)
        last = rows[-1][0]


def _message_row(message_id: str, conversation_id: str, content: str) -> dict[str, str]:
    indexed = index_text(text_values(json.loads(content)))
    return {
        "message_id": message_id,
        "conversation_id": conversation_id,
        "terms": indexed.terms,
        "singles": indexed.singles,
    }


def _conversation_row(conversation_id: str, name: str, description: str | None) -> dict[str, str]:
    name_text, description_text = index_text([name]), index_text([description or ""])
    return {
        "conversation_id": conversation_id,
        "name_terms": name_text.terms,
        "name_singles": name_text.singles,
        "description_terms": description_text.terms,
        "description_singles": description_text.singles,
    }
