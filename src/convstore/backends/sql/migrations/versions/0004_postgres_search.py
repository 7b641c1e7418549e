"""PostgreSQL full-text search: tsvector columns over the index terms, with GIN indexes.

The columns are generated from the terms convstore computes (migration 0002), so the
server needs no Chinese segmenter: a character pair is a word to it. Labels carry the
weights: names A, descriptions B, messages C. SQLite uses FTS5 instead (no change).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_POSTGRES = [
    """ALTER TABLE message_search
        ADD COLUMN terms_tsv tsvector
            GENERATED ALWAYS AS (setweight(to_tsvector('simple', terms), 'C')) STORED,
        ADD COLUMN singles_tsv tsvector
            GENERATED ALWAYS AS (to_tsvector('simple', singles)) STORED""",
    "CREATE INDEX ix_message_search_terms ON message_search USING gin (terms_tsv)",
    "CREATE INDEX ix_message_search_singles ON message_search USING gin (singles_tsv)",
    """ALTER TABLE conversation_search
        ADD COLUMN terms_tsv tsvector GENERATED ALWAYS AS (
            setweight(to_tsvector('simple', name_terms), 'A')
            || setweight(to_tsvector('simple', description_terms), 'B')) STORED,
        ADD COLUMN singles_tsv tsvector GENERATED ALWAYS AS (
            to_tsvector('simple', name_singles || ' ' || description_singles)) STORED""",
    "CREATE INDEX ix_conversation_search_terms ON conversation_search USING gin (terms_tsv)",
    "CREATE INDEX ix_conversation_search_singles ON conversation_search USING gin (singles_tsv)",
]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in _POSTGRES:
            op.execute(statement)
