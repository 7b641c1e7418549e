"""The vocabulary of the full-text index: every distinct index term of messages, names and
descriptions, so that a query word inside stars (``*ploy*``) can be looked up as the
words containing it.

SQLite keeps it in ``search_words`` with an FTS5 trigram index beside it; PostgreSQL in
``search_words`` with a pg_trgm GIN index where the server offers pg_trgm (without it
the lookup reads the vocabulary, still correct). The SQL backend adds the words of each
text it indexes, in the same transaction; this revision adds those already stored.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op
from sqlalchemy.engine import Connection

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

log = logging.getLogger(__name__)

# Index terms hold only letters and digits (convstore.search.text), so a search row's
# terms become a JSON array by quoting them: no quote or backslash can break the literal.
_SQLITE_STORED_WORDS = """INSERT OR IGNORE INTO search_words(word)
    SELECT value FROM {table}, json_each('["' || replace({terms}, ' ', '","') || '"]')
    WHERE value <> ''"""

_SQLITE = [
    "CREATE TABLE search_words (id INTEGER PRIMARY KEY, word TEXT NOT NULL UNIQUE)",
    """CREATE VIRTUAL TABLE search_words_fts USING fts5(
        word, content='search_words', content_rowid='id', tokenize='trigram')""",
    """CREATE TRIGGER search_words_ai AFTER INSERT ON search_words BEGIN
        INSERT INTO search_words_fts(rowid, word) VALUES (new.id, new.word); END""",
    _SQLITE_STORED_WORDS.format(table="message_search", terms="terms"),
    _SQLITE_STORED_WORDS.format(
        table="conversation_search", terms="name_terms || ' ' || description_terms"
    ),
]

_POSTGRES = [
    "CREATE TABLE search_words (word text PRIMARY KEY)",
    """INSERT INTO search_words(word)
    SELECT DISTINCT w FROM (
        SELECT unnest(string_to_array(terms, ' ')) AS w FROM message_search
        UNION ALL
        SELECT unnest(string_to_array(name_terms || ' ' || description_terms, ' '))
        FROM conversation_search
    ) AS found WHERE w <> ''""",
]


def upgrade() -> None:
    bind = op.get_bind()
    statements = _POSTGRES if bind.dialect.name == "postgresql" else _SQLITE
    for statement in statements:
        bind.exec_driver_sql(statement)
    if bind.dialect.name == "postgresql":
        _index_trigrams(bind)


def _index_trigrams(conn: Connection) -> None:
    """A pg_trgm index on the vocabulary, if the server offers pg_trgm and lets this
    user enable it (in a savepoint: a refusal must not undo the rest)."""
    offered = conn.exec_driver_sql(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'"
    ).first()
    if offered is None:
        return
    conn.exec_driver_sql("SAVEPOINT convstore_trgm")
    try:
        conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        conn.exec_driver_sql(
            "CREATE INDEX ix_search_words_trigrams ON search_words USING gin (word gin_trgm_ops)"
        )
    except sa.exc.DBAPIError as exc:  # the server refused the extension
        conn.exec_driver_sql("ROLLBACK TO SAVEPOINT convstore_trgm")
        log.warning("no pg_trgm index on search words (lookups read them all): %s", exc)
    else:
        conn.exec_driver_sql("RELEASE SAVEPOINT convstore_trgm")
