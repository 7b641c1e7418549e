"""Full-text search: the index text of every message and conversation, and on SQLite the
FTS5 indexes over it, kept in step by triggers in the same transaction.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Iterator
from typing import Any

import sqlalchemy as sa
from alembic import op

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
    terms, singles = _index_text(_text_values(json.loads(content)))
    return {
        "message_id": message_id,
        "conversation_id": conversation_id,
        "terms": terms,
        "singles": singles,
    }


def _conversation_row(conversation_id: str, name: str, description: str | None) -> dict[str, str]:
    name_terms, name_singles = _index_text([name])
    description_terms, description_singles = _index_text([description or ""])
    return {
        "conversation_id": conversation_id,
        "name_terms": name_terms,
        "name_singles": name_singles,
        "description_terms": description_terms,
        "description_singles": description_singles,
    }


# The index text as this revision defines it: frozen copies of what convstore's search
# code did when the revision was written, so that the backfill stays the same whatever
# later versions of that code do. Do not change them; a new tokenizer needs a new
# revision that reindexes.

# Han ideographs (with extensions and compatibility forms), kana, and the iteration mark
_CJK = (
    "\u3005\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f"
)
_TOKEN = re.compile(rf"([{_CJK}]+)|([^\W_{_CJK}]+)")


def _text_values(content: object) -> Iterator[str]:
    """The strings inside content, in order (keys are skipped)."""
    if isinstance(content, str):
        yield content
    elif isinstance(content, dict):
        for item in content.values():
            yield from _text_values(item)
    elif isinstance(content, list):
        for item in content:
            yield from _text_values(item)


def _fold(text: str) -> str:
    """Compatibility-normalized, case-folded, without accents."""
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _bigrams(run: str) -> list[str]:
    """Overlapping two-character terms of a CJK run (the run itself if it is one character)."""
    if len(run) == 1:
        return [run]
    return [run[i : i + 2] for i in range(len(run) - 1)]


def _index_text(texts: Iterable[str]) -> tuple[str, str]:
    """(terms, singles): words and CJK character pairs, and CJK single characters."""
    terms: list[str] = []
    singles: list[str] = []
    for text in texts:
        for cjk, word in _TOKEN.findall(_fold(text)):
            if word:
                terms.append(word)
            else:
                terms.extend(_bigrams(cjk))
                singles.extend(cjk)
    return " ".join(terms), " ".join(singles)
