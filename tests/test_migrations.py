"""Upgrading a store written by an older schema revision keeps what it holds searchable."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

import convstore
from convstore.backends.sql.migrate import MIGRATIONS
from tests.conftest import POSTGRES15, backend_url, empty_database, postgres_server_url

ROWS = [
    "INSERT INTO conversations (id, name, state, created_at, updated_at, metadata, version,"
    " message_count, last_seq, prompt_tokens, completion_tokens)"
    " VALUES ('c1', 'Kubernetes notes', 'active', :t, :t, '{}', 2, 1, 1, 0, 0)",
    "INSERT INTO messages (id, conversation_id, seq, active, role, type, content, status,"
    " created_at, updated_at, metadata) VALUES ('m1', 'c1', 1, true, 'user', 'text',"
    " '\"ConversationManagerConfig\"', 'complete', :t, :t, '{}')",
    "INSERT INTO message_search (message_id, conversation_id, terms, singles)"
    " VALUES ('m1', 'c1', 'conversationmanagerconfig', '')",
    "INSERT INTO conversation_search (conversation_id, name_terms, name_singles,"
    " description_terms, description_singles) VALUES ('c1', 'kubernetes notes', '', '', '')",
]


def written_at(url: str, revision: str) -> None:
    """A store at ``revision`` holding one conversation, written as that revision would."""
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
        for statement in ROWS:
            conn.execute(sa.text(statement), {"t": time.time()})
    engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_the_vocabulary_is_filled_from_what_is_stored(backend: str, tmp_path: Path) -> None:
    if backend == "sqlite":
        url = backend_url("sqlite", tmp_path)
    else:
        url = empty_database(postgres_server_url())
    written_at(url, "0006")
    with convstore.open(url) as store:
        assert [m.id for m in store.search_messages("*managerconf*")] == ["m1"]
        assert [c.id for c in store.search_conversations("*bernet*")] == ["c1"]


def test_without_leave_to_enable_pg_trgm_the_vocabulary_is_read_whole() -> None:
    """A user who may create tables but not extensions (no CREATE on the database) still
    gets a store whose *fragment* queries work, without the trigram index."""
    import psycopg

    server = make_url(os.environ.get("CONVSTORE_TEST_POSTGRES15_URL", POSTGRES15))
    database = make_url(empty_database(server.render_as_string(hide_password=False)))
    role = f"limited_{uuid.uuid4().hex[:8]}"
    admin = database.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"GRANT CREATE, USAGE ON SCHEMA public TO {role}")
    try:
        as_role = database.set(username=role, password=None)
        with convstore.open(as_role.render_as_string(hide_password=False)) as store:
            chat = store.create_conversation("limited").id
            message = store.append_message(chat, "user", "ConversationManagerConfig")
            assert store.search_messages("*managerconf*") == [message]
        with psycopg.connect(admin) as conn:
            indexes = conn.execute(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'search_words'"
            ).fetchall()
        assert indexes == [("search_words_pkey",)]
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")
